"""Two processes with the gloo backend train in sync (what torchrun runs on several GPUs)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.multiprocessing as mp
from reward_helpers import cs_gather_batch, cs_gather_worker, ddp_worker, tiny_train_config
from safetensors.torch import load_file


def _spawn(fn, args: tuple, outputs: list) -> None:
    """``mp.spawn`` two ranks; a rank that aborts in gloo's teardown *after* every rank wrote its
    results (libstdc++'s "terminate called without an active exception", despite the barrier before
    ``destroy_process_group``; seen in two of session 19's four full runs, always in the CS-gather
    test) is tolerated: what the tests check is in the files. An abort before the files exist fails."""
    try:
        mp.spawn(fn, args=args, nprocs=2, join=True)
    except mp.ProcessExitedException as e:
        if e.signal_name != "SIGABRT" or not all(p.is_file() for p in outputs):
            raise
        warnings.warn(f"a rank aborted in gloo teardown after writing its results: {e}", stacklevel=2)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_in_sync(tmp_path):
    _spawn(ddp_worker, (2, str(tmp_path / "init"), str(tmp_path)),
           [tmp_path / "rank0.safetensors", tmp_path / "rank1.safetensors", tmp_path / "run" / "model.safetensors"])
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


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_cs_term_spans_all_ranks_like_one_device(tmp_path):
    # Ranks hold 5 and 4 items of one batch: D_CS and its gradient must be those of the whole batch
    # on one device (each rank's gradient is world x its share; DDP's averaging divides it back).
    from dreamcs.reward.train import TrainConfig, compute_loss

    _spawn(cs_gather_worker, (2, str(tmp_path / "init"), str(tmp_path)), [tmp_path / f"cs{r}.safetensors" for r in (0, 1)])
    emb, label, score = cs_gather_batch()
    e = emb.clone().requires_grad_(True)
    loss, logs = compute_loss(score, e, {"label": label, "score": score}, TrainConfig(lambda_cs=1.0))
    loss.backward()
    for rank, idx in ((0, [0, 1, 2, 5, 6]), (1, [3, 4, 7, 8])):
        out = load_file(str(tmp_path / f"cs{rank}.safetensors"))
        assert abs(float(out["d_cs"]) - logs["d_cs"]) < 1e-6
        torch.testing.assert_close(out["grad"] / 2, e.grad[idx], atol=1e-6, rtol=1e-5)
    assert e.grad.abs().sum() > 0
