"""SDS guidance: the loss, its gradient, CFG, annealing, the NaN guard, caching, and offline loading
of every backend from folders built here from configs (no hub)."""

import pytest
import torch

from dreamcs.generate.guidance import (
    GuidanceConfig,
    TextConditioning,
    build_guidance,
    save_prior,
)
from dreamcs.generate.guidance.pixel import tiny_unet
from dreamcs.generate.guidance.tiny_sd import save_tiny_stable_diffusion


@pytest.fixture(scope="module")
def tiny():
    return build_guidance(GuidanceConfig(name="tiny", image_size=16, channels=3, guidance_scale=7.5,
                                         block_out_channels=[8, 16], cross_attention_dim=16))


def _images(b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, size, size, 3, generator=g).requires_grad_(True)


def test_sds_gradient_is_w_times_residual(tiny):
    torch.manual_seed(0)
    img = _images()
    text = tiny.encode_prompts("a chair", ["front view", "back view"])
    out = tiny.sds_loss(img, text, step=0)
    out["loss_sds"].backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    # pixel latents are 2x - 1 and loss = 0.5 ||z - (z - g)||^2 / B, so d loss / d x = 2 g / B
    expected = (2 * out["grad"] / img.shape[0]).permute(0, 2, 3, 1)
    assert torch.allclose(img.grad, expected, atol=1e-5)
    assert out["loss_sds"].item() == pytest.approx(0.5 * out["grad"].pow(2).sum().item() / 2, rel=1e-4)
    assert out["n_nonfinite"] == 0 and out["t"].shape == (2,)


def test_same_seed_same_loss(tiny):
    text = tiny.encode_prompts("a chair", ["front view", "back view"])
    losses = []
    for _ in range(2):
        torch.manual_seed(3)
        losses.append(tiny.sds_loss(_images(), text, step=5)["loss_sds"].item())
    assert losses[0] == losses[1]


def test_classifier_free_guidance_mixes_branches(tiny):
    text = tiny.encode_prompts("a red chair", ["side view"])
    x = torch.randn(1, 3, 16, 16)
    t = torch.tensor([500])
    cond_only = TextConditioning(text.cond, text.cond, text.cond_mask, text.cond_mask)
    eps_c = tiny.predict_noise(x, t, cond_only, 1.0)
    eps_u = tiny.predict_noise(x, t, TextConditioning(text.uncond, text.uncond, text.uncond_mask,
                                                      text.uncond_mask), 1.0)
    for s in (0.0, 1.0, 5.0):
        mixed = tiny.predict_noise(x, t, text, s)
        assert torch.allclose(mixed, eps_u + s * (eps_c - eps_u), atol=1e-4)
    assert not torch.allclose(eps_c, eps_u)


def test_timesteps_anneal_with_the_schedule():
    g = build_guidance(GuidanceConfig(name="tiny", image_size=8, block_out_channels=[8, 16],
                                      cross_attention_dim=8, min_step_percent=0.02,
                                      max_step_percent=[0, 0.98, 0.5, 100]))
    assert g.timestep_range(0) == (20, 980)
    assert g.timestep_range(50) == (20, 740)
    assert g.timestep_range(1000) == (20, 500)
    torch.manual_seed(0)
    text = g.encode_prompts("x", ["front view"] * 8)
    t = g.sds_loss(torch.rand(8, 8, 8, 3), text, step=1000)["t"]
    assert int(t.min()) >= 20 and int(t.max()) <= 500


def test_nan_guard_zeroes_bad_entries(tiny, monkeypatch):
    text = tiny.encode_prompts("a chair", ["front view", "side view"])
    img = _images()
    with torch.no_grad():
        img[0, 3, 4, 1] = float("nan")
    img.requires_grad_(True)
    torch.manual_seed(0)
    out = tiny.sds_loss(img, text, step=0)
    out["loss_sds"].backward()
    assert out["n_nonfinite"] > 0
    assert torch.isfinite(out["loss_sds"]) and torch.isfinite(img.grad).all()
    assert img.grad.abs().sum() > 0

    real = tiny.predict_noise

    def poisoned(noisy, t, txt, s):
        eps = real(noisy, t, txt, s)
        eps[0, 0, :2] = float("inf")
        return eps

    monkeypatch.setattr(tiny, "predict_noise", poisoned)
    img2 = _images()
    out = tiny.sds_loss(img2, text, step=0)
    out["loss_sds"].backward()
    assert out["n_nonfinite"] == 32 and torch.isfinite(out["loss_sds"]) and torch.isfinite(img2.grad).all()


