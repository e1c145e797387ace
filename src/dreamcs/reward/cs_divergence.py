"""The empirical Cauchy-Schwarz divergence between two sets of embeddings.

With a Gaussian kernel k(a, b) = exp(-|a - b|^2 / (2 sigma^2)) and the kernel mean embeddings of
the two sets,

    D_CS(x, y) = log mean_ij k(x_i, x_j) + log mean_ij k(y_i, y_j) - 2 log mean_ij k(x_i, y_j).

Each "log mean k" is a logsumexp of -|a - b|^2 / (2 sigma^2) minus log(count), so no term ever
overflows or underflows to log(0), however far apart the sets are. D_CS >= 0 by the Cauchy-Schwarz
inequality in the kernel's RKHS (the Gaussian kernel is positive definite), and it is 0 when the
two sets are equal.

Bandwidth: by default the median distance over the m x n *cross* pairs (``cross_median_sigma``).
The median over all pooled pairs is a within-class distance as soon as (m - n)^2 > m + n (within
pairs are then the majority), so an unbalanced batch of well-separated classes got a tiny sigma and
a huge D_CS (2e5 measured at m, n = 13, 19). With the cross median, at least half of the cross
kernel values are >= exp(-1/2), so D_CS <= 1 + 2 log 2 (~2.39) whatever the class sizes.

``mmd2`` is the (biased, V-statistic) squared MMD with the same kernel and bandwidth, for the
``mmd`` training objective.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """(m, D), (n, D) -> (m, n) squared Euclidean distances, >= 0."""
    # The |a|^2 + |b|^2 - 2ab form is one matmul (fast at B = 256); clamp the rounding below 0.
    sq = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(0)
    return torch.addmm(sq, a, b.transpose(0, 1), beta=1.0, alpha=-2.0).clamp_min(0.0)


def median_sigma(z: Tensor, d2: Tensor | None = None) -> Tensor:
    """The median heuristic: median pairwise distance over distinct pairs of z (N, D), detached.

    d2: z's squared-distance matrix (N, N) when already computed. Falls back to 1 when all points
    coincide (or N = 1), where any bandwidth gives D_CS = 0.
    """
    z = z.detach()
    n = z.shape[0]
    if n < 2:
        return torch.ones((), dtype=z.dtype, device=z.device)
    d2 = _sq_dists(z, z) if d2 is None else d2.detach()
    iu = torch.triu_indices(n, n, offset=1, device=z.device)
    med = d2[iu[0], iu[1]].median().sqrt()
    return torch.where(med > 0, med, torch.ones_like(med))


def cross_median_sigma(x: Tensor, y: Tensor, dxy2: Tensor | None = None) -> Tensor:
    """Median distance over the cross pairs of x (m, D) and y (n, D), detached; 1 if it is 0.

    dxy2: the (m, n) cross squared distances when already computed.
    """
    d2 = (_sq_dists(x.detach(), y.detach()) if dxy2 is None else dxy2.detach()).flatten()
    med = d2.median().sqrt()
    return torch.where(med > 0, med, torch.ones_like(med))


def _gram_log_kernel(x: Tensor, y: Tensor, sigma: float | Tensor | None) -> Tensor:
    """The pooled (m + n, m + n) matrix of log k = -|a - b|^2 / (2 sigma^2); sigma None: cross median."""
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"expected (m, D) and (n, D) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding sizes differ: {x.shape[1]} vs {y.shape[1]}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"the divergence needs non-empty sets, got m={x.shape[0]}, n={y.shape[0]}")
    m = x.shape[0]
    z = torch.cat([x, y], 0)
    # One pooled Gram matrix, then its three blocks (and the bandwidth reuses its cross block).
    d2 = _sq_dists(z, z)
    if sigma is None:
        sigma_t = cross_median_sigma(x, y, d2[:m, m:])
    else:
        sigma_t = torch.as_tensor(sigma, dtype=z.dtype, device=z.device).detach()
        if not bool(sigma_t > 0):
            raise ValueError(f"sigma must be positive, got {float(sigma_t)}")
    return d2 * (-0.5 / (sigma_t * sigma_t))


def _log_mean(logk: Tensor) -> Tensor:
    """log of the mean of exp(logk) over a block, via logsumexp (no overflow, no log 0)."""
    return torch.logsumexp(logk, dim=(0, 1)) - math.log(logk.numel())


def cs_divergence(x: Tensor, y: Tensor, sigma: float | Tensor | None = None, clamp: bool = True) -> Tensor:
    """D_CS between the sets x (m, D) and y (n, D); m and n may differ and may be 1.

    sigma: the Gaussian kernel bandwidth; None uses the median cross-pair distance (detached, so it
    does not feed the gradient). Returns a scalar tensor, differentiable in x and y.

    clamp: exact arithmetic gives D_CS >= 0, but rounding in float32 can leave values of about
    -1e-7 for nearly equal sets; clamping them to 0 keeps the promise D >= 0 (it zeroes the
    gradient only where the true value is 0 up to rounding, i.e. at a minimum anyway).
    """
    logk = _gram_log_kernel(x, y, sigma)
    m = x.shape[0]
    lxx, lyy, lxy = _log_mean(logk[:m, :m]), _log_mean(logk[m:, m:]), _log_mean(logk[:m, m:])
    d = lxx + lyy - 2.0 * lxy
    return d.clamp_min(0.0) if clamp else d


def mmd2(x: Tensor, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
    """Squared MMD (biased V-statistic) of x (m, D) and y (n, D) with the Gaussian kernel; in [0, 2].

    sigma as in ``cs_divergence`` (None: cross-pair median). Scalar tensor, differentiable.
    """
    k = _gram_log_kernel(x, y, sigma).exp()
    m = x.shape[0]
    return (k[:m, :m].mean() + k[m:, m:].mean() - 2.0 * k[:m, m:].mean()).clamp_min(0.0)
