"""MeshMAE face features in plain torch: differentiable, batched, safe on degenerate faces.

Channel order (10 per face), as in MeshMAE:
    0      face area
    1:4    unit face normal (x, y, z)
    4:7    the three corner angles in radians, sorted ascending (they sum to pi)
    7:10   dot products of the face normal with its three vertex normals, sorted ascending

Vertex normals are **area-weighted**: the sum of the (unnormalised) cross products of the faces
around a vertex, then normalised. They are computed over all faces passed in, so
``patch_features`` sees the same vertex normals as ``face_features`` on the flattened faces.

Degenerate faces (zero area, repeated vertices) give finite values and finite gradients: lengths
at or below ``EPS_NORM`` count as zero, with zero gradient; a face of zero area has
area 0 and normal (0, 0, 0); a corner whose two edges do not both have length above ``EPS_LEN``
has no defined angle and gets an equal share of what the defined corners leave of pi (a face with
two coincident vertices has angles (0, pi/2, pi/2)). Lengths are absolute, so features are meant
for meshes normalised into [-1, 1]^3.

The gradient is hand-written (a ``torch.autograd.Function``, checked against float64 gradcheck in
the tests) for speed; it is first-order only (``once_differentiable``): no double backward.

On CPU, float32 and float64 run compiled numba kernels (``_feature_kernels``: fwd+bwd ~2.1x faster
at 16k faces; compiled on the first call, ~7 s per dtype, then cached on disk) with the same
arithmetic; the torch code below serves CUDA and other dtypes and is the reference
(``USE_NUMBA = False`` forces it everywhere).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dreamcs.mesh.channels import patch_boundary  # noqa: F401  (re-exported: it lived here)

__all__ = ["face_features", "patch_features", "patch_centers", "patch_boundary", "N_FEATURES"]

N_FEATURES = 10
EPS_LEN = 1e-6  # edges shorter than this count as collapsed (meshes live in [-1, 1]^3)
EPS_NORM = 1e-12  # cross products / normals shorter than this count as zero
USE_NUMBA = True  # CPU float32/float64 through the compiled kernels; False: the torch path everywhere


def _check_faces(vertices: Tensor, faces: Tensor) -> Tensor:
    if vertices.shape[-1] != 3 or vertices.ndim < 2:
        raise ValueError(f"vertices must have shape (..., V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    return faces.to(device=vertices.device, dtype=torch.long)


# Implementation notes (why it looks like this): the features are one torch.autograd.Function with a
# hand-written backward, because autograd over ~100 small ops cost more than the ops themselves.
# Layout is coordinate-major, (B, 3 xyz, 3 corners, F), so every xyz reduction sums contiguous rows.
# Masks are float 0/1 (comparisons with a float `out=`) and are applied by multiplication or lerp:
# on CPU, bool tensors and torch.where are several times slower than float arithmetic. Masked
# divisions use mask / (x + (1 - mask)), which is 1/x where the mask is 1 and exactly 0 elsewhere.


def _fmask(x: Tensor, threshold: float) -> Tensor:
    """Float 0/1 mask of x > threshold."""
    return torch.gt(x, threshold, out=torch.empty_like(x))


def _cross(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """a x b over axis 1 of (B, 3, N) tensors."""
    ax, ay, az = a.unbind(1)
    bx, by, bz = b.unbind(1)
    if out is None:
        out = torch.empty_like(a)
    torch.sub(ay * bz, az * by, out=out[:, 0])
    torch.sub(az * bx, ax * bz, out=out[:, 1])
    torch.sub(ax * by, ay * bx, out=out[:, 2])
    return out


def _masked_unit(x: Tensor, eps: float, out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 3, N) -> (unit vectors, 0 where |x| <= eps; lengths, 0 there too; 1/length, 0 there too)."""
    sq = (x * x).sum(1)
    ok = _fmask(sq, eps * eps)
    length = sq.sqrt_().mul_(ok)
    inv = ok / (length + (1 - ok))  # not (length + 1) - ok, which rounds length away
    return torch.mul(x, inv.unsqueeze(1), out=out), length, inv


