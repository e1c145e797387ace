"""The trainer: outputs, losses, samplers, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from reward_helpers import SyntheticPrefDataset, tiny_train_config

from dreamcs.reward import RewardCS
from dreamcs.reward import train as train_mod
from dreamcs.reward.sampler import BalancedBatchSampler, PairedBatchSampler
from dreamcs.reward.train import train
from dreamcs.utils import read_jsonl


@pytest.fixture(scope="module")
def data():
    return SyntheticPrefDataset()


def test_balanced_sampler_both_classes_and_deterministic():
    labels = [1] * 3 + [0] * 20
    s = BalancedBatchSampler(labels, batch_size=8, steps=50, seed=1)
    batches = list(s)
    assert len(batches) == 50
    for b in batches:
        ys = [labels[i] for i in b]
        assert len(b) == 8 and 1 in ys and 0 in ys
    # every preferred item is drawn equally often (epoch permutations)
    counts = [sum(b.count(i) for b in batches) for i in range(3)]
    assert max(counts) - min(counts) <= 1
    resumed = list(BalancedBatchSampler(labels, 8, 50, seed=1, start_step=20))
    assert resumed == batches[20:]
    assert list(BalancedBatchSampler(labels, 8, 50, seed=2)) != batches
    # two ranks: disjoint halves that each hold both classes
    r0 = BalancedBatchSampler(labels, 8, 5, seed=1, rank=0, world=2).batch(3)
    r1 = BalancedBatchSampler(labels, 8, 5, seed=1, rank=1, world=2).batch(3)
    assert sorted(r0 + r1) == sorted(batches[3]) and {labels[i] for i in r0} == {0, 1} == {labels[i] for i in r1}


def test_group_balanced_sampler_draws_each_class_equally_from_every_domain():
    # domain "a": 40 preferred, 10 dispreferred; domain "b": 2 preferred, 40 dispreferred
    labels = [1] * 40 + [0] * 10 + [1] * 2 + [0] * 40
    groups = ["a"] * 50 + ["b"] * 42
    plain = [i for b in BalancedBatchSampler(labels, 8, 100, seed=0) for i in b]
    s = BalancedBatchSampler(labels, 8, 100, seed=0, groups=groups)
    drawn = [i for b in s for i in b]

    def share_b(items, y):
        sel = [i for i in items if labels[i] == y]
        return sum(groups[i] == "b" for i in sel) / len(sel)

    assert share_b(plain, 1) < 0.15  # without groups the domain predicts the label
    assert share_b(drawn, 1) == pytest.approx(0.5) and share_b(drawn, 0) == pytest.approx(0.5)
    assert {i for i in drawn if labels[i] == 1 and groups[i] == "b"} == {50, 51}
    assert list(BalancedBatchSampler(labels, 8, 100, seed=0, start_step=30, groups=groups)) == list(s)[30:]
    with pytest.raises(ValueError, match="groups"):
        BalancedBatchSampler(labels, 8, 3, groups=groups[:-1])


def test_balance_groups_from_the_source_column():
    class Rows:
        rows = [{"source": s} for s in ("procedural", "procedural_defect", "licensed_clean", "licensed_defect")]

    assert train_mod.balance_groups(Rows(), "domain") == ["procedural", "procedural", "licensed", "licensed"]
    assert train_mod.balance_groups(Rows(), None) is None
    one = Rows()
    one.rows = [{"source": "procedural"}, {"source": "procedural_defect"}]
    assert train_mod.balance_groups(one, "domain") is None  # a single domain: nothing to balance


def test_sampler_errors():
    with pytest.raises(ValueError, match="both classes"):
        BalancedBatchSampler([1, 1, 1], 2, 3)
    with pytest.raises(ValueError, match="pairs"):
        PairedBatchSampler([1, 0], ["a", "b"], 2, 3)


def test_paired_sampler_same_prompt():
    labels = [1, 0, 1, 0, 0]
    prompts = ["a", "a", "b", "b", "c"]
    b = PairedBatchSampler(labels, prompts, 4, 3, seed=0).batch(1)
    for p, d in zip(b[::2], b[1::2], strict=True):
        assert labels[p] == 1 and labels[d] == 0 and prompts[p] == prompts[d]


def test_train_writes_run(tmp_path, data):
    run = tmp_path / "run"
    model = train(tiny_train_config(), data, run)
    for f in ("config.yaml", "metrics.jsonl", "model.safetensors", "checkpoints/latest.json"):
        assert (run / f).exists(), f
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, 7))
    assert all("d_cs" in r and "loss_mse" in r for r in recs)
    # cs loss = mse - lambda * d_cs
    assert recs[0]["loss"] == pytest.approx(recs[0]["loss_mse"] - recs[0]["d_cs"], rel=1e-5)
    assert json.loads((run / "checkpoints/latest.json").read_text())["step"] == 6
    assert len(list((run / "checkpoints").glob("step_*"))) == 2
    loaded = RewardCS.from_pretrained(run)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_resume_equals_uninterrupted(tmp_path, data, monkeypatch):
    cfg = tiny_train_config(model={"dropout": 0.2})
    train(cfg, data, tmp_path / "full")

    real_save = train_mod.save_checkpoint

    def killed_after_3(run_dir, step, *a, **k):
        real_save(run_dir, step, *a, **k)
        if step == 3:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(train_mod, "save_checkpoint", killed_after_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    train(cfg, data, tmp_path / "resumed", resume=True)

    a, b = _weights(tmp_path / "full/model.safetensors"), _weights(tmp_path / "resumed/model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # optimizer moments too
    sa = _weights(tmp_path / "full/checkpoints/step_0000006/state.safetensors")
    sb = _weights(tmp_path / "resumed/checkpoints/step_0000006/state.safetensors")
    for k in sa:
        if not k.startswith("rng"):
            assert torch.equal(sa[k], sb[k]), k
    ma, mb = read_jsonl(tmp_path / "full/metrics.jsonl"), read_jsonl(tmp_path / "resumed/metrics.jsonl")
    assert [r["step"] for r in mb] == list(range(1, 7))
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]


def test_resume_without_checkpoint_starts_fresh(tmp_path, data):
    train(tiny_train_config(steps=2), data, tmp_path / "r", resume=True)
    assert (tmp_path / "r" / "model.safetensors").exists()


@pytest.mark.parametrize("loss_type", ["mse", "bradley_terry"])
def test_baselines_run(tmp_path, data, loss_type):
    train(tiny_train_config(loss_type=loss_type, steps=3), data, tmp_path / loss_type)
    recs = read_jsonl(tmp_path / loss_type / "metrics.jsonl")
    key = "loss_bt" if loss_type == "bradley_terry" else "loss_mse"
    assert all(key in r for r in recs)
    if loss_type == "mse":
        assert recs[0]["loss"] == pytest.approx(recs[0]["loss_mse"])


def test_bad_config():
    with pytest.raises(ValueError, match="loss_type"):
        tiny_train_config(loss_type="hinge")


def test_learns_separable_data(tmp_path):
    """40 steps on well-separated synthetic data: preferred items end up scored above dispreferred."""
    data = SyntheticPrefDataset(n_pos=16, n_neg=16, seed=3, shift=1.0)
    model = train(tiny_train_config(steps=40, batch_size=8, log_every=10, checkpoint_every=40, lr=3e-3), data,
                  tmp_path / "r")
    f = torch.stack([it["features"] for it in data.items])
    c = torch.stack([it["centers"] for it in data.items])
    r = model.score_batch(f, c, [it["prompt"] for it in data.items])
    assert r[:16].min() > r[16:].max() - 0.5 and r[:16].mean() > r[16:].mean() + 1.0


def test_loader_workers_give_the_same_run(tmp_path, data):
    a = train(tiny_train_config(steps=4), data, tmp_path / "w0")
    b = train(tiny_train_config(steps=4, workers=2), data, tmp_path / "w2")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_boundary_channel_is_standardised_from_the_training_data(tmp_path):
    torch.manual_seed(0)
    ds = SyntheticPrefDataset()
    items = [ds[i] for i in range(len(ds))]
    for k, it in enumerate(items):  # a sparse channel: a few faces of the dispreferred items on a boundary
        b = torch.zeros(*it["features"].shape[:2], 1)
        if it["label"] == 0:
            b[k % b.shape[0], :2] = 1 / 3
        it["boundary"] = b

    class WithBoundary(torch.utils.data.Dataset):
        rows = getattr(ds, "rows", None)

        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    cfg = tiny_train_config(steps=2, model={"boundary_channel": True})
    model = train(cfg, WithBoundary(), tmp_path / "run")
    enc = model.mesh_encoder
    allb = torch.cat([it["boundary"].reshape(-1) for it in items])
    assert 0 < float(enc.extra_mean) < 0.05 and float(enc.extra_std) < 0.2  # set from the data, not (0, 1)
    torch.testing.assert_close(enc.extra_mean, allb.mean().reshape(1).float(), rtol=0.2, atol=1e-4)
    reloaded = RewardCS.from_pretrained(tmp_path / "run")
    torch.testing.assert_close(reloaded.mesh_encoder.extra_std, enc.extra_std)
