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


def test_embedded_names_the_shipped_prior_everywhere(tmp_path):
    """guidance.pretrained=embedded (as init_from=embedded and the reward's --ckpt embedded) is the shipped
    prior, not a folder called "embedded"; any other path is taken as given."""
    from dreamcs.generate.guidance.pixel import prior_dir

    assert prior_dir("embedded") == prior_dir(None) == DEFAULT_PRIOR
    assert prior_dir(tmp_path) == tmp_path
    guidance = build_guidance(GuidanceConfig(name="embedded", pretrained="embedded"))
    shipped = build_guidance(GuidanceConfig(name="embedded"))
    a, b = guidance.unet.state_dict(), shipped.unet.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
