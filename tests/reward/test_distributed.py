"""Two processes with the gloo backend train in sync (what torchrun runs on several GPUs)."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from reward_helpers import ddp_worker, tiny_train_config
from safetensors.torch import load_file


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_in_sync(tmp_path):
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # rank 0 wrote the run; the weights moved away from the initialisation
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.equal(saved[k], a[k]) for k in a)
    assert (tmp_path / "run" / "checkpoints" / "latest.json").is_file()
    from dreamcs.reward import RewardCS
    from dreamcs.utils import seed_everything

    seed_everything(0)
    init = RewardCS(tiny_train_config().model).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)
