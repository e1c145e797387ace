"""Guidance backends for score distillation, behind one interface (``Guidance``).

    guidance = build_guidance(GuidanceConfig(name="tiny"), device="cpu")
    text = guidance.encode_prompts("a chair", ["front view", "side view"])   # cached per (prompt, suffix)
    out = guidance.sds_loss(images, text, step)      # images (B, H, W, C) in [0, 1]
    out["loss_sds"].backward()

Registered: ``tiny`` and ``embedded`` (pixel space, ``pixel.py``), ``stable-diffusion``
(``stable_diffusion.py``), ``mvdream`` (``mvdream.py``: 4-view, camera-conditioned) and
``deepfloyd-if`` (``deepfloyd_if.py``: IF stage I, 64 px pixel space). A new backend is one file
with ``@GUIDANCE.register(name)`` and an import here. Heavy libraries load when a backend is built.
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
from dreamcs.generate.guidance.deepfloyd_if import DeepFloydIFGuidance
from dreamcs.generate.guidance.mvdream import MVDreamGuidance
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
    "MVDreamGuidance",
    "DeepFloydIFGuidance",
    "save_prior",
]
