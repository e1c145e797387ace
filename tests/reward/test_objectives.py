"""Every training objective learns on a toy separable set; the DRO loss; augmentation; feature
statistics; the text bank."""

from __future__ import annotations

import math

import pytest
import torch
from reward_helpers import SyntheticPrefDataset, tiny_train_config

from dreamcs.reward.augment import augment_patches, feature_stats
from dreamcs.reward.losses import LOSS_TYPES, dro_loss
from dreamcs.reward.text_bank import TextBank
from dreamcs.reward.train import train
from dreamcs.text import build_text_encoder
from dreamcs.utils import read_jsonl


@pytest.fixture(scope="module")
def separable():
    return SyntheticPrefDataset(n_pos=16, n_neg=16, seed=3, shift=1.0)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_every_objective_lowers_its_loss(tmp_path, separable, loss_type):
    cfg = tiny_train_config(loss_type=loss_type, steps=30, batch_size=8, checkpoint_every=30, lr=3e-3,
                            warmup_steps=3)
    model = train(cfg, separable, tmp_path / loss_type)
    losses = [r["loss"] for r in read_jsonl(tmp_path / loss_type / "metrics.jsonl")]
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < first, (loss_type, first, last)
    # and the trained reward ranks the classes (every objective separates this toy set)
    f = torch.stack([it["features"] for it in separable.items])
    c = torch.stack([it["centers"] for it in separable.items])
    r = model.score_batch(f, c, [it["prompt"] for it in separable.items])
    assert r[:16].mean() > r[16:].mean(), loss_type


def test_divergence_terms_logged(tmp_path, separable):
    train(tiny_train_config(loss_type="mmd", steps=2), separable, tmp_path / "m")
    rec = read_jsonl(tmp_path / "m" / "metrics.jsonl")[0]
    assert rec["loss"] == pytest.approx(rec["loss_mse"] - rec["mmd2"], rel=1e-5) and 0 <= rec["mmd2"] <= 2
    train(tiny_train_config(loss_type="dro", steps=2), separable, tmp_path / "d")
    rec = read_jsonl(tmp_path / "d" / "metrics.jsonl")[0]
    assert rec["loss"] == pytest.approx(rec["loss_dro"]) and "d_cs" in rec


def test_dro_loss_limits_and_direction():
    r = torch.tensor([5.0, 4.0, 1.0, 0.0, 2.0, 4.5], dtype=torch.float64)
    y = torch.tensor([1, 1, 1, 0, 0, 0])
    soft = torch.nn.functional.softplus
    per = torch.stack([soft(-(r[i] - 3.0)) if y[i] else soft(r[i] - 3.0) for i in range(6)])
    # large tau: the mean of the two class means (ERM); small tau: the mean of the two class maxima
    erm = (per[:3].mean() + per[3:].mean()) / 2
    worst = (per[:3].max() + per[3:].max()) / 2
    assert float(dro_loss(r, y, 3.0, 1e4)) == pytest.approx(float(erm), rel=1e-3)
    assert float(dro_loss(r, y, 3.0, 1e-3)) == pytest.approx(float(worst), abs=3e-3)
    # raising a preferred reward or lowering a dispreferred one lowers the loss
    rr = r.clone().requires_grad_(True)
    dro_loss(rr, y, 3.0, 1.0).backward()
    assert (rr.grad[:3] < 0).all() and (rr.grad[3:] > 0).all()
    # the worst items weigh most: the dispreferred 4.5 gets the largest push
    assert rr.grad[5] == rr.grad[3:].max()
    with pytest.raises(ValueError, match="dro_tau"):
        dro_loss(r, y, 3.0, 0.0)