def _sort3_fwd(x: Tensor, out: Tensor) -> Tensor:
    """Sort (..., 3, N) along axis -2 into ``out`` with a 3-element sorting network.

    Returns the (..., 3, N) float masks of its three compare-exchanges, for ``_sort3_bwd``.
    torch.sort (and its scatter backward) cost ~15x more for rows of three.
    """
    a, b, c = x.unbind(-2)
    w = torch.empty_like(x)  # w[0]: a <= b, w[1]: min(a, b) <= c, w[2]: max(a, b) <= max(min(a, b), c)
    w0, w1, w2 = w.unbind(-2)
    s0, s1, s2 = out.unbind(-2)
    torch.le(a, b, out=w0)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    torch.le(lo, c, out=w1)
    torch.minimum(lo, c, out=s0)
    t = torch.maximum(lo, c)
    torch.le(hi, t, out=w2)
    torch.minimum(hi, t, out=s1)
    torch.maximum(hi, t, out=s2)
    return w


def _sort3_bwd(g: Tensor, w: Tensor) -> Tensor:
    """Route the gradient of the sorted (..., 3, N) values back through the network (a permutation).

    lerp is exact at weights 0 and 1, so each gradient lands unchanged on exactly one input.
    """
    g0, g1, g2 = g.unbind(-2)
    w0, w1, w2 = w.unbind(-2)
    g_hi, g_t = torch.lerp(g2, g1, w2), torch.lerp(g1, g2, w2)
    g_lo = torch.lerp(g_t, g0, w1)
    out = torch.empty(g.shape, dtype=g.dtype, device=g.device)  # contiguous, whatever g's strides
    ga, gb, gc = out.unbind(-2)
    torch.lerp(g0, g_t, w1, out=gc)
    torch.lerp(g_hi, g_lo, w0, out=ga)
    torch.lerp(g_lo, g_hi, w0, out=gb)
    return out


