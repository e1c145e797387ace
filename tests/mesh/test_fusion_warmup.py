"""Fusion's first call: the numpy path while a background process compiles the kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from dreamcs.mesh.fusion import _warmup, fuse


@pytest.fixture
def fresh_state(monkeypatch, tmp_path):
    """A process that has not decided yet, a private lock file, no real warm-up process."""
    monkeypatch.setattr(_warmup, "_state", {"ready": False, "spawned": None})
    monkeypatch.setattr(_warmup, "_lock_path", lambda: tmp_path / "warmup.lock")
    monkeypatch.delenv(_warmup.ENV_SWITCH, raising=False)
    spawned: list[Path] = []

    def fake_spawn(lock: Path) -> bool:  # a stand-in warm-up: holds the lock for a moment
        lock.touch()
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
        _warmup._state["spawned"] = proc
        spawned.append(lock)
        return True

    monkeypatch.setattr(_warmup, "_spawn", fake_spawn)
    return spawned


def test_cache_is_warm_after_a_compiled_fuse() -> None:
    fuse(trimesh.creation.icosphere(2), 8, 40, _numpy=False)
    assert _warmup.cache_state() == "warm"


def test_cold_cache_fuses_with_numpy_until_the_warmup_ends(fresh_state, monkeypatch, tmp_path) -> None:
    states = iter(["cold", "cold", "warm"])
    monkeypatch.setattr(_warmup, "cache_state", lambda: next(states))
    mesh = trimesh.creation.icosphere(3)
    calls = []
    real = _warmup.use_compiled
    monkeypatch.setattr(_warmup, "use_compiled", lambda: calls.append(real()) or calls[-1])
    cold = fuse(mesh, 16, 40)
    assert calls == [False] and len(fresh_state) == 1  # numpy path, one warm-up started
    assert fuse(mesh, 16, 40) is not None and calls[-1] is False  # still warming up: no second spawn
    assert len(fresh_state) == 1
    _warmup._state["spawned"].wait()
    (tmp_path / "warmup.lock").unlink()  # the warm-up frees its lock when done
    warm = fuse(mesh, 16, 40)
    assert calls[-1] is True and _warmup._state["ready"]
    np.testing.assert_array_equal(cold.faces, warm.faces)
    np.testing.assert_array_equal(cold.vertices, warm.vertices)


def test_lock_of_another_process_and_stale_lock(fresh_state, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(_warmup, "cache_state", lambda: "cold")
    lock = tmp_path / "warmup.lock"
    lock.touch()  # another process is warming up: wait for it, start nothing
    assert _warmup.use_compiled() is False and fresh_state == []
    old = time.time() - 2 * _warmup.STALE_LOCK_S
    os.utime(lock, (old, old))  # ... it crashed long ago: ours starts
    assert _warmup.use_compiled() is False and fresh_state == [lock]


def test_failed_warmup_or_switch_off_compiles_in_process(fresh_state, monkeypatch) -> None:
    monkeypatch.setattr(_warmup, "cache_state", lambda: "cold")
    monkeypatch.setattr(_warmup, "_spawn", lambda lock: False)  # could not start a process
    assert _warmup.use_compiled() is True
    monkeypatch.setattr(_warmup, "_state", {"ready": False, "spawned": None})
    monkeypatch.setenv(_warmup.ENV_SWITCH, "0")
    assert _warmup.use_compiled() is True


@pytest.mark.slow
def test_real_cold_cache_first_fuse_and_background_warmup(tmp_path) -> None:
    """A fresh numba cache: the first fuse compiles nothing in-process and returns the compiled
    path's patches; the background warm-up then fills the cache (~30-45 s of one core)."""
    script = """
import time, numpy as np, trimesh
from dreamcs.mesh.fusion import _graph_kernels, _kernels, _warmup, fuse
assert _warmup.cache_state() == "cold"
mesh = trimesh.creation.icosphere(4)
t = time.process_time()
first = fuse(mesh, 64, 40)
print("first_cpu_s", time.process_time() - t)
assert not any(d.signatures for d in _warmup._dispatchers()), "compiled in-process"
_warmup._state["spawned"].wait(timeout=900)
assert _warmup.cache_state() == "warm" and _warmup.use_compiled()
again = fuse(mesh, 64, 40)
assert np.array_equal(first.faces, again.faces) and _kernels.bisect_levels.stats.cache_hits
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), TMPDIR=str(tmp_path))
    env.pop(_warmup.ENV_SWITCH, None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    first_cpu = float(out.stdout.split("first_cpu_s")[1].split()[0])
    assert first_cpu < 5.0