def test_augmentation_acts_like_a_rotation_about_y():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(3, 4, 5, 10, generator=g)
    feats[..., 1:4] = torch.nn.functional.normalize(torch.randn(3, 4, 5, 3, generator=g), dim=-1)
    cents = torch.randn(3, 4, 3, generator=g)
    f2, c2 = augment_patches(feats, cents, torch.Generator().manual_seed(1), rotate_y=True, scale_jitter=0.2)
    torch.testing.assert_close(f2[..., 4:], feats[..., 4:])  # angles and normal dots are invariant
    torch.testing.assert_close(f2[..., 2], feats[..., 2])  # normal y unchanged
    torch.testing.assert_close(f2[..., 1:4].norm(dim=-1), feats[..., 1:4].norm(dim=-1))
    s = (f2[..., 0] / feats[..., 0]).sqrt()  # area scales by s^2, one s per mesh
    assert ((s - s[:, :1, :1]).abs() < 1e-5).all() and ((s - 1).abs() <= 0.2 + 1e-6).all()
    torch.testing.assert_close(c2[..., 1], cents[..., 1] * s[:, :, 0])  # heights only scale
    assert not torch.allclose(c2[..., 0], cents[..., 0] * s[:, :, 0])  # x, z rotate
    same = augment_patches(feats, cents, torch.Generator().manual_seed(1), rotate_y=True, scale_jitter=0.2)
    assert torch.equal(same[0], f2) and torch.equal(same[1], c2)
    off = augment_patches(feats, cents, torch.Generator().manual_seed(1), rotate_y=False, scale_jitter=0.0)
    assert off[0] is feats and off[1] is cents


def test_feature_stats_standardise(separable):
    mean, std, area_scale = feature_stats(separable, max_items=32)[:3]
    f = torch.stack([it["features"] for it in separable.items]).reshape(-1, 10)
    assert float(area_scale) == pytest.approx(float(f[:, 0].clamp_min(0).mean()), rel=1e-4)
    t = torch.cat([torch.log1p(f[:, :1].clamp_min(0) / area_scale), f[:, 1:]], 1)
    torch.testing.assert_close(mean, t.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, t.std(0, unbiased=False), atol=1e-4, rtol=1e-4)
    from reward_helpers import tiny_model

    enc = tiny_model().mesh_encoder
    enc.set_feature_stats(mean, std, area_scale)
    z = enc.standardise(f)
    assert z.mean(0).abs().max() < 1e-4 and (z.std(0) - 1).abs().max() < 1e-3


def test_text_bank_matches_encoder():
    enc = build_text_encoder("hash:16")
    prompts = ["a chair", "a tall red lamp with a shade", "a chair", "x"]
    bank = TextBank(enc, prompts, chunk=2)
    assert len(bank) == 3 and "x" in bank
    got, want = bank.embed(prompts), enc.encode(prompts)
    assert torch.equal(got.tokens, want.tokens) and torch.equal(got.mask, want.mask)
    assert torch.equal(got.pooled, want.pooled)
    with pytest.raises(KeyError, match="not in the text bank"):
        bank.embed(["a sofa"])


def test_cs_loss_on_an_unbalanced_batch_is_bounded():
    """13 preferred vs 19 dispreferred, classes collapsed to two points: the old pooled-median
    bandwidth gave D_CS ~ 2e5 here; the loss now stays within MSE - (1 + 2 log 2)."""
    from dreamcs.reward.train import TrainConfig, compute_loss

    g = torch.Generator().manual_seed(0)
    label = torch.tensor([1] * 13 + [0] * 19)
    base = torch.nn.functional.normalize(torch.randn(2, 32, generator=g), dim=1)
    emb = base[1 - label] + 1e-3 * torch.randn(32, 32, generator=g)
    emb = torch.nn.functional.normalize(emb, dim=1).requires_grad_(True)
    score = label.float() * 3 + 1
    loss, logs = compute_loss(score.clone(), emb, {"label": label, "score": score}, TrainConfig(lambda_cs=1.0))
    assert math.isfinite(logs["d_cs"]) and 0.5 < logs["d_cs"] <= 1 + 2 * math.log(2)
    assert loss.item() == pytest.approx(-logs["d_cs"], abs=1e-6)  # rewards equal the scores: MSE 0
    (g_emb,) = torch.autograd.grad(loss, emb)
    assert torch.isfinite(g_emb).all()