def test_gradient_clipping_bounds_the_gradient():
    g = build_guidance(GuidanceConfig(name="tiny", image_size=8, block_out_channels=[8, 16],
                                      cross_attention_dim=8, grad_clip=[0, 0.01, 1.0, 100]))
    torch.manual_seed(0)
    out = g.sds_loss(torch.rand(2, 8, 8, 3), g.encode_prompts("x", ["a", "b"]), step=0)
    assert out["grad"].abs().max() <= 0.01 + 1e-7


def test_text_is_cached_per_prompt_and_suffix(monkeypatch):
    g = build_guidance(GuidanceConfig(name="tiny", image_size=8, block_out_channels=[8, 16],
                                      cross_attention_dim=8))
    calls = []
    real = g._encode_text_uncached
    monkeypatch.setattr(g, "_encode_text_uncached", lambda texts: calls.append(list(texts)) or real(texts))
    a = g.encode_prompts("a cat", ["front view", "side view", "front view"])
    b = g.encode_prompts("a cat", ["side view"])
    assert sorted(sum(calls, [])) == sorted(["a cat, front view", "a cat, side view", ""])
    assert torch.equal(a.cond[1], b.cond[0]) and not torch.equal(a.cond[0], a.cond[1])
    assert torch.equal(a.cond[0], a.cond[2]) and a.cond_mask is not None
    assert len(g.encode_prompts(["a", "b"], ["front view"])) == 2
    with pytest.raises(ValueError, match="3 prompts for 2 view suffixes"):
        g.encode_prompts(["a", "b", "c"], ["front view", "side view"])


def test_planned_and_unknown_backends_are_named():
    with pytest.raises(ValueError, match="guidance.pretrained"):
        build_guidance(GuidanceConfig(name="mvdream"))
    with pytest.raises(ValueError, match="guidance.pretrained"):
        build_guidance(GuidanceConfig(name="deepfloyd-if"))
    with pytest.raises(KeyError, match="unknown guidance 'nope'"):
        build_guidance(GuidanceConfig(name="nope"))
    with pytest.raises(ValueError, match="weighting"):
        build_guidance(GuidanceConfig(name="tiny", weighting="bogus"))


def test_embedded_loads_a_prior_folder(tmp_path):
    from diffusers import DDIMScheduler

    with pytest.raises(FileNotFoundError, match="dreamcs prior train"):
        build_guidance(GuidanceConfig(name="embedded", pretrained=str(tmp_path / "none")))
    torch.manual_seed(0)
    unet = tiny_unet(1, 16, [8, 16], 24)
    # a dreamcs.text spec, as the shipped prior's "minilm" (hash: no weights to load in a test)
    save_prior(tmp_path / "prior", unet, DDIMScheduler(num_train_timesteps=1000), text_encoder="hash:24",
               max_tokens=8)
    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(tmp_path / "prior"), guidance_scale=7.5))
    assert g.channels == 1 and g.image_size == 16
    text = g.encode_prompts("a chair with four legs and a tall back", ["front view", "side view"])
    assert text.cond.shape == (2, 8, 24) and text.cond_mask.all()  # truncated to max_tokens
    img = _images(size=32)
    torch.manual_seed(0)
    out = g.sds_loss(img, g.encode_prompts("a chair", ["front view", "side view"]), step=0)
    out["loss_sds"].backward()
    assert out["grad"].shape == (2, 1, 16, 16)
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


# -- stable-diffusion, from a tiny pipeline saved here --------------------------------------------
# build_tiny_sd: the package's own tiny SD builder (test_pipeline imports it from here)
build_tiny_sd = save_tiny_stable_diffusion


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


def test_stable_diffusion_loads_offline_and_gives_finite_gradients(tiny_sd):
    g = build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=str(tiny_sd), image_size=32))
    text = g.encode_prompts("a hamburger", ["front view", "overhead view"])
    assert text.cond.shape == (2, 77, 32) and text.cond_mask is None
    assert not torch.equal(text.cond[0], text.cond[1])  # the tokenizer saw the two suffixes
    ids = g.tokenizer(["ab"]).input_ids[0]
    assert len(ids) == 4 and ids[0] == g.tokenizer.bos_token_id  # <start> a b</w> <end>
    img = _images(size=24)
    torch.manual_seed(0)
    out = g.sds_loss(img, text, step=0)
    out["loss_sds"].backward()
    assert out["grad"].shape == (2, 4, 16, 16)  # the tiny VAE halves the 32 px input
    assert torch.isfinite(out["loss_sds"]) and torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


def test_stable_diffusion_bad_folder_is_named(tmp_path):
    with pytest.raises(OSError, match="could not load Stable Diffusion"):
        build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=str(tmp_path)))
