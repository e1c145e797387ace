"""Fusion's first call without numba's compile wait.

Compiling the kernels takes ~30-45 s of one core, once per install (numba then loads them from
its on-disk cache in under a second). So that no process waits for it, the first ``fuse`` of a
process whose kernels are not in the cache starts one background process (``_warmup.main``,
low priority) that compiles them into the cache, and
fuses with the numpy / scipy reference meanwhile (the same patches, ~1.5x slower). Once the
warm-up is done, the next ``fuse`` loads the compiled kernels.

One warm-up at a time per machine and cache: a lock file (removed when it ends; a lock older than
``STALE_LOCK_S`` is taken as left by a crash). Where numba has no writable cache, or with
``DREAMCS_FUSE_WARMUP=0``, the kernels compile in the calling process on first use, as plain numba
does. Nothing is printed; one ``logging`` INFO line says that the warm-up started.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV_SWITCH = "DREAMCS_FUSE_WARMUP"  # "0": compile in-process on first use
STALE_LOCK_S = 900.0
_state: dict[str, object] = {"ready": False, "spawned": None}


def _dispatchers() -> list:
    """The kernels ``fuse`` (and ``PatchedMesh.connected_mask``) call from Python."""
    from dreamcs.mesh.fusion import _graph_kernels as g
    from dreamcs.mesh.fusion import _kernels as k

    return [
        g.first_copy, g.face_frames, g.dual_graph_csr, g.components, g.repair_patches, g.patch_face_order,
        k.similar_normals, k.grow_ranks, k.bisect_levels,
    ]  # fmt: skip


def cache_state() -> str:
    """``"warm"``: numba's on-disk cache holds every kernel for this numba, source and CPU; ``"cold"``: it
    lacks one; ``"none"``: no usable cache (no writable location, or numba internals not as expected)."""
    try:
        for disp in _dispatchers():
            index = disp._cache._cache_file._load_index()  # {} when missing, stale or another numba's
            magic = disp.targetctx.codegen().magic_tuple()
            if not any(key[1] == magic for key in index):
                return "cold"
    except Exception:  # NullCache (no locator) has no _cache_file; other numba versions may differ
        return "none"
    return "warm"


def _lock_path() -> Path:
    from dreamcs.mesh.fusion import _kernels

    where = os.environ.get("NUMBA_CACHE_DIR", "") + "|" + str(Path(_kernels.__file__).resolve())
    tag = hashlib.sha1(where.encode()).hexdigest()[:12]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"dreamcs-fusion-warmup-{uid}-{tag}.lock"


def _lock_held(lock: Path) -> bool:
    try:
        return time.time() - lock.stat().st_mtime < STALE_LOCK_S
    except FileNotFoundError:
        return False


def _spawn(lock: Path) -> bool:
    """Take the lock and start the warm-up process; False if another process holds the lock."""
    try:
        if lock.exists() and not _lock_held(lock):
            lock.unlink(missing_ok=True)  # left by a crashed warm-up
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return False
    os.close(fd)
    import dreamcs

    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = str(Path(dreamcs.__file__).resolve().parents[1])  # importable however the caller found it
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from dreamcs.mesh.fusion._warmup import main; main(sys.argv[1])", str(lock)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except OSError:
        lock.unlink(missing_ok=True)
        return False
    _state["spawned"] = proc
    log.info("dreamcs: compiling mesh fusion's kernels in the background (once); fusing with numpy meanwhile")
    return True


def _ready() -> bool:
    _state["ready"] = True
    return True


def use_compiled() -> bool:
    """Whether ``fuse`` should call the compiled kernels now (False: use the numpy reference)."""
    if _state["ready"]:
        return True
    proc = _state["spawned"]
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        return False  # our warm-up is still compiling
    if os.environ.get(ENV_SWITCH) == "0":
        return _ready()
    lock = _lock_path()
    if _lock_held(lock):
        return False  # another process's warm-up is compiling
    if cache_state() != "cold":
        return _ready()
    if proc is None and (_spawn(lock) or _lock_held(lock)):
        return False
    # our warm-up ended (or could not start) and the cache is still cold: compile here
    log.info("dreamcs: mesh fusion's kernels compile in this process (the background warm-up failed)")
    return _ready()


def main(lock: str) -> None:
    """The warm-up process: compile every kernel into numba's cache, then free the lock."""
    try:
        if hasattr(os, "nice"):
            os.nice(10)
        import trimesh

        from dreamcs.mesh.fusion.pipeline import fuse

        mesh = trimesh.creation.icosphere(subdivisions=2)
        patched = fuse(mesh, n_patches=8, faces_per_patch=40, _numpy=False)
        _ready()  # connected_mask asks use_compiled(): here, yes
        patched.connected_mask()
    finally:
        Path(lock).unlink(missing_ok=True)
