"""RewardCS: the geometry-aware reward model, its Cauchy-Schwarz divergence loss, training and
evaluation. Heavy pieces (trainer, evaluation) are imported from their modules where used."""

from dreamcs.reward.config import PRESETS, RewardCSConfig, preset
from dreamcs.reward.cs_divergence import cs_divergence, median_sigma
from dreamcs.reward.model import RewardCS, RewardOutput

__all__ = ["PRESETS", "RewardCS", "RewardCSConfig", "RewardOutput", "cs_divergence", "median_sigma", "preset"]
