"""`dreamcs data build` throughput: meshes per second with 1 and 2 worker processes.

A small subset of the embedded set (the first N clean meshes and their defective variants, the
default 256 x 64 layout, the geometric scorer) is built from scratch into a fresh folder each
repeat; the figure is the median wall time over repeats, including pool start-up.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from common import median_ms, print_table

N_ITEMS = int(os.environ.get("BENCH_DATA_ITEMS", "12"))
REPEATS = int(os.environ.get("BENCH_DATA_REPEATS", "2"))


def _manifest(root: Path) -> Path:
    from dreamcs.data.embedded import embedded_items

    items = [i for i in embedded_items() if i.defect in (None, "wrong_prompt")][:N_ITEMS]
    man = root / "bench.jsonl"
    man.write_text("".join(json.dumps({"path": i.path, "prompt": i.prompt, "id": i.id, "caption": i.caption}) + "\n" for i in items))
    return man


def main() -> None:
    from dreamcs.data.build import BuildConfig, build

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        man = _manifest(tmp)
        cfg = BuildConfig(sources=[f"manifest:{man}"])
        build(cfg, tmp / "warm", progress=False)  # warm caches: imports, the text encoder's files
        base = None
        for workers in (1, 2):
            def once(workers: int = workers, runs=iter(range(1000))) -> None:  # a fresh folder each run
                build(cfg, tmp / f"w{workers}_{next(runs)}", workers=workers, progress=False)

            ms = median_ms(once, repeats=REPEATS, warmup=0)
            rate = N_ITEMS / (ms / 1e3)
            base = base or rate
            rows.append([workers, N_ITEMS, ms / 1e3, rate, rate / base])
    print_table(
        f"data build, {N_ITEMS} meshes, 256x64 layout, geometric scorer (median of {REPEATS}; os.cpu_count()={os.cpu_count()})",
        ["workers", "meshes", "seconds", "meshes/s", "speed-up vs 1 worker"],
        rows,
    )


if __name__ == "__main__":
    main()