class _FaceFeatures(torch.autograd.Function):
    """(B, V, 3) vertices, (3F,) corner-major vertex indices -> (B, 10, F) features."""

    @staticmethod
    def forward(ctx, v: Tensor, cidx: Tensor) -> Tensor:  # type: ignore[override]
        b, n_verts = v.shape[0], v.shape[1]
        n_faces = cidx.shape[0] // 3
        vt = v.transpose(1, 2).reshape(b * 3, n_verts)  # (B * 3, V): 2-d index ops have a fast path
        p = vt.index_select(1, cidx).view(b, 3, 3, n_faces)  # (B, xyz, corner, F)
        e = torch.empty_like(p)  # edge k leaves corner k: p[k + 1] - p[k]
        torch.sub(p[:, :, 1:], p[:, :, :2], out=e[:, :, :2])
        torch.sub(p[:, :, :1], p[:, :, 2:], out=e[:, :, 2:])
        del p

        # results go to contiguous channel rows, (B, 10, F), which face_features hands out as a
        # transposed view: elementwise ops writing strided outputs (or reading strided inputs) are
        # several times slower, and a transposing copy costs as much as a third of the forward
        res = e.new_empty(b, N_FEATURES, n_faces)
        # cross(e2, e0) = cross(b - a, c - a): the face normal times twice the area
        cross = _cross(e[:, :, 2], e[:, :, 0])
        normal, length, inv = _masked_unit(cross, EPS_NORM)
        res[:, 1:4] = normal  # a copy: saved tensors must not share memory with the returned view
        torch.mul(length, 0.5, out=res[:, 0])

        # corner k lies between edge k (leaving it) and edge k-1 (arriving): angle = atan2(|u x w|, u . w),
        # exact near 0 and pi, unlike acos; |u x w| = |cross| for all three corners
        sorted_in = e.new_empty(b, 2, 3, n_faces)  # angles, then vertex normal dots
        x = sorted_in[:, 1]  # borrowed as scratch for -(e_k . e_{k-1}) until the dots overwrite it
        for k in range(3):
            torch.sum(e[:, :, k] * e[:, :, k - 1], dim=1, out=x[:, k])
        x = x.neg()
        ang = sorted_in[:, 0]
        sq_len = (e * e).sum(1)  # (B, 3, F) squared edge lengths
        if n_faces == 0 or float(sq_len.min()) > EPS_LEN**2:
            y = length.unsqueeze(1)
            torch.atan2(y, x, out=ang)
            defined = undefined = n_undef = None
        else:
            # An undefined corner (an edge under EPS_LEN) gets atan2(0, 1) = 0, then its share of the
            # rest of pi. Rare, so kept off the common path.
            long_edge = _fmask(sq_len, EPS_LEN**2)
            defined = long_edge * long_edge.roll(1, dims=1)
            undefined = 1 - defined
            y = length.unsqueeze(1) * defined
            x = torch.addcmul(undefined, x, defined)
            torch.atan2(y, x, out=ang)
            n_undef = undefined.sum(1).clamp_min_(1)
            fill = (math.pi - ang.sum(1)) / n_undef
            ang.addcmul_(undefined, fill.unsqueeze(1))

        # area-weighted vertex normals: scatter the raw cross products onto the corners
        vsum = torch.zeros_like(vt)
        for k in range(3):
            vsum.index_add_(1, cidx[k * n_faces : (k + 1) * n_faces], cross.view(b * 3, n_faces))
        vnormal, _, vinv = _masked_unit(vsum.view(b, 3, n_verts), EPS_NORM)
        cvn = vnormal.view(b * 3, n_verts).index_select(1, cidx).view(b, 3, 3, n_faces)  # (B, xyz, corner, F)
        vdots = torch.mul(cvn[:, 0], normal[:, :1], out=sorted_in[:, 1])  # (B, 3, F)
        vdots.addcmul_(cvn[:, 1], normal[:, 1:2]).addcmul_(cvn[:, 2], normal[:, 2:])

        w = _sort3_fwd(sorted_in, res[:, 4:10].view(b, 2, 3, n_faces))
        ctx.save_for_backward(cidx, e, normal, length, inv, x, y, vnormal, vinv, cvn, w)
        ctx.extra = (defined, undefined, n_undef, n_verts)
        return res

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        cidx, e, normal, length, inv, x, y, vnormal, vinv, cvn, w = ctx.saved_tensors
        defined, undefined, n_undef, n_verts = ctx.extra
        b, n_faces = e.shape[0], e.shape[-1]
        g = grad  # (B, 10, F); contiguous when the loss was computed on the transposed view
        g_sorted = g[:, 4:10].contiguous().view(b, 2, 3, n_faces)
        g_sorted = _sort3_bwd(g_sorted, w)  # (B, 2, 3, F)
        g_ang, g_vd = g_sorted[:, 0], g_sorted[:, 1]

        # vertex normal dots: vdots_k = normal . vnormal[corner k]
        g_n = torch.empty_like(normal).copy_(g[:, 1:4])  # (B, 3, F)
        for cvn_k, g_vd_k in zip(cvn.unbind(2), g_vd.unsqueeze(1).unbind(2), strict=True):
            g_n.addcmul_(cvn_k, g_vd_k)
        g_cvn = g_vd.unsqueeze(1) * normal.unsqueeze(2)  # (B, xyz, corner, F)
        g_vn = torch.zeros(b * 3, n_verts, dtype=e.dtype, device=e.device)
        g_vn = g_vn.index_add_(1, cidx, g_cvn.view(b * 3, -1)).view(b, 3, n_verts)
        g_vsum = (g_vn - vnormal * (vnormal * g_vn).sum(1, keepdim=True)) * vinv.unsqueeze(1)
        g_cross = g_vsum.view(b * 3, n_verts).index_select(1, cidx).view(b, 3, 3, n_faces).sum(2)

        # angles: atan2'(y, x) = (x, -y) / (x^2 + y^2), with y = |cross| and x = -(e_k . e_{k-1});
        # where corners are undefined, the fill takes (pi - sum of the others) / n_undef to each of them
        if undefined is not None:
            g_ang = (g_ang - ((undefined * g_ang).sum(1) / n_undef).unsqueeze(1)) * defined
        g_pre = g_ang / (x * x + y * y)
        g_len = (g_pre * x).sum(1).add_(g[:, 0], alpha=0.5)
        gd = (g_pre * y).unsqueeze(1).unbind(2)  # gradient of e_k . e_{k-1}, (B, 1, F) each
        es = e.unbind(2)
        g_e = torch.empty_like(e)
        ge = g_e.unbind(2)
        for k in range(3):
            k1 = (k + 1) % 3
            torch.mul(es[k - 1], gd[k], out=ge[k]).addcmul_(es[k1], gd[k1])

        # normal = cross / |cross|, length = |cross| (both zero, with zero gradient, when degenerate)
        n_dot = (normal * g_n).sum(1, keepdim=True)
        g_cross += (g_n - normal * n_dot) * inv.unsqueeze(1) + normal * g_len.unsqueeze(1)
        # cross = e2 x e0
        ge[2].add_(_cross(es[0], g_cross))
        ge[0].add_(_cross(g_cross, es[2]))

        g_p = torch.empty_like(e)
        for k, g_p_k in enumerate(g_p.unbind(2)):  # e_k = p_{k+1} - p_k
            torch.sub(ge[k - 1], ge[k], out=g_p_k)
        g_v = torch.zeros(b * 3, n_verts, dtype=e.dtype, device=e.device)
        g_v.index_add_(1, cidx, g_p.view(b * 3, -1))
        return g_v.view(b, 3, n_verts).transpose(1, 2), None


