"""nerfacc as an optional fast path of the volume renderer (``nerf.backend``), never required.

The plain-torch renderer (``backend: torch``) takes ``n_samples`` stratified samples on every ray
and evaluates the field only in occupied cells: the skipped samples still cost memory and
indexing. nerfacc's ``OccGridEstimator.sampling`` (its CUDA ``traverse_grids``) marches each ray
through the occupied cells only and returns the samples packed, ray after ray:

    ray_s, t_mid, delta = nerfacc_samples(field.occupancy, radius, o, d, near, far, step, perturb)
    w = packed_weights(ray_s, sigma, delta, n_rays)      # T_i (1 - exp(-sigma_i delta_i)), ours in torch

The occupancy grid stays ours (its update rule, decay and threshold are the torch path's, and it
is what a checkpoint holds): its cells are copied into the estimator's ``binaries`` before each
render, so both backends skip the same space. The compositing is ours too (``packed_weights``),
so everything but the sample placement runs, and is tested, on a CPU. nerfacc 0.5 builds its
CUDA extension on first use (JIT, needs the CUDA toolkit); ``import nerfacc`` alone proves nothing.

``auto`` picks nerfacc on a CUDA device when its extension loads, else torch.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import torch
from torch import Tensor

BACKENDS = ("auto", "torch", "nerfacc")


@functools.lru_cache(maxsize=1)
def nerfacc_unavailable() -> str | None:
    """None when nerfacc and its CUDA extension load, else the reason (cached: the probe may JIT-build)."""
    if importlib.util.find_spec("nerfacc") is None:
        return "the nerfacc package is not installed (pip install nerfacc)"
    if not torch.cuda.is_available():
        return "nerfacc needs a CUDA GPU and torch sees none"
    try:
        from nerfacc.cuda._backend import _C
    except Exception as e:  # a failed JIT build raises compiler errors of many types
        return f"nerfacc's CUDA extension failed to load ({type(e).__name__}: {e})"
    if _C is None:
        return "nerfacc found no CUDA toolkit to build its extension with (nvcc not on PATH)"
    return None


def resolve_backend(name: str, device: torch.device | str) -> str:
    """``torch`` or ``nerfacc`` for ``nerf.backend`` = ``name`` on ``device``.

    ``nerfacc`` asked for where it cannot run raises with the reason; ``auto`` falls back to torch.
    """
    if name not in BACKENDS:
        raise ValueError(f"nerf.backend: {name!r} is not one of {', '.join(BACKENDS)}")
    if name == "torch":
        return "torch"
    on_cuda = torch.device(device).type == "cuda"
    if name == "auto":
        return "nerfacc" if on_cuda and nerfacc_unavailable() is None else "torch"
    if not on_cuda:
        raise ValueError(f"nerf.backend: nerfacc needs device=cuda, not {str(device)!r} (use auto or torch)")
    reason = nerfacc_unavailable()
    if reason is not None:
        raise ImportError(f"nerf.backend: nerfacc: {reason}; use nerf.backend=torch (or auto)")
    return "nerfacc"


@functools.lru_cache(maxsize=4)
def _estimator(resolution: int, radius: float, device: str) -> Any:
    """One ``OccGridEstimator`` per grid shape; its ``binaries`` are overwritten before each render."""
    from nerfacc import OccGridEstimator

    r = float(radius)
    return OccGridEstimator(roi_aabb=[-r, -r, -r, r, r, r], resolution=int(resolution), levels=1).to(device)


@torch.no_grad()
def nerfacc_samples(occupancy: Any, radius: float, origins: Tensor, dirs: Tensor, near: Tensor, far: Tensor,
                    step: float, perturb: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Samples in occupied cells by nerfacc: ray index (S,) long, mid-point t (S,), length (S,).

    ``occupancy``: our :class:`OccupancyGrid` (None: every cell occupied); rays (Rh, 3) with unit
    ``dirs``, marched from ``near`` to ``far`` (Rh,) in steps of ``step`` (jittered when ``perturb``).
    The samples come sorted by ray, then by t (what :func:`packed_weights` needs).
    """
    res = occupancy.resolution if occupancy is not None else 1
    est = _estimator(res, radius, str(origins.device))
    # both index cells (i, j, k) along (x, y, z) from -radius: the same cells, copied as they are
    if occupancy is None:
        est.binaries.fill_(True)
    else:
        est.binaries.copy_(occupancy.occupied.unsqueeze(0))
    ray_s, t0, t1 = est.sampling(origins.contiguous(), dirs.contiguous(), sigma_fn=None, t_min=near.contiguous(),
                                 t_max=far.contiguous(), render_step_size=float(step), stratified=perturb,
                                 early_stop_eps=0.0, alpha_thre=0.0, cone_angle=0.0)
    return ray_s.long(), (t0 + t1) / 2.0, t1 - t0


def packed_weights(ray_s: Tensor, sigma: Tensor, delta: Tensor, n_rays: int) -> Tensor:
    """Rendering weights (S,) of packed samples: w_i = T_i (1 - exp(-sigma_i delta_i)),
    T_i = exp(-sum of sigma_j delta_j over the earlier samples j of the same ray).

    ``ray_s`` (S,) must be sorted (each ray's samples contiguous, in t order); ``sigma``, ``delta`` (S,).
    One global prefix sum, minus each ray's sum before its first sample: done in float64 because
    a prefix over ~10^6 samples differenced per ray would keep only a few of float32's digits.
    """
    tau = sigma * delta
    if tau.shape[0] == 0:
        return tau
    excl = torch.cumsum(tau.double(), 0) - tau.double()  # (S,) sum over all earlier samples
    counts = torch.bincount(ray_s, minlength=n_rays)
    first = (torch.cumsum(counts, 0) - counts).clamp(max=tau.shape[0] - 1)  # (Rh,) first sample of each ray
    trans = torch.exp(-(excl - excl[first][ray_s]).to(tau.dtype))
    return trans * (1.0 - torch.exp(-tau))
