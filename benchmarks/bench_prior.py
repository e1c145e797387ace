"""The offline prior: seconds per training step (wall and CPU, medians) at the shipped settings and a
smaller and a larger model, and the rendering rate of the training views.

    .venv/bin/python benchmarks/bench_prior.py
"""

from __future__ import annotations

import time

import torch
from common import print_table

from dreamcs.prior.data import ViewDataConfig, read_captioned_meshes
from dreamcs.prior.train import PriorTrainConfig, count_params, seconds_per_step
from dreamcs.prior.views import render_object_views


def bench_steps(rows: list[list[object]], repeats: int = 3) -> None:
    base = None
    for widths in ([16, 32, 64], [24, 48, 96], [32, 64, 128]):
        cfg = PriorTrainConfig(block_out_channels=widths)
        wall, cpu = seconds_per_step(cfg, repeats)
        base = base or wall
        rows.append([str(widths), f"{count_params(cfg) / 1e6:.2f}", cfg.batch_size, wall, cpu, wall / base,
                     int(3600 / wall)])


def bench_render(rows: list[list[object]], n_views: int = 8) -> None:
    from dreamcs.mesh import load_mesh, normalize

    _, _, path = read_captioned_meshes()[13]
    mesh = normalize(load_mesh(path))
    for supersample in (2, 4):
        cfg = ViewDataConfig(n_views=n_views, supersample=supersample, margin=0.1, light_random_share=0.3)
        t0, c0 = time.perf_counter(), time.process_time()
        render_object_views(mesh.vertices, mesh.faces, cfg, n_views, seed=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append([32 * supersample, len(mesh.faces), n_views / wall, n_views / cpu])


def main() -> None:
    threads = torch.get_num_threads()
    rows: list[list[object]] = []
    bench_steps(rows)
    print_table(f"prior training step, 32 px, random data (median; torch threads {threads})",
                ["blocks", "M params", "batch", "wall s/step", "cpu s/step", "wall ratio", "steps/hour"], rows)
    rrows: list[list[object]] = []
    bench_render(rrows)
    print_table(f"training views rendered (torch threads {threads})",
                ["render px", "faces", "views/s wall", "views/s cpu"], rrows)


if __name__ == "__main__":
    main()
