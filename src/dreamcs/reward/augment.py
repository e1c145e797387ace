"""Cheap training-time augmentation in the patch-feature space, and the per-channel feature
statistics that standardise the model's input.

Augmentation acts on what a rotation about y (the up axis) and a uniform scale do to MeshMAE's
features, without touching the mesh: areas scale by s^2, normals (channels 1:4) rotate, corner
angles and normal dot products are invariant; patch centres rotate and scale.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

AREA, NORMAL = 0, slice(1, 4)


def augment_patches(
    features: Tensor, centers: Tensor, generator: torch.Generator, rotate_y: bool = True, scale_jitter: float = 0.0
) -> tuple[Tensor, Tensor]:
    """features (B, P, K, 10), centers (B, P, 3) -> the same, each mesh rotated by a random angle
    about y and scaled by s ~ U[1 - scale_jitter, 1 + scale_jitter]. Draws from ``generator`` (CPU)."""
    b = features.shape[0]
    if not rotate_y and scale_jitter <= 0:
        return features, centers
    theta = torch.rand(b, generator=generator) * (2 * math.pi) if rotate_y else torch.zeros(b)
    s = 1 + (torch.rand(b, generator=generator) * 2 - 1) * scale_jitter if scale_jitter > 0 else torch.ones(b)
    cos, sin = theta.cos(), theta.sin()
    zero, one = torch.zeros(b), torch.ones(b)
    # rows: x' = cos x + sin z, y' = y, z' = -sin x + cos z (a rotation about +y)
    rot = torch.stack([torch.stack([cos, zero, sin], -1), torch.stack([zero, one, zero], -1),
                       torch.stack([-sin, zero, cos], -1)], 1).to(features)  # (B, 3, 3)
    s = s.to(features)
    feats = features.clone()
    feats[..., NORMAL] = torch.einsum("bij,bpkj->bpki", rot, features[..., NORMAL])
    feats[..., AREA] = features[..., AREA] * (s * s)[:, None, None]
    cents = torch.einsum("bij,bpj->bpi", rot, centers) * s[:, None, None]
    return feats, cents


class FeatureStats(NamedTuple):
    """The input transform's statistics: per-channel mean and std (C,) of the transformed features,
    the mean face area, and those of an extra channel set (E,) when one was asked for."""

    mean: Tensor
    std: Tensor
    area_scale: Tensor
    extra_mean: Tensor | None = None
    extra_std: Tensor | None = None

    def apply(self, encoder: Any) -> None:
        """Fix them in a ``MeshEncoder`` (its extra channels too, when measured)."""
        encoder.set_feature_stats(self.mean, self.std, self.area_scale)
        if self.extra_mean is not None:  # the data may hold more extra channels than the encoder reads
            e = encoder.extra_channels
            encoder.set_extra_stats(self.extra_mean[:e], self.extra_std[:e])


def _moments(total: Tensor, total_sq: Tensor, count: int) -> tuple[Tensor, Tensor]:
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(0).sqrt()
    # a constant channel (std 0) is left unscaled instead of divided by ~0
    return mean.float(), torch.where(std > 1e-8, std, torch.ones_like(std)).float()


def feature_stats(dataset: Any, max_items: int = 512, seed: int = 0, extra_key: str | None = None) -> FeatureStats:
    """The input transform's statistics over up to ``max_items`` items of ``dataset`` (a seeded
    subset): area_scale () the mean face area (from the first 64 of them), then the per-channel
    mean and std (C,) of the features with area as log1p(area / area_scale) (``MeshEncoder.transform``)
    and, with ``extra_key`` (e.g. ``"boundary"``), of ``item[extra_key]`` (..., E) in the same pass.
    Accumulated in float64."""
    n = len(dataset)
    if n == 0:
        raise ValueError("feature_stats: the dataset is empty")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)[: max(1, max_items)].tolist()

    def flat(x: Any) -> Tensor:
        x = torch.as_tensor(x).double()
        return x.reshape(-1, x.shape[-1])

    areas = torch.cat([flat(dataset[i]["features"])[:, 0] for i in idx[:64]])
    area_scale = areas.clamp_min(0).mean()
    if not area_scale > 0:
        area_scale = torch.ones((), dtype=torch.float64)
    sums: dict[str, list] = {}
    for i in idx:
        item = dataset[i]
        f = flat(item["features"])
        parts = {"features": torch.cat([torch.log1p(f[:, :1].clamp_min(0) / area_scale), f[:, 1:]], 1)}
        if extra_key is not None:
            parts["extra"] = flat(item[extra_key])
        for k, x in parts.items():
            acc = sums.setdefault(k, [0.0, 0.0, 0])
            acc[0], acc[1], acc[2] = acc[0] + x.sum(0), acc[1] + x.pow(2).sum(0), acc[2] + x.shape[0]
    mean, std = _moments(*sums["features"])
    extra = _moments(*sums["extra"]) if extra_key is not None else (None, None)
    return FeatureStats(mean, std, area_scale.float(), *extra)
