"""Two small sorts for the compiled kernels, in place of numba's ``np.argsort(kind="mergesort")``
and ``ndarray.sort``: those compile numba's generic sort machinery once per dtype and layout (~10 s
of fusion's first-time compile); these compile in well under a second each.

numba compiles a kernel once per argument type, and a constant argument is typed as its literal
value (``Literal[int](0)``): callers wrap constants (``np.int64(0)``, ``np.bool_(True)``) so that
each kernel compiles once.
"""

from __future__ import annotations

import numpy as np

from dreamcs.mesh._numba import jit


@jit
def stable_argsort(key):
    """Indices (N,) int64 that sort ``key`` (N,) float64, ties by index (numpy's stable argsort for
    finite keys): a bottom-up merge sort."""
    n = len(key)
    idx = np.arange(n)
    tmp = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if key[idx[j]] < key[idx[i]]:  # strict: a tie takes the left (lower) index first
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@jit
def sort_prefix(a, n):
    """Sort ``a[:n]`` (integers) ascending in place: heapsort, O(n log n), no allocation."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(a, start, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, np.int64(0), end)


@jit
def _sift_down(a, root, end):
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and a[child + 1] > a[child]:
            child += 1
        if a[root] >= a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child
