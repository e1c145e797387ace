"""MeshMAE face features in plain torch: differentiable, batched, safe on degenerate faces.

Channel order (10 per face), as in MeshMAE:
    0      face area
    1:4    unit face normal (x, y, z)
    4:7    the three corner angles in radians, sorted ascending (they sum to pi)
    7:10   dot products of the face normal with its three vertex normals, sorted ascending

Vertex normals are **area-weighted**: the sum of the (unnormalised) cross products of the faces
around a vertex, then normalised. They are computed over all faces passed in, so
``patch_features`` sees the same vertex normals as ``face_features`` on the flattened faces.

Degenerate faces (zero area, repeated vertices) give finite values and finite gradients: norms go
through a "double where" so that sqrt never sees 0 in the backward pass; a face of zero area has
area 0 and normal (0, 0, 0); a corner whose two edges do not both have length above ``EPS_LEN``
has no defined angle and gets an equal share of what the defined corners leave of pi (a face with
two coincident vertices has angles (0, pi/2, pi/2)). Lengths are absolute, so features are meant
for meshes normalised into [-1, 1]^3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["face_features", "patch_features", "patch_centers", "N_FEATURES"]

N_FEATURES = 10
EPS_LEN = 1e-6  # edges shorter than this count as collapsed (meshes live in [-1, 1]^3)
EPS_NORM = 1e-12  # cross products / normals shorter than this count as zero


def _norm(x: Tensor, y: Tensor, z: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Length of (x, y, z) and the mask where it exceeds eps; exactly 0 with zero gradient elsewhere.

    The "double where" keeps sqrt away from 0 in the backward pass (sqrt'(0) would give NaN).
    """
    sq = x * x + y * y + z * z
    ok = sq > eps * eps
    return torch.where(ok, torch.sqrt(torch.where(ok, sq, torch.ones_like(sq))), torch.zeros_like(sq)), ok


def _unit(v: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Normalise (..., 3, N) along axis -2; vectors shorter than eps become 0 (with zero gradient)."""
    x, y, z = v.unbind(-2)
    n, ok = _norm(x, y, z, eps)
    safe = torch.where(ok, n, torch.ones_like(n)).unsqueeze(-2)
    return torch.where(ok.unsqueeze(-2), v / safe, torch.zeros_like(v)), n


def _dot(u: Tensor, w: Tensor) -> Tensor:
    """Dot product over axis -2 of (..., 3, N) tensors (rows are contiguous, so this is fast)."""
    return (u * w).sum(-2)


def _check_faces(vertices: Tensor, faces: Tensor) -> Tensor:
    if vertices.shape[-1] != 3 or vertices.ndim < 2:
        raise ValueError(f"vertices must have shape (..., V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    return faces.to(device=vertices.device, dtype=torch.long)


def face_features(vertices: Tensor, faces: Tensor) -> Tensor:
    """Per-face MeshMAE features.

    Args:
        vertices: (..., V, 3) float positions (any leading batch shape).
        faces: (F, 3) long vertex indices.

    Returns:
        (..., F, 10) features in MeshMAE's channel order (see the module docstring).
    """
    faces = _check_faces(vertices, faces)
    n_faces = faces.shape[0]
    # coordinate-major layout (..., 3, N): every reduction over xyz is a sum of 3 contiguous rows
    vt = vertices.transpose(-1, -2)
    corner_idx = faces.t().reshape(-1)  # corner-major: all first corners, then second, then third
    tri = vt.index_select(-1, corner_idx).unflatten(-1, (3, n_faces))  # (..., 3 xyz, 3 corners, F)
    edges = tri.roll(-1, dims=-2) - tri  # edge k leaves corner k: (..., 3, 3, F)
    e0, e1, e2 = edges.unbind(-2)

    ax, ay, az = e0.unbind(-2)
    bx, by, bz = e2.unbind(-2)
    # cross(e0, -e2) = cross(b - a, c - a), the face normal times 2 * area
    cross = torch.stack([az * by - ay * bz, ax * bz - az * bx, ay * bx - ax * by], dim=-2)
    normal, cross_len = _unit(cross, EPS_NORM)  # (..., 3, F), (..., F)

    # corner k lies between edge k (leaving it) and edge k-1 (arriving): angle = atan2(|u x w|, u . w),
    # exact near 0 and pi, unlike acos; |u x w| = cross_len for all three corners
    sq_len = (edges * edges).sum(-3) > EPS_LEN**2  # (..., 3, F)
    defined = sq_len & sq_len.roll(1, dims=-2)
    cos_part = -(edges * edges.roll(1, dims=-2)).sum(-3)  # (..., 3, F)
    ang = torch.atan2(
        torch.where(defined, cross_len.unsqueeze(-2).expand_as(cos_part), torch.zeros_like(cos_part)),
        torch.where(defined, cos_part, torch.ones_like(cos_part)),
    )
    ang = torch.where(defined, ang, torch.zeros_like(ang))
    fill = (math.pi - ang.sum(-2, keepdim=True)) / (~defined).sum(-2, keepdim=True).clamp_min(1)
    ang = torch.where(defined, ang, fill)

    # area-weighted vertex normals: scatter the raw cross products onto the corners
    vn = torch.zeros_like(vt).index_add(-1, corner_idx, cross.repeat(*([1] * (cross.ndim - 1)), 3))
    vn, _ = _unit(vn, EPS_NORM)
    cvn = vn.index_select(-1, corner_idx).unflatten(-1, (3, n_faces))  # (..., 3 xyz, 3 corners, F)
    vdots = (cvn * normal.unsqueeze(-2)).sum(-3)  # (..., 3, F)

    # one sort for both sorted groups: (..., F, 2, 3)
    both = torch.cat([ang, vdots], dim=-2).transpose(-1, -2).unflatten(-1, (2, 3)).sort(dim=-1).values
    return torch.cat([(0.5 * cross_len).unsqueeze(-1), normal.transpose(-1, -2), both.flatten(-2)], dim=-1)


def patch_features(vertices: Tensor, faces: Tensor) -> Tensor:
    """Features in the patch layout.

    Args:
        vertices: (..., V, 3) float.
        faces: (P, K, 3) long.

    Returns:
        (..., P, K, 10).
    """
    if faces.ndim != 3 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (P, K, 3), got {tuple(faces.shape)}")
    p, k = faces.shape[:2]
    feats = face_features(vertices, faces.reshape(-1, 3))
    return feats.reshape(*feats.shape[:-2], p, k, N_FEATURES)


def patch_centers(vertices: Tensor, faces: Tensor) -> Tensor:
    """Mean face centroid per patch.

    Args:
        vertices: (..., V, 3) float.
        faces: (P, K, 3) long.

    Returns:
        (..., P, 3).
    """
    if faces.ndim != 3 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (P, K, 3), got {tuple(faces.shape)}")
    faces = faces.to(device=vertices.device, dtype=torch.long)
    # mean of the face centroids = mean over all K*3 corners of the patch
    return vertices[..., faces.reshape(faces.shape[0], -1), :].mean(-2)