def _feature_kernels():
    """The compiled kernels' module, or None where numba cannot be imported."""
    try:
        from dreamcs.mesh import _feature_kernels
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return _feature_kernels


def uses_numba(vertices: Tensor) -> bool:
    """Whether ``face_features(vertices, ...)`` runs the compiled CPU kernels."""
    return (
        USE_NUMBA
        and vertices.device.type == "cpu"
        and vertices.dtype in (torch.float32, torch.float64)
        and _feature_kernels() is not None
    )


class _FaceFeaturesNumba(torch.autograd.Function):
    """(B, V, 3) CPU float vertices, (F, 3) long faces -> (B, F, 10) features; ``_FaceFeatures``'s math."""

    @staticmethod
    def forward(ctx, v: Tensor, faces: Tensor) -> Tensor:  # type: ignore[override]
        kern = _feature_kernels()
        # a copy of the positions: the backward recomputes the face geometry from them
        pos = np.array(v.detach().numpy(), order="C")
        fn = faces.detach().contiguous().numpy()
        (b, n_verts), n_faces, dtype = v.shape[:2], fn.shape[0], pos.dtype
        c = kern.constants(dtype, EPS_NORM, EPS_LEN)
        out = np.empty((b, n_faces, N_FEATURES), dtype)
        vnormal, vinv = np.zeros((b, n_verts, 3), dtype), np.empty((b, n_verts), dtype)
        bits = np.empty((b, n_faces), np.uint8)
        if not kern.features_fwd(pos, fn, c, out, vnormal, vinv, bits, np.empty((9, n_faces), dtype)):
            raise IndexError(f"face indices out of range for {n_verts} vertices")
        ctx.arrays = (pos, fn, c, vnormal, vinv, bits)
        return torch.from_numpy(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        pos, fn, c, vnormal, vinv, bits = ctx.arrays
        g = np.ascontiguousarray(grad.detach().numpy(), dtype=pos.dtype)  # autograd may hand an expanded grad
        (b, n_verts), n_faces, dtype = pos.shape[:2], fn.shape[0], pos.dtype
        gv = np.zeros((b, n_verts, 3), dtype)
        scratch = (np.empty((n_verts, 3), dtype), np.empty((n_faces, 9), dtype))
        _feature_kernels().features_bwd(pos, fn, c, g, vnormal, vinv, bits, gv, *scratch)
        return torch.from_numpy(gv), None


def face_features(vertices: Tensor, faces: Tensor) -> Tensor:
    """Per-face MeshMAE features.

    Args:
        vertices: (..., V, 3) float positions (any leading batch shape).
        faces: (F, 3) long vertex indices.

    Returns:
        (..., F, 10) features in MeshMAE's channel order (see the module docstring); contiguous on
        the numba path (``uses_numba``), else a transposed view of a (..., 10, F) buffer.
    """
    faces = _check_faces(vertices, faces)
    lead, n_verts = vertices.shape[:-2], vertices.shape[-2]
    if uses_numba(vertices):
        out = _FaceFeaturesNumba.apply(vertices.reshape(-1, n_verts, 3), faces)  # (B, F, 10)
        return out.view(*lead, faces.shape[0], N_FEATURES)
    corner_idx = torch.cat(faces.unbind(1))  # corner-major: all first corners, then second, then third
    out = _FaceFeatures.apply(vertices.reshape(-1, n_verts, 3), corner_idx)  # (B, 10, F)
    # a transposed view (not contiguous); patch_features' reshape makes its own copy
    return out.transpose(1, 2).reshape(*lead, faces.shape[0], N_FEATURES)


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
    # mean of the face centroids = mean over all K*3 corners of the patch; index_select (backward:
    # index_add) is ~3x cheaper than advanced indexing with a 2-d index (backward: index_put)
    corners = vertices.index_select(-2, faces.reshape(-1))  # (..., P * K * 3, 3)
    return corners.unflatten(-2, (faces.shape[0], faces.shape[1] * 3)).mean(-2)
