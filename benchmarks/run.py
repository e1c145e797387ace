"""`make bench`: every stage's benchmark, one after another, in one process.

Each ``bench_<stage>.py`` has ``main()``, which prints its own table. Figures are medians over
repeats, and speed claims are printed as ratios against a baseline run in the same process.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STAGES = [
    "bench_mesh", "bench_first_call", "bench_reward", "bench_generate", "bench_fast_reward", "bench_volume", "bench_pipeline", "bench_demo_generation",
    "bench_data", "bench_scorer", "bench_evaluate", "bench_prior",
]


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    only = sys.argv[1:]
    for name in STAGES:
        if only and not any(o in name for o in only):
            continue
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"\n=== {name} (torch threads: {torch.get_num_threads()}) ===", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(name).main()
        print(f"({name} took {time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
