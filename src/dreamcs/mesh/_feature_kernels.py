"""Compiled CPU kernels (numba) of ``features.face_features``: forward and hand-written backward.

Why: on CPU the torch path spends most of its time in the per-op overhead of ~150 small ops; here
each stage is one loop over the faces or vertices. The arithmetic follows the torch path
(``features._FaceFeatures``) op for op, in the input dtype (float32 stays float32: every constant
comes typed in ``c``), and the scatters run in its order (corner-major, faces ascending, like its
``index_add_``), so results agree with it to rounding: torch's float32 sqrt and atan2 are not
always correctly rounded, these are (atan2 is evaluated in float64, then rounded).

Helpers take scalars and tuples, never arrays (an array argument costs two atomic reference count
updates per call). Divisions are ``np.true_divide``: no ZeroDivisionError check, so the atan2
loop vectorises, and a zero divisor gives inf / nan as in torch.

Shapes: B batch, V vertices, F faces; ``v`` (B, V, 3) float, ``faces`` (F, 3) int64, both C-contiguous.
``c`` = (EPS_NORM**2, EPS_LEN**2, pi, 0.5, 1, 0) in the dtype of ``v`` (``constants``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dreamcs.mesh._numba import jit

__all__ = ["constants", "features_bwd", "features_fwd"]

# cephes atan: atan(t) = t + t^3 P(t^2) / Q(t^2) for |t| <= tan(pi / 8), ~1 ulp in float64
_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
      -1.228866684490136173410e2, -6.485021904942025371773e1)  # fmt: skip
_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
      4.853903996359136964868e2, 1.945506571482613964425e2)  # fmt: skip
_PI4_LO = 3.061616997868382943065e-17  # pi/4 - float64(pi/4)
_TAN_PI8 = 0.41421356237309504880

# The per-face helpers are inlined by numba itself: LLVM declines to inline them (too big), and the
# call, its tuple return through memory and the lost scheduling cost ~25% of the whole kernels.
# Only the kernels that call them are compiled and cached (``jit``).
_inline = njit(inline="always")


def constants(dtype: np.dtype, eps_norm: float, eps_len: float) -> np.ndarray:
    """The kernels' constants ``c`` in ``dtype`` (as torch casts a Python scalar to the tensor's dtype)."""
    return np.array([eps_norm**2, eps_len**2, math.pi, 0.5, 1.0, 0.0], dtype=dtype)


@_inline
def _atan2(y_in, x_in):
    """atan2(y, x) for y >= 0 (or +-0), in float64 whatever the input dtype; branch-free, so it vectorises."""
    y, x = np.float64(y_in), np.float64(x_in)
    ax = abs(x)
    num, den = min(y, ax), max(y, ax)
    big = num > _TAN_PI8 * den  # reduce t = num / den in [0, 1] to (t - 1) / (t + 1)
    n2 = num - den if big else num
    d2 = num + den if big else den
    t = np.true_divide(n2, d2 if d2 > 0.0 else 1.0)
    z = t * t
    p = (((_P[0] * z + _P[1]) * z + _P[2]) * z + _P[3]) * z + _P[4]
    q = ((((z + _Q[0]) * z + _Q[1]) * z + _Q[2]) * z + _Q[3]) * z + _Q[4]
    a = t * np.true_divide(z * p, q) + t
    a = (a + _PI4_LO) + math.pi / 4 if big else a
    a = (math.pi / 2 - a) + 2.0 * _PI4_LO if y > ax else a
    return (math.pi - a) + 4.0 * _PI4_LO if math.copysign(1.0, x) < 0.0 else a


@_inline
def _face(p0, p1, p2, k):
    """One face's geometry from its corners (3-tuples), as the torch path computes it.

    ``k`` = (EPS_NORM^2, EPS_LEN^2, 1, 0) typed. Returns (edges e0, e1, e2 with e_k = p_{k+1} - p_k;
    cross = e2 x e0; |cross| and 1/|cross|, both 0 when |cross|^2 <= EPS_NORM^2; the corners' atan2
    arguments x_k = -(e_k . e_{k-1}) and y_k = |cross|, or 1 and 0 where the corner is undefined;
    the 0/1 defined flags; the number of undefined corners). Vectors and per-corner values are 3-tuples.
    """
    eps_n2, eps_l2, one, zero = k
    e0x, e0y, e0z = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
    e1x, e1y, e1z = p2[0] - p1[0], p2[1] - p1[1], p2[2] - p1[2]
    e2x, e2y, e2z = p0[0] - p2[0], p0[1] - p2[1], p0[2] - p2[2]
    cx = e2y * e0z - e2z * e0y
    cy = e2z * e0x - e2x * e0z
    cz = e2x * e0y - e2y * e0x
    sq = cx * cx + cy * cy + cz * cz
    length, inv = zero, zero
    if sq > eps_n2:
        length = math.sqrt(sq)
        inv = np.true_divide(one, length)
    x0 = -(e0x * e2x + e0y * e2y + e0z * e2z)
    x1 = -(e1x * e0x + e1y * e0y + e1z * e0z)
    x2 = -(e2x * e1x + e2y * e1y + e2z * e1z)
    long0 = e0x * e0x + e0y * e0y + e0z * e0z > eps_l2
    long1 = e1x * e1x + e1y * e1y + e1z * e1z > eps_l2
    long2 = e2x * e2x + e2y * e2y + e2z * e2z > eps_l2
    y0 = y1 = y2 = length
    d0 = d1 = d2 = one
    n_undef = zero
    if not (long0 and long1 and long2):  # the torch path's masked branch, per face
        d0 = one if long0 and long2 else zero
        d1 = one if long1 and long0 else zero
        d2 = one if long2 and long1 else zero
        y0, y1, y2 = length * d0, length * d1, length * d2
        x0, x1, x2 = (one - d0) + x0 * d0, (one - d1) + x1 * d1, (one - d2) + x2 * d2
        n_undef = (one - d0) + (one - d1) + (one - d2)
    edges = ((e0x, e0y, e0z), (e1x, e1y, e1z), (e2x, e2y, e2z))
    return edges, (cx, cy, cz), length, inv, (x0, x1, x2), (y0, y1, y2), (d0, d1, d2), n_undef


@_inline
def _sort3(a, b, c):
    """The torch path's sorting network (``_sort3_fwd``): sorted values and its 3 compare bits."""
    w0 = a <= b
    lo, hi = min(a, b), max(a, b)
    w1 = lo <= c
    t = max(lo, c)
    w2 = hi <= t
    return min(lo, c), min(hi, t), max(hi, t), np.uint8(w0) | np.uint8(w1) << 1 | np.uint8(w2) << 2


