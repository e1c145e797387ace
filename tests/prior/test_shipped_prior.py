"""The prior that ships in the package loads as the default `embedded` guidance and drives SDS."""

from __future__ import annotations

import torch

from dreamcs.generate.guidance import GuidanceConfig, build_guidance
from dreamcs.generate.guidance.pixel import DEFAULT_PRIOR


def test_shipped_prior_gives_finite_sds_gradients():
    assert (DEFAULT_PRIOR / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (DEFAULT_PRIOR / "MODEL_CARD.md").is_file()
    guidance = build_guidance(GuidanceConfig(name="embedded"))  # no path: the shipped prior
    torch.manual_seed(0)
    images = torch.rand(2, 32, 32, 1, requires_grad=True)
    text = guidance.encode_prompts(["a chair", "a chair"])
    out = guidance.sds_loss(images, text, step=0)
    out["loss_sds"].backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
