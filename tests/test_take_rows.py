"""``dreamcs.utils.take_rows``: advanced indexing's values, with a backward that sums in index order
(the same last bit on every call), which made guided generation reproducible (session 19)."""

from __future__ import annotations

import torch

from dreamcs.utils import take_rows


def test_take_rows_is_indexing_with_a_repeatable_backward() -> None:
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    src = torch.randn(200_000, 3, generator=g)
    ids = torch.randint(0, 2_000, (100_000, 4), generator=g)  # every row taken ~200 times
    w = torch.randn(100_000, 4, 3, generator=g)
    assert torch.equal(take_rows(src, ids), src[ids])
    assert take_rows(src[:, 0], ids).shape == (100_000, 4)
    grads = []
    for _ in range(4):
        x = src.clone().requires_grad_(True)
        (take_rows(x, ids) * w).sum().backward()
        grads.append(x.grad)
    x = src.clone().requires_grad_(True)
    (x[ids] * w).sum().backward()
    torch.testing.assert_close(grads[0], x.grad, atol=1e-4, rtol=1e-5)  # the same gradient, up to order
    assert all(torch.equal(grads[0], h) for h in grads[1:])  # and bit for bit the same on every call
