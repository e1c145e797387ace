"""``Reward2DConfig``: the ``reward_2d`` section of a generation run (kept light: no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dreamcs.schedule import validate_schedule

REWARD_2D_NAMES = ("imagereward", "reward3d-fusion", "reward3d-scorer")


@dataclass
class Reward2DConfig:
    """A 2D reward on the rendered views beside RewardCS: loss = L_SDS - alpha_2d(t) r_2d - alpha_3d(t) r_3d."""

    name: str = "imagereward"
    """``imagereward`` (per view, averaged), ``reward3d-fusion`` or ``reward3d-scorer`` (DreamReward's
    Reward3D on groups of 4 views: render.batch_size must be a multiple of 4)."""
    checkpoint: str | None = None
    """A 2D reward folder (``config.yaml`` + ``model.safetensors`` + ``tokenizer/``); None = off."""
    alpha: Any = field(default_factory=lambda: [0, 0.0, 1.0, 1000])
    """Schedule alpha_2d(t): [start_step, alpha_min, alpha_max, end_step] (not tuned here)."""
    every: int = 1
    """Score the rendered views every k steps, weighted k * alpha_2d(t) there (as ``reward.every``), so
    that the guidance per step stays alpha_2d(t) on average."""
    view_dependent: bool = False
    """Score with the view-dependent prompts (``"<prompt>, side view"``, as DreamReward does)."""

    def validate(self, batch_size: int) -> None:
        if self.name not in REWARD_2D_NAMES:
            raise ValueError(f"reward_2d.name: {self.name!r} is not one of {', '.join(REWARD_2D_NAMES)}")
        if self.every < 1:
            raise ValueError(f"reward_2d.every must be at least 1, got {self.every}")
        validate_schedule(self.alpha, "reward_2d.alpha")
        if self.checkpoint and self.name.startswith("reward3d") and batch_size % 4:
            raise ValueError(f"reward_2d.name={self.name} scores groups of 4 views: render.batch_size="
                             f"{batch_size} must be a multiple of 4")


def head_of(folder: str) -> str:
    """The head (``imagereward`` / ``reward3d-*``) a 2D reward folder's ``config.yaml`` names."""
    from pathlib import Path

    import yaml

    f = Path(folder) / "config.yaml"
    if not f.is_file():
        raise FileNotFoundError(f"{folder}: not a 2D reward folder (no config.yaml)")
    head = (yaml.safe_load(f.read_text()) or {}).get("head")
    if head not in REWARD_2D_NAMES:
        raise ValueError(f"{f}: head {head!r} is not one of {', '.join(REWARD_2D_NAMES)}")
    return str(head)
