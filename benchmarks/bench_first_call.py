"""Mesh fusion's first call on a fresh install: numba's compile, measured with a cold cache.

A child process with an empty ``NUMBA_CACHE_DIR`` fuses a 16,384-face mesh (an icosphere of
20,480 faces, wobbled; fuse simplifies it to the layout's count) and reports, all as CPU time:

- the first ``fuse``: what a user waits for now (the numpy path while the kernels compile in the
  background, ``dreamcs.mesh.fusion._warmup``);
- the background compile of every kernel (the warm-up process, what the first call cost before);
- the first compiled ``fuse`` once it is done (numba loading its cache), then the steady state:
  compiled kernels vs the numpy path, interleaved call by call.

``BENCH_FIRST_CALL_IN_PROCESS=1`` also times the old behaviour in a second child: the first fuse
compiling in-process (``DREAMCS_FUSE_WARMUP=0``). Each child costs ~30-45 s of one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, print_table  # noqa: E402

_CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, trimesh
from dreamcs.mesh.fusion import _warmup, fuse
def cpu():
    return time.process_time()
mesh = trimesh.creation.icosphere(subdivisions=5)
mesh = trimesh.Trimesh(mesh.vertices * (1 + 0.05 * np.sin(7 * mesh.vertices[:, :1])), mesh.faces)
out = {"cache": _warmup.cache_state()}
c = cpu(); first = fuse(mesh); out["first_s"] = cpu() - c
out["numpy_first"] = not _warmup._state["ready"]
proc = _warmup._state["spawned"]
if proc is not None:
    t = time.perf_counter(); proc.wait(); out["warmup_wall_s"] = time.perf_counter() - t
    out["warmup_cpu_s"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    c = cpu(); again = fuse(mesh); out["loaded_s"] = cpu() - c
    assert _warmup._state["ready"] and np.array_equal(first.faces, again.faces)
ms = {False: [], True: []}
for _ in range(5):
    for numpy_ in (False, True):
        c = cpu(); fuse(mesh, _numpy=numpy_); ms[numpy_].append((cpu() - c) * 1e3)
out["compiled_ms"], out["numpy_ms"] = min(ms[False]), min(ms[True])
print("RESULT" + json.dumps(out))
"""


def _child(extra_env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, TMPDIR=cache, OMP_NUM_THREADS="1", **extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
        run = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"bench_first_call child failed:\n{run.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT") :])


def main() -> None:
    if os.name != "posix":  # resource.getrusage
        print("bench_first_call: POSIX only; skipped")
        return
    r = _child({"DREAMCS_FUSE_WARMUP": ""})
    path = "numpy path, kernels compiling in the background" if r["numpy_first"] else "compiled"
    rows = [
        ["first fuse (cold cache)", f"{r['first_s']:.2f} s", path],
        ["background compile (warm-up process)", f"{r.get('warmup_cpu_s', float('nan')):.1f} s",
         f"{r.get('warmup_wall_s', float('nan')):.0f} s wall, low priority"],
        ["first compiled fuse (loads numba's cache)", f"{r.get('loaded_s', float('nan')):.2f} s", ""],
        ["steady fuse: compiled / numpy path", f"{r['compiled_ms']:.0f} / {r['numpy_ms']:.0f} ms",
         f"{r['numpy_ms'] / r['compiled_ms']:.2f}x"],
    ]  # fmt: skip
    if os.environ.get("BENCH_FIRST_CALL_IN_PROCESS") == "1":
        old = _child({"DREAMCS_FUSE_WARMUP": "0"})
        rows.insert(1, ["first fuse, compiling in-process (before)", f"{old['first_s']:.1f} s", "DREAMCS_FUSE_WARMUP=0"])
    print_table("mesh fusion's first call on a fresh cache (CPU time, one thread, 16,384-face mesh)",
                ["call", "cpu", "note"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
