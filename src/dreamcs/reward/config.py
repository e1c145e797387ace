"""RewardCS hyperparameters: one dataclass, written beside the weights as ``config.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Teacher figures that can be read off a mesh exactly, the floaters differentiably (``RewardCSConfig.exact_figures``;
#: ``dreamcs.reward.exact_figures.READABLE``); the last three (``dreamcs.data.teacher_figures.MESH_ONLY_FIGURES``)
#: have no slot in the figure head.
EXACT_FIGURES = ("parts_far_small", "ragged_boundary", "ragged_holes", "jagged", "folds", "flatness", "thin",
                 "concentration", "self_crossing", "normal_anisotropy", "soft_share")


@dataclass
class RewardCSConfig:
    """The reward model's hyperparameters (its ``__init__`` arguments)."""

    dim: int = 256
    """Token width D of the mesh encoder and of the fused embedding."""
    depth: int = 6
    """Self-attention blocks in the mesh encoder."""
    heads: int = 8
    """Attention heads (dim must be divisible by heads)."""
    cross_depth: int = 2
    """Cross-attention blocks from mesh tokens to text tokens."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP, as a multiple of dim."""
    dropout: float = 0.0
    """Dropout in attention and MLPs (training only)."""
    faces_per_patch: int = 64
    """K: faces per patch; the patch embedding reads K x in_features numbers."""
    in_features: int = 10
    """Face feature channels (MeshMAE's 10)."""
    sliver_gate: float = 0.0
    """> 0: fade the normal channels of faces whose area is small against the mean face area (weight
    a / (a + sliver_gate)); 0: off. Normals of near-degenerate faces make the reward jump under tiny jitter."""
    boundary_channel: bool = False
    """Also read, per face, the share of its edges on an open boundary (``dreamcs.mesh.patch_boundary``):
    MeshMAE's channels assume closed surfaces and barely see holes, cracks or cut-away parts."""
    ragged_channel: bool = False
    """With ``boundary_channel``: also read how much the boundary turns at each open face
    (``patch_boundary(ragged=True)``): clean real meshes are open along straight cuts and creases,
    torn-out faces leave zig-zag loops, and the share of open edges alone cannot tell them apart."""
    isolation_channel: bool = False
    """With ``ragged_channel``: also read whether each face's part floats free of the object
    (``dreamcs.mesh.channels.patch_isolation``): density-field floaters hover apart, real parts touch."""

    @property
    def extra_channels(self) -> int:
        """How many of ``dreamcs.mesh.channels``' channels the model reads (the first ones)."""
        return int(self.boundary_channel) + int(self.ragged_channel) + int(self.isolation_channel)
    text_match: bool = False
    """Add a CLIP-style agreement term to the reward: ``match_scale * cos(W_m cls, W_t pooled prompt)``
    between the mesh encoder's cls token (before fusion) and the prompt's pooled vector. The
    cross-attention path starts with a vanishing gradient w.r.t. the prompt (products of small
    projections), and training on labels that the geometry alone predicts leaves it there: the
    shipped model's reward moves by ~0.1 whatever the prompt. This term's gradient does not vanish."""
    teacher_figures: int = 0
    """> 0: a training-only head that predicts this many of the geometric teacher's penalty ramps
    (``dreamcs.data.teacher_figures``) from the mesh encoder's tokens, before any text; the reward
    does not read it unless ``figure_weight`` > 0. 0: no head (and no such weights in the checkpoint)."""
    figure_weight: float = 0.0
    """With ``teacher_figures``: the reward is ``(1 - w) * learned + w * teacher score`` where the
    teacher score is 5 minus the figure head's weighed penalties (``RewardCS.teacher_score``). The
    learned head ranks meshes like its training data; the figure head reads real objects it has
    never seen more like the teacher does (docs/reward-teacher.md). Training's objectives read the
    learned reward alone whatever w is, so w can be changed after training."""
    exact_figures: list[str] = dataclasses.field(default_factory=list)
    """Teacher figures the reward reads off the mesh itself instead of the figure head, when the
    caller has the mesh (``score``, ``reward eval`` on a set with ``teacher_figures.parquet``, the
    generation branches): ``parts_far_small`` (floaters), which the fused 256 x 64 layout keeps too
    few faces of to be seen (``dreamcs.mesh.parts``; docs/reward-floaters.md). Inference only: the
    head is still trained on it, and without the mesh the head's reading is used. ``self_crossing``,
    ``normal_anisotropy`` and ``soft_share`` (weighed since scorer v5) have no head slot: they count
    only where read off the mesh."""
    pos_hidden: int = 128
    """Hidden width of the positional MLP on patch centres."""
    head_hidden: int = 256
    """Hidden width of the reward head MLP."""
    reward_bias: float = 2.5
    """Initial bias of the reward head: the middle of the 0-5 score range."""
    text_encoder: str = "minilm"
    """Text encoder spec (minilm, clip:PATH_OR_ID, hash[:D]); its weights are never saved here."""
    text_max_length: int = 64
    """Prompt tokens kept by the text encoder."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.figure_weight <= 1.0 or (self.figure_weight > 0 and self.teacher_figures < 1):
            raise ValueError(f"figure_weight must be in [0, 1] and needs teacher_figures > 0, got {self.figure_weight}")
        if self.exact_figures:
            from dreamcs.data.teacher_figures import TEACHER_FIGURES

            unknown = sorted(set(self.exact_figures) - set(EXACT_FIGURES))
            if unknown or self.figure_weight <= 0 or self.teacher_figures != len(TEACHER_FIGURES):
                raise ValueError(f"exact_figures {list(self.exact_figures)}: needs figure_weight > 0, the "
                                 f"scorer's {len(TEACHER_FIGURES)} teacher_figures and names in {EXACT_FIGURES}")
        if self.dim % self.heads != 0:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        for name in ("dim", "depth", "heads", "faces_per_patch", "in_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.ragged_channel and not self.boundary_channel:
            raise ValueError("ragged_channel needs boundary_channel (it is the boundary's second channel)")
        if self.isolation_channel and not self.ragged_channel:
            raise ValueError("isolation_channel needs ragged_channel (the extra channels are read in order)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


#: what every trained preset reads besides MeshMAE's channels (measured on the offline build's
#: object-disjoint val split, 250 steps: ROC-AUC 0.646 without, 0.802 with the boundary channel,
#: 0.814 with the sliver gate too, whose reward also moves 5x less under 1e-5 vertex jitter; with
#: the ragged channel as well, seeds 0-2: val 0.814/0.818/0.780, held-out real meshes
#: 0.673/0.671/0.635 against 0.638/0.642/0.656 without; the isolation channel is measured, not in:
#: val 0.798, held-out 0.649, seed 0). text_match goes with the prompt-swap term (TrainConfig.lambda_swap):
#: seeds 0-2, val 0.869/0.870/0.861 (0.820/0.818/0.780 without), prompt agreement on held-out real
#: meshes 0.56/0.58/0.63 (0.53/0.46/0.47 without), held-out AUC 0.640/0.633/0.623 (0.644/0.659/0.635).
#: The teacher-figure head (teacher_figures, figure_weight) is not in the presets: it needs the data's
#: teacher_figures.parquet and lambda_teacher (docs/reward-teacher.md; the shipped model has it).
_ROBUST = dict(boundary_channel=True, sliver_gate=0.1, ragged_channel=True, text_match=True)

PRESETS: dict[str, dict[str, Any]] = {
    # for the CPU
    "small": dict(dim=256, depth=6, heads=8, cross_depth=2, head_hidden=256, **_ROBUST),
    # the paper's size (MeshMAE base)
    "base": dict(dim=768, depth=12, heads=12, cross_depth=2, head_hidden=768, **_ROBUST),
    # for a 2-core CPU: 2.7x faster than small per step (measured), 1.3M parameters
    "cpu": dict(dim=128, depth=4, heads=4, cross_depth=1, head_hidden=128, pos_hidden=64, **_ROBUST),
    # for tests and smoke runs
    "tiny": dict(dim=32, depth=1, heads=4, cross_depth=1, head_hidden=32, pos_hidden=32),
}


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # `reward train --preset cpu`: 8,000 meshes (about one epoch of 5-10k items). Measured 2.3 meshes/s
    # (batch 32, 2 threads) on a 2-core CPU shared at load ~8, i.e. 58 min there; an idle 2-core CPU
    # should take ~15-30 min. Check meshes_per_s in metrics.jsonl and scale steps to the machine.
    "cpu": dict(steps=250, batch_size=32, lr=5e-4, warmup_steps=20, checkpoint_every=50, lambda_swap=1.0),
    "small": dict(lambda_swap=1.0),
    "base": dict(lambda_swap=1.0),
}
"""TrainConfig defaults that go with a model preset in ``reward train/ablate --preset``."""


def preset(name: str, **overrides: Any) -> RewardCSConfig:
    """``RewardCSConfig`` of a named preset (small, base, cpu, tiny) with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown RewardCS preset {name!r}; known: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(RewardCSConfig)}
    bad = set(overrides) - fields
    if bad:
        raise KeyError(f"unknown RewardCSConfig fields: {', '.join(sorted(bad))}")
    return RewardCSConfig(**{**PRESETS[name], **overrides})
