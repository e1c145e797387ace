"""Guidance backends for score distillation, behind one interface (``Guidance``).

    guidance = build_guidance(GuidanceConfig(name="tiny"), device="cpu")
    text = guidance.encode_prompts("a chair", ["front view", "side view"])   # cached per (prompt, suffix)
    out = guidance.sds_loss(images, text, step)      # images (B, H, W, C) in [0, 1]
    out["loss_sds"].backward()

Registered: ``tiny`` and ``embedded`` (pixel space, ``pixel.py``), ``stable-diffusion``
(``stable_diffusion.py``). ``deepfloyd-if`` and ``mvdream`` are reserved names: a new backend is one
file with ``@GUIDANCE.register(name)`` and an import here.
"""

from dreamcs.generate.guidance.base import (
    GUIDANCE,
    PLANNED,
    Guidance,
    GuidanceConfig,
    TextConditioning,
    build_guidance,
    compose_prompt,
)
from dreamcs.generate.guidance.pixel import EmbeddedGuidance, TinyGuidance, save_prior
from dreamcs.generate.guidance.stable_diffusion import StableDiffusionGuidance

__all__ = [
    "GUIDANCE",
    "PLANNED",
    "Guidance",
    "GuidanceConfig",
    "TextConditioning",
    "build_guidance",
    "compose_prompt",
    "EmbeddedGuidance",
    "TinyGuidance",
    "StableDiffusionGuidance",
    "save_prior",
]
