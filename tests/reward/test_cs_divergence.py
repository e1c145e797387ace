"""cs_divergence against a brute-force float64 formula, and its edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from dreamcs.reward.cs_divergence import cross_median_sigma, cs_divergence, median_sigma, mmd2


def brute_force(x, y, sigma):
    """Plain loops over pairs in float64, straight from the definition."""
    x, y = x.double().tolist(), y.double().tolist()

    def k(a, b):
        return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)) / (2 * sigma**2))

    def mean_k(p, q):
        return sum(k(a, b) for a in p for b in q) / (len(p) * len(q))

    return math.log(mean_k(x, x)) + math.log(mean_k(y, y)) - 2 * math.log(mean_k(x, y))


@pytest.mark.parametrize("m,n,sigma", [(7, 5, 0.8), (1, 6, 1.5), (4, 1, 2.0), (9, 9, 0.5)])
def test_matches_brute_force(m, n, sigma):
    g = torch.Generator().manual_seed(m * 100 + n)
    x = torch.randn(m, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 3, generator=g, dtype=torch.float64) + 0.7
    got = cs_divergence(x, y, sigma=sigma).item()
    assert got == pytest.approx(brute_force(x, y, sigma), rel=1e-10, abs=1e-12)
    # float32 agrees to float32 accuracy
    got32 = cs_divergence(x.float(), y.float(), sigma=sigma).item()
    assert got32 == pytest.approx(brute_force(x, y, sigma), rel=1e-4, abs=1e-5)


def test_median_heuristic_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(8, 4, generator=g, dtype=torch.float64)
    z = torch.cat([x, y])
    dists = sorted(torch.dist(z[i], z[j]).item() for i in range(14) for j in range(i + 1, 14))
    # torch.median returns the lower of the two middle values for an even count
    assert median_sigma(z).item() == pytest.approx(dists[(len(dists) - 1) // 2], rel=1e-9)
    # the default bandwidth is the median over the 6 x 8 cross pairs only
    cross = sorted(torch.dist(a, b).item() for a in x for b in y)
    expected = cross[(len(cross) - 1) // 2]
    assert cross_median_sigma(x, y).item() == pytest.approx(expected, rel=1e-9)
    assert cs_divergence(x, y).item() == pytest.approx(brute_force(x, y, expected), rel=1e-9)


def test_unbalanced_batch_bandwidth_stays_sane():
    """13 vs 19 tight, well-separated clusters (the case that gave D_CS 2e5 with the pooled median):
    within pairs are the majority, so the pooled median is a within-class distance; the cross
    median is the class separation, and D_CS stays under its bound 1 + 2 log 2."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(13, 16, generator=g) * 0.002 + 1.0
    y = torch.randn(19, 16, generator=g) * 0.002 - 1.0
    assert (13 - 19) ** 2 > 32  # the regime where within-class pairs outnumber cross pairs
    pooled = median_sigma(torch.cat([x, y])).item()
    assert pooled < 0.02  # the old heuristic: a within-class distance
    assert cs_divergence(x, y, sigma=pooled).item() > 1e3  # ... and the blow-up it caused
    sigma = cross_median_sigma(x, y).item()
    assert sigma == pytest.approx(8.0, rel=0.01)  # |(1,..,1) - (-1,..,-1)| = 2 sqrt(16)
    d = cs_divergence(x, y)
    assert torch.isfinite(d) and 0.5 < d.item() <= 1 + 2 * math.log(2)
    # the bound holds for any sizes and separations
    for m, n, sep in ((1, 30, 5.0), (30, 1, 0.1), (3, 29, 100.0)):
        a, b = torch.randn(m, 8, generator=g) * 0.01 + sep, torch.randn(n, 8, generator=g) * 0.01
        assert 0 <= cs_divergence(a, b).item() <= 1 + 2 * math.log(2) + 1e-5


def test_mmd2_matches_brute_force():
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64) + 1

    def k(a, b, s=1.3):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * s * s))

    def mk(p, q):
        return sum(k(a, b) for a in p for b in q) / (len(p) * len(q))

    assert mmd2(x, y, sigma=1.3).item() == pytest.approx(mk(x, x) + mk(y, y) - 2 * mk(x, y), rel=1e-10)
    assert mmd2(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12)
    assert 0 < mmd2(x, y).item() <= 2


def test_zero_on_identical_and_symmetric():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 16, generator=g)
    y = torch.randn(13, 16, generator=g)
    assert cs_divergence(x, x.clone()).item() == 0.0
    assert cs_divergence(x, y).item() == pytest.approx(cs_divergence(y, x).item(), rel=1e-5)
    assert cs_divergence(x[:1], x[:1]).item() == 0.0


def test_nonnegative_on_many_random_sets():
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        m, n = torch.randint(1, 12, (2,), generator=g).tolist()
        x = torch.randn(m, 5, generator=g) * 0.01
        y = torch.randn(n, 5, generator=g) * 0.01
        assert cs_divergence(x, y).item() >= 0.0
        assert cs_divergence(x, y, clamp=False).item() > -1e-5


def test_far_apart_no_overflow_and_finite_grad():
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(5, 8, generator=g) + 1e4).requires_grad_()
    y = (torch.randn(7, 8, generator=g) - 1e4).requires_grad_()
    for sigma in (None, 1.0, 1e-3):
        d = cs_divergence(x, y, sigma=sigma)
        assert torch.isfinite(d) and d.item() > 0
        gx, gy = torch.autograd.grad(d, [x, y])
        assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    # with a fixed sigma the divergence grows with the separation: (2e4)^2 * 8 / (2 sigma^2) scale
    assert cs_divergence(x, y, sigma=1.0).item() > 1e8


def test_gradient_pushes_sets_apart():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, generator=g, requires_grad=True)
    y = torch.randn(6, 4, generator=g, requires_grad=True)
    opt = torch.optim.SGD([x, y], lr=0.1)
    start = cs_divergence(x, y, sigma=1.0).item()
    for _ in range(20):
        opt.zero_grad()
        (-cs_divergence(x, y, sigma=1.0)).backward()
        opt.step()
    assert cs_divergence(x, y, sigma=1.0).item() > start + 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="sizes differ"):
        cs_divergence(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="non-empty"):
        cs_divergence(torch.zeros(0, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="sigma must be positive"):
        cs_divergence(torch.zeros(2, 3), torch.ones(2, 3), sigma=0.0)
