"""Text reaches every mesh token and the embedding reads them; the feature standardisation
buffers; the shipped ("embedded") model's resolution."""

from __future__ import annotations

import pytest
import torch
from reward_helpers import random_batch, tiny_model

from dreamcs.reward import RewardCS
from dreamcs.reward import model as model_mod


def test_prompt_changes_every_patch_token_and_the_embedding_reads_them():
    model = tiny_model().eval()
    f, c = random_batch(1, p=12)
    a = model.fused_tokens(f, c, ["a wooden chair"])
    b = model.fused_tokens(f, c, ["a rocket in space"])
    assert a.shape == (1, 13, 32)
    per_token = (a - b).abs().amax(-1)[0]  # (1 + P,)
    assert (per_token[1:] > 1e-4).all()  # every patch token is text-conditioned
    # the embedding depends on the patch tokens, not only on the cls token
    tokens = a.detach().requires_grad_(True)
    pooled = model.embed_proj(torch.cat([tokens[:, 0], model.pool(tokens)], -1))
    (g,) = torch.autograd.grad(pooled.sum(), tokens)
    assert (g[0, 1:].abs().sum(-1) > 0).all()


def test_feature_stats_buffers_used_saved_and_loaded(tmp_path):
    model = tiny_model().eval()
    assert {"mesh_encoder.feature_mean", "mesh_encoder.feature_std"} <= set(model.state_dict())
    f, c = random_batch(2)
    before = model(f, c, ["a", "b"]).reward
    f[..., 0] = f[..., 0].abs() * 1e-3  # areas are >= 0
    before = model(f, c, ["a", "b"]).reward
    mean, std = torch.linspace(0, 1, 10), torch.linspace(1, 3, 10)
    model.mesh_encoder.set_feature_stats(mean, std, 2e-3)
    after = model(f, c, ["a", "b"]).reward
    assert not torch.allclose(before, after)
    # the encoder reads log1p(area / area_scale), then (x - mean) / std, channel by channel
    by_hand = torch.cat([torch.log1p(f[..., :1] / 2e-3), f[..., 1:]], -1)
    by_hand = (by_hand - mean) / std
    enc = model.mesh_encoder
    torch.testing.assert_close(enc.standardise(f), by_hand)
    want = enc.patch_embed(by_hand.flatten(-2)) + enc.pos_embed(c)
    torch.testing.assert_close(enc.embed(f, c), want)
    model.save_pretrained(tmp_path / "m")
    loaded = RewardCS.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.mesh_encoder.feature_mean, mean) and torch.equal(loaded.mesh_encoder.feature_std, std)
    assert float(loaded.mesh_encoder.area_scale) == pytest.approx(2e-3)
    assert torch.equal(loaded(f, c, ["a", "b"]).reward, after)
    with pytest.raises(ValueError, match=r"\(10,\)"):
        model.mesh_encoder.set_feature_stats(mean[:3], std)


def test_embedded_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(model_mod, "embedded_dir", lambda: tmp_path / "assets" / "reward")
    with pytest.raises(FileNotFoundError, match="shipped reward model is missing"):
        RewardCS.from_pretrained("embedded")


def test_embedded_loads_from_the_asset_folder_in_float16(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "assets" / "reward"
    model = tiny_model(seed=5).eval()
    model.save_pretrained(d)
    half = {k: v.half() for k, v in load_file(str(d / "model.safetensors")).items()}
    save_file(half, str(d / "model.safetensors"))
    monkeypatch.setattr(model_mod, "embedded_dir", lambda: d)
    loaded = RewardCS.from_pretrained("embedded")
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values())
    f, c = random_batch(2)
    torch.testing.assert_close(loaded(f, c, ["a", "b"]).reward, model(f, c, ["a", "b"]).reward, atol=5e-2, rtol=1e-2)


def test_to_device_moves_the_text_encoder():
    from dreamcs.text import build_text_encoder

    # a private encoder: the shared one (get_text_encoder) must not end up on the meta device
    model = RewardCS(tiny_model().config, text_encoder=build_text_encoder("minilm"))
    model.to("meta")
    assert next(model.text_encoder.parameters()).device.type == "meta"
    assert "text_encoder" not in dict(model.named_modules())