@_inline
def _unsort3(g0, g1, g2, w):
    """Route the sorted values' gradients back through the network (``_sort3_bwd``), bits ``w``."""
    g_hi, g_t = (g1, g2) if w & 4 else (g2, g1)
    g_lo, g_c = (g0, g_t) if w & 2 else (g_t, g0)
    return (g_lo, g_hi, g_c) if w & 1 else (g_hi, g_lo, g_c)


@jit
def features_fwd(v, faces, c, out, vn, vinv, bits, scratch):
    """Features ``out`` (B, F, 10); for the backward: unit vertex normals ``vn`` (B, V, 3; zeros on entry),
    their 1/length ``vinv`` (B, V; 0 where zero), sort bits ``bits`` (B, F) uint8 (angles in bits 0-2, vertex
    normal dots in 3-5). ``scratch`` (9, F). Returns False, writing nothing, if an index is out of range.
    """
    n_b, n_v, n_f = v.shape[0], v.shape[1], faces.shape[0]
    for f in range(n_f):
        for j in range(3):
            if faces[f, j] < 0 or faces[f, j] >= n_v:
                return False
    k = (c[0], c[1], c[4], c[5])
    eps_n2, pi, half, one, zero = c[0], c[2], c[3], c[4], c[5]
    for b in range(n_b):
        for f in range(n_f):  # area, normal; the angles' atan2 arguments to scratch[3:9]
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            p0, p1, p2 = (v[b, i0, 0], v[b, i0, 1], v[b, i0, 2]), (v[b, i1, 0], v[b, i1, 1], v[b, i1, 2]), (
                v[b, i2, 0], v[b, i2, 1], v[b, i2, 2])  # fmt: skip
            _, cr, length, inv, x, y, d, n_undef = _face(p0, p1, p2, k)
            out[b, f, 0] = length * half
            for j in range(3):
                out[b, f, 1 + j] = cr[j] * inv
                scratch[j, f] = cr[j]
                scratch[3 + j, f] = y[j]
                scratch[6 + j, f] = x[j]
            bits[b, f] = np.uint8(d[0] == zero) | np.uint8(d[1] == zero) << 1 | np.uint8(d[2] == zero) << 2
        for j in range(3, 6):  # one tight loop: vectorised
            for f in range(n_f):
                scratch[j, f] = _atan2(scratch[j, f], scratch[j + 3, f])
        for f in range(n_f):
            a0, a1, a2 = scratch[3, f], scratch[4, f], scratch[5, f]
            u = bits[b, f]
            if u:  # undefined corners share what the defined ones leave of pi
                u0, u1, u2 = one if u & 1 else zero, one if u & 2 else zero, one if u & 4 else zero
                fill = np.true_divide(pi - (a0 + a1 + a2), u0 + u1 + u2)
                a0, a1, a2 = a0 + u0 * fill, a1 + u1 * fill, a2 + u2 * fill
            out[b, f, 4], out[b, f, 5], out[b, f, 6], bits[b, f] = _sort3(a0, a1, a2)
        for j in range(3):  # area-weighted vertex normals: raw cross products onto the corners
            for f in range(n_f):
                i = faces[f, j]
                vn[b, i, 0] += scratch[0, f]
                vn[b, i, 1] += scratch[1, f]
                vn[b, i, 2] += scratch[2, f]
        for i in range(n_v):
            sq = vn[b, i, 0] * vn[b, i, 0] + vn[b, i, 1] * vn[b, i, 1] + vn[b, i, 2] * vn[b, i, 2]
            inv = np.true_divide(one, math.sqrt(sq)) if sq > eps_n2 else zero
            vinv[b, i] = inv
            for j in range(3):
                vn[b, i, j] *= inv
        for f in range(n_f):
            nx, ny, nz = out[b, f, 1], out[b, f, 2], out[b, f, 3]
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            d0 = vn[b, i0, 0] * nx + vn[b, i0, 1] * ny + vn[b, i0, 2] * nz
            d1 = vn[b, i1, 0] * nx + vn[b, i1, 1] * ny + vn[b, i1, 2] * nz
            d2 = vn[b, i2, 0] * nx + vn[b, i2, 1] * ny + vn[b, i2, 2] * nz
            s0, s1, s2, w = _sort3(d0, d1, d2)
            out[b, f, 7], out[b, f, 8], out[b, f, 9] = s0, s1, s2
            bits[b, f] |= w << 3
    return True


