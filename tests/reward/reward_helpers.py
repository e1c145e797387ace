"""Test helpers for the reward stage: tiny configs, a mesh-core availability check."""

from __future__ import annotations

import pytest
import torch

from dreamcs.reward import RewardCS, preset


def tiny_model(seed: int = 0, **overrides) -> RewardCS:
    torch.manual_seed(seed)
    kw = dict(text_encoder="hash:16", faces_per_patch=8)
    kw.update(overrides)
    return RewardCS(preset("tiny", **kw))


def random_batch(b: int = 3, p: int = 12, k: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, p, k, 10, generator=g), torch.rand(b, p, 3, generator=g) * 2 - 1


def mesh_core():
    """The mesh core module, or skip while fusion/features have not landed."""
    import dreamcs.mesh as mesh

    needed = ("patch_features", "patch_centers", "fuse", "PatchedMesh")
    if not all(hasattr(mesh, n) for n in needed):
        pytest.skip("mesh core (fuse, patch_features) not available yet")
    return mesh
