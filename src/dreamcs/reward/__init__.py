"""RewardCS: the geometry-aware reward model, its Cauchy-Schwarz divergence loss, training and
evaluation. Heavy pieces (trainer, evaluation) are imported from their modules where used."""

from dreamcs.reward.config import PRESETS, RewardCSConfig, preset
from dreamcs.reward.cs_divergence import cross_median_sigma, cs_divergence, median_sigma, mmd2
from dreamcs.reward.model import RewardCS, RewardOutput

__all__ = [
    "PRESETS", "RewardCS", "RewardCSConfig", "RewardOutput", "cross_median_sigma", "cs_divergence", "median_sigma",
    "mmd2", "preset",
]