@jit
def features_bwd(v, faces, c, g, vn, vinv, bits, gv, gvs, scratch):
    """Vertex gradient ``gv`` (B, V, 3; zeros on entry) from the features' gradient ``g`` (B, F, 10) and
    ``features_fwd``'s ``vn``, ``vinv``, ``bits``. ``gvs`` (V, 3) and ``scratch`` (F, 9) are scratch.
    """
    n_b, n_v, n_f = v.shape[0], v.shape[1], faces.shape[0]
    k = (c[0], c[1], c[4], c[5])
    half, one, zero = c[3], c[4], c[5]
    for b in range(n_b):
        # the vertex normal dots, back to the unnormalised vertex normals (the sum of cross products)
        for f in range(n_f):  # the normals only: cheaper than all of _face
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            e0x, e0y, e0z = v[b, i1, 0] - v[b, i0, 0], v[b, i1, 1] - v[b, i0, 1], v[b, i1, 2] - v[b, i0, 2]
            e2x, e2y, e2z = v[b, i0, 0] - v[b, i2, 0], v[b, i0, 1] - v[b, i2, 1], v[b, i0, 2] - v[b, i2, 2]
            cx, cy, cz = e2y * e0z - e2z * e0y, e2z * e0x - e2x * e0z, e2x * e0y - e2y * e0x
            sq = cx * cx + cy * cy + cz * cz
            inv = np.true_divide(one, math.sqrt(sq)) if sq > k[0] else zero
            gd = _unsort3(g[b, f, 7], g[b, f, 8], g[b, f, 9], bits[b, f] >> 3)
            scratch[f, 0], scratch[f, 1], scratch[f, 2] = cx * inv, cy * inv, cz * inv
            scratch[f, 3], scratch[f, 4], scratch[f, 5] = gd
        gvs[:] = zero
        for j in range(3):
            for f in range(n_f):
                i, gd_j = faces[f, j], scratch[f, 3 + j]
                gvs[i, 0] += gd_j * scratch[f, 0]
                gvs[i, 1] += gd_j * scratch[f, 1]
                gvs[i, 2] += gd_j * scratch[f, 2]
        for i in range(n_v):
            dot = vn[b, i, 0] * gvs[i, 0] + vn[b, i, 1] * gvs[i, 1] + vn[b, i, 2] * gvs[i, 2]
            for j in range(3):
                gvs[i, j] = (gvs[i, j] - vn[b, i, j] * dot) * vinv[b, i]
        for f in range(n_f):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            p0, p1, p2 = (v[b, i0, 0], v[b, i0, 1], v[b, i0, 2]), (v[b, i1, 0], v[b, i1, 1], v[b, i1, 2]), (
                v[b, i2, 0], v[b, i2, 1], v[b, i2, 2])  # fmt: skip
            e, cr, _, inv, x, y, d, n_undef = _face(p0, p1, p2, k)
            ga0, ga1, ga2 = _unsort3(g[b, f, 4], g[b, f, 5], g[b, f, 6], bits[b, f] & 7)
            gd0, gd1, gd2 = _unsort3(g[b, f, 7], g[b, f, 8], g[b, f, 9], bits[b, f] >> 3)
            if n_undef > zero:  # the fill takes (pi - sum of the others) / n_undef to each undefined corner
                mean = np.true_divide((one - d[0]) * ga0 + (one - d[1]) * ga1 + (one - d[2]) * ga2, n_undef)
                ga0, ga1, ga2 = (ga0 - mean) * d[0], (ga1 - mean) * d[1], (ga2 - mean) * d[2]
            # atan2'(y, x) = (x, -y) / (x^2 + y^2), y = |cross|, x = -(e_k . e_{k-1})
            q0 = np.true_divide(ga0, x[0] * x[0] + y[0] * y[0])
            q1 = np.true_divide(ga1, x[1] * x[1] + y[1] * y[1])
            q2 = np.true_divide(ga2, x[2] * x[2] + y[2] * y[2])
            g_len = (q0 * x[0] + q1 * x[1] + q2 * x[2]) + half * g[b, f, 0]
            h0, h1, h2 = q0 * y[0], q1 * y[1], q2 * y[2]  # gradient of e_k . e_{k-1}
            n0, n1, n2 = cr[0] * inv, cr[1] * inv, cr[2] * inv
            gn0 = g[b, f, 1] + vn[b, i0, 0] * gd0 + vn[b, i1, 0] * gd1 + vn[b, i2, 0] * gd2
            gn1 = g[b, f, 2] + vn[b, i0, 1] * gd0 + vn[b, i1, 1] * gd1 + vn[b, i2, 1] * gd2
            gn2 = g[b, f, 3] + vn[b, i0, 2] * gd0 + vn[b, i1, 2] * gd1 + vn[b, i2, 2] * gd2
            n_dot = n0 * gn0 + n1 * gn1 + n2 * gn2
            # cross -> |cross| and normal; plus what the vertex normals sent back
            gcx = gvs[i0, 0] + gvs[i1, 0] + gvs[i2, 0] + ((gn0 - n0 * n_dot) * inv + n0 * g_len)
            gcy = gvs[i0, 1] + gvs[i1, 1] + gvs[i2, 1] + ((gn1 - n1 * n_dot) * inv + n1 * g_len)
            gcz = gvs[i0, 2] + gvs[i1, 2] + gvs[i2, 2] + ((gn2 - n2 * n_dot) * inv + n2 * g_len)
            (e0x, e0y, e0z), (e1x, e1y, e1z), (e2x, e2y, e2z) = e
            # edges: from the dots, then cross = e2 x e0
            ge0x = e2x * h0 + e1x * h1 + (gcy * e2z - gcz * e2y)
            ge0y = e2y * h0 + e1y * h1 + (gcz * e2x - gcx * e2z)
            ge0z = e2z * h0 + e1z * h1 + (gcx * e2y - gcy * e2x)
            ge1x, ge1y, ge1z = e0x * h1 + e2x * h2, e0y * h1 + e2y * h2, e0z * h1 + e2z * h2
            ge2x = e1x * h2 + e0x * h0 + (e0y * gcz - e0z * gcy)
            ge2y = e1y * h2 + e0y * h0 + (e0z * gcx - e0x * gcz)
            ge2z = e1z * h2 + e0z * h0 + (e0x * gcy - e0y * gcx)
            # e_k = p_{k+1} - p_k
            scratch[f, 0], scratch[f, 1], scratch[f, 2] = ge2x - ge0x, ge2y - ge0y, ge2z - ge0z
            scratch[f, 3], scratch[f, 4], scratch[f, 5] = ge0x - ge1x, ge0y - ge1y, ge0z - ge1z
            scratch[f, 6], scratch[f, 7], scratch[f, 8] = ge1x - ge2x, ge1y - ge2y, ge1z - ge2z
        for j in range(3):
            for f in range(n_f):
                i = faces[f, j]
                gv[b, i, 0] += scratch[f, 3 * j]
                gv[b, i, 1] += scratch[f, 3 * j + 1]
                gv[b, i, 2] += scratch[f, 3 * j + 2]
    return gv
