"""What the SDS branch renders each step: the shading mode, the point lights, and Fantasia3D's
normal + mask latents.

    shading = pick_shading(cfg.render, step)            # "normal", "albedo", "textureless", ...
    lights = sample_lights(cameras, cfg.render)          # (B, 3) or None (a headlight)
    latents = normal_mask_latents(out)                   # (B, H, W, 4) for the warm-up steps

Randomness comes from torch's global generator (seeded and checkpointed by the pipeline).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

#: the warm-up pseudo-shading: the normal map and the mask as SD's 4 latent channels
LATENT_SHADING = "normal+mask"


def pick_shading(r: Any, step: int) -> str:
    """The shading of this step from ``RenderSettings`` ``r`` (one mode for the whole batch)."""
    if step < r.latent_steps:
        return LATENT_SHADING
    if r.shading == "mixed":
        return "normal" if float(torch.rand(())) < r.normal_prob else "diffuse"
    if r.shading == "dreamfusion":
        # threestudio's diffuse-with-point-light material (two draws, as there)
        if step < r.ambient_only_steps or float(torch.rand(())) > r.diffuse_prob:
            return "albedo"
        return "textureless" if float(torch.rand(())) < r.textureless_prob else "lambertian"
    return r.shading


def sample_lights(cameras: Any, r: Any, generator: torch.Generator | None = None) -> Tensor | None:
    """(B, 3) point-light positions for ``random`` light (DreamFusion's sampling), None for a headlight.

    The light's direction is the camera's position plus N(0, perturb) noise, its distance from
    the origin uniform in ``light_distance_range``. ``generator``: the pipeline's global one when
    None; the prior's training views pass their own, so as to render the same lights.
    """
    if r.light != "random":
        return None
    eye, _, _, _ = cameras.frames()
    b = eye.shape[0]
    lo, hi = r.light_distance_range
    dist = lo + (hi - lo) * torch.rand(b, generator=generator)
    direction = F.normalize(eye + torch.randn(b, 3, generator=generator) * r.light_position_perturb, dim=-1)
    return direction * dist.unsqueeze(1)


def normal_mask_latents(out: dict[str, Tensor]) -> Tensor:
    """Fantasia3D's geometry input from a ``normal`` render: (n in [-1, 1], mask) -> (B, H, W, 4).

    The normal image holds (n + 1) / 2 over a black background, weighted by the soft alpha.
    """
    return torch.cat([out["image"] * 2.0 - 1.0, out["alpha"]], dim=-1)
