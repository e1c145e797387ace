"""The prior's training config (``PriorTrainConfig``, loaded from YAML, overridable as key=value) and
its shipped presets (``configs/prior/*.yaml``); the trainer is ``dreamcs.prior.train``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dreamcs.prior.data import ViewDataConfig

DEFAULT_CARD_PROMPTS = ["a chair", "a table", "a sphere", "a bed", "a door", "a tree", "a horse", "a lamp", "a vase",
                        "a pyramid"]
#: shipped training presets (``prior train --preset NAME``): PriorTrainConfig YAMLs; ``embedded``
#: is the dataclass defaults (the prior shipped before issue 18)
PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "prior"


def preset_path(name: str) -> Path | None:
    """The YAML of training preset ``name`` (None for ``embedded``: the defaults); unknown names raise."""
    if name == "embedded":
        return None
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(["embedded", *sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))])
        raise FileNotFoundError(f"prior preset {name!r} not found in {PRESET_DIR} (known: {known})")
    return path


def default_cache_dir() -> Path:
    """Where rendered views are cached: ``$XDG_CACHE_HOME/dreamcs/prior-views`` (or ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dreamcs" / "prior-views"


@dataclass
class PriorTrainConfig:
    """Training the embedded pixel prior (defaults: ../shared/notes/offline-prior.md)."""

    data: ViewDataConfig = field(default_factory=ViewDataConfig)
    """Which meshes and how they are rendered."""
    text_encoder: str = "minilm"
    """A ``dreamcs.text`` spec; its width is the UNet's cross_attention_dim (MiniLM: 384)."""
    max_tokens: int = 16
    """Token embeddings per caption (padded / truncated, with a mask), as guidance encodes them."""
    block_out_channels: list[int] = field(default_factory=lambda: [24, 48, 96])
    """UNet widths per level (one layer each; cross-attention on all but the first, and the middle)."""
    init_from: str | None = None
    """Start from the UNet of a prior folder (``unet/`` in diffusers format) instead of a seeded
    fresh one; ``embedded``: the prior shipped in the package. Its widths must match
    ``block_out_channels``. Ignored on ``--resume`` (the checkpoint holds the weights)."""
    steps: int = 6000
    """Optimiser steps in all (a resumed run counts from where it stopped)."""
    minutes: float | None = None
    """Wall-clock budget of this invocation; stops early (and still writes the prior) when spent."""
    batch_size: int = 32
    lr: float = 5e-4
    """AdamW peak learning rate, reached after ``warmup_steps`` (linear), then constant (but see ``cooldown_steps``)."""
    warmup_steps: int = 200
    cooldown_steps: int = 0
    """The last this-many steps decay the rate linearly to ``lr * cooldown_floor`` (warmup-stable-
    decay): a constant-rate run resumed with a larger ``steps`` and a cooldown anneals it."""
    cooldown_floor: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    ema_decay: float = 0.995
    """EMA of the weights (what ships); the decay warms up as min(decay, (1 + k) / (10 + k))."""
    p_blank: float = 0.1
    """Share of empty captions (trains the unconditional branch for classifier-free guidance)."""
    p_category: float = 0.25
    """Share of captions replaced by "a {category}"."""
    p_view: float = 0.0
    """Share of (non-blank) captions that get the view suffix SDS appends ("a chair, back view"),
    from the view's azimuth and elevation; the rest stay plain, for recipes without view prompts."""
    hflip: bool = True
    """Mirror half the views (left-right): more views of the same shapes."""
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    seed: int = 0
    device: str = "cpu"
    """``cpu`` or ``cuda`` / ``cuda:N``. Batches, timesteps and noise are drawn on the CPU from the
    seeded generator and moved, so a run draws the same data on any device (and resumes on another;
    the float results differ by rounding only); checkpoints are written from the CPU."""
    log_every: int = 10
    save_every: int = 250
    keep_checkpoints: int = 2
    cache_dir: str | None = None
    """Rendered-view cache folder (None: ``default_cache_dir()``)."""
    card: bool = True
    """Write the model card (DDIM samples, plots) at the end; off for quick runs and tests."""
    card_prompts: list[str] = field(default_factory=lambda: list(DEFAULT_CARD_PROMPTS))
    card_samples: int = 4
    card_steps: int = 50
    card_guidance: float = 4.0

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1 or self.save_every < 1:
            raise ValueError("prior: steps, batch_size, log_every and save_every must be positive")
        if not 0 <= self.p_blank + self.p_category <= 1 or min(self.p_blank, self.p_category) < 0:
            raise ValueError(f"prior: p_blank + p_category must lie in [0, 1], got {self.p_blank}, {self.p_category}")
        if not 0 <= self.p_view <= 1:
            raise ValueError(f"prior: p_view must lie in [0, 1], got {self.p_view}")
        if self.cooldown_steps < 0 or not 0 <= self.cooldown_floor <= 1:
            raise ValueError(f"prior: cooldown_steps must be >= 0 and cooldown_floor in [0, 1], got "
                             f"{self.cooldown_steps}, {self.cooldown_floor}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"prior: ema_decay must be in [0, 1), got {self.ema_decay}")
        if len(self.block_out_channels) < 2:
            raise ValueError("prior: block_out_channels needs at least two levels")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"prior: device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"prior: device={self.device} but torch sees no CUDA GPU (torch {torch.__version__}); use device=cpu")
