"""The one numba decorator of the mesh core's compiled kernels (``fusion``'s ``_kernels``,
``_cut_kernels``, ``_graph_kernels``; features: ``_feature_kernels``), with its on-disk cache.

Compiling fusion's kernels takes ~35-45 s of one core (in a background process: ``fusion._warmup``),
the features' ~6 s per float dtype, once: the machine code is cached on disk
(``cache=True``) and later processes load it in under a second. numba picks the first usable
place: ``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside the kernel's file if writable, else
its user-wide dir (``~/.cache/numba``), so a read-only install still caches. If none is writable
numba refuses ``cache=True`` when the module is imported; ``jit`` then compiles without a cache
(every process pays the compile on its first fuse).
"""

from __future__ import annotations

from numba import njit

__all__ = ["jit"]


def jit(fn):
    """``njit(cache=True)``, or plain ``njit`` where numba finds no writable cache location."""
    try:
        return njit(cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(fn)
