"""Geometry and rendering speed: marching tets and the rasteriser, forward + backward.

Marching tets: a sphere-like SDF (radius 0.6 plus a little noise, so the surface is not a perfect
lattice-aligned sphere) on the project's Kuhn grids at 32^3, 64^3 and 128^3, through the lattice
path; at 64^3 also the precomputed-edges path and the straightforward ``torch.unique`` path
(threestudio's / kaolin's way) as the in-process baseline, printed as a ratio.
Rendering: a 16k-face sphere (plus noise), 1 view, diffuse flat shading, with each silhouette mode
(analytic antialiasing, the default; the older soft band; none).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms, print_table  # noqa: E402

from dreamcs.generate.marching_tets import marching_tetrahedra  # noqa: E402
from dreamcs.generate.tetgrid import load_tetgrid  # noqa: E402
from dreamcs.render import Cameras, render  # noqa: E402


def cpu_ms(fn, repeats: int = 5) -> float:
    """Median process CPU time of ``fn()`` in ms (all threads): steadier than wall time when
    other jobs share the cores; equals wall time x threads on an idle machine at full use."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times)


def _sdf(grid, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = 0.2 * grid.cell_size * torch.randn(grid.num_vertices, generator=g)
    return grid.vertices.norm(dim=1) - 0.6 + noise


def _mt_step(grid, sdf: torch.Tensor, mode: str):
    s = sdf.clone().requires_grad_(True)
    v = grid.vertices.clone().requires_grad_(True)

    def run() -> int:
        s.grad = v.grad = None
        if mode == "lattice":
            verts, faces, _ = marching_tetrahedra(v, grid.tets, s, grid=grid)
        elif mode == "edges":
            verts, faces, _ = marching_tetrahedra(v, grid.tets, s, grid.edges, grid.tet_edges)
        else:
            verts, faces, _ = marching_tetrahedra(v, grid.tets, s)
        verts.sum().backward()
        return faces.shape[0]

    return run


def bench_marching_tets(rows: list[list[object]]) -> None:
    base = None
    for res in (32, 64, 128):
        t0 = time.perf_counter()
        grid = load_tetgrid(res)
        load_s = time.perf_counter() - t0
        sdf = _sdf(grid)
        modes = ["lattice"] + (["edges", "naive (torch.unique)"] if res == 64 else [])
        for mode in modes:
            run = _mt_step(grid, sdf, mode.split()[0])
            n_faces = run()
            repeats = 3 if mode.startswith("naive") or res == 128 else 10
            ms = median_ms(run, repeats=repeats)
            cpu = cpu_ms(run, repeats=repeats)
            if res == 64 and mode.startswith("naive"):
                base = ms
            rows.append(
                [f"{res}^3", f"{grid.tets.shape[0] / 1e6:.2f} M", mode, n_faces, ms, cpu, f"{load_s:.2f}"]
            )
    if base:
        lat = next(r[4] for r in rows if r[0] == "64^3" and r[2] == "lattice")
        edg = next(r[4] for r in rows if r[0] == "64^3" and r[2] == "edges")
        rows.append(
            [
                "64^3",
                "",
                "speed-up lattice / edges vs naive",
                "",
                f"{base / lat:.1f}x / {base / edg:.1f}x",
                "",
            ]
        )


def _sphere_16k() -> tuple[torch.Tensor, torch.Tensor]:
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.8)  # 20480 faces
    g = torch.Generator().manual_seed(0)
    v = torch.tensor(mesh.vertices, dtype=torch.float32)
    v = v * (1 + 0.03 * torch.randn(v.shape[0], 1, generator=g))
    f = torch.tensor(mesh.faces, dtype=torch.long)[:16384]  # exactly 16k faces (an open cap)
    return v, f


_SILHOUETTE_MODES = {
    "antialias": {"antialias": True, "soft_silhouette": False},
    "soft band": {"antialias": False, "soft_silhouette": True},
    "none": {"antialias": False, "soft_silhouette": False},
}


def _render_fns(v0: torch.Tensor, f: torch.Tensor, cams: Cameras, res: int, mode: str):
    v = v0.clone().requires_grad_(True)
    opts = _SILHOUETTE_MODES[mode]

    def step() -> None:
        v.grad = None
        out = render(v, f, cams, res, **opts)
        (out["image"].sum() + out["alpha"].sum()).backward()

    def fwd() -> None:
        with torch.no_grad():
            render(v, f, cams, res, **opts)

    return fwd, step


def bench_render(rows: list[list[object]]) -> None:
    v0, f = _sphere_16k()
    cams = Cameras(20.0, 30.0, 2.6, 50.0)
    for res in (64, 256):
        for mode in _SILHOUETTE_MODES:
            fwd, step = _render_fns(v0, f, cams, res, mode)
            rows.append(
                [
                    f"{res}x{res}",
                    f.shape[0],
                    mode,
                    median_ms(fwd, 5),
                    median_ms(step, 5),
                    cpu_ms(step),
                ]
            )


def main() -> None:
    threads = torch.get_num_threads()
    rows: list[list[object]] = []
    bench_marching_tets(rows)
    print_table(
        f"marching tets forward+backward (ms, median; torch threads {threads})",
        ["grid", "tets", "path", "faces", "fwd+bwd ms", "cpu ms", "grid load s"],
        rows,
    )
    rrows: list[list[object]] = []
    bench_render(rrows)
    print_table(
        f"rendering 1 view of a 16k-face mesh (ms, median; torch threads {threads})",
        ["resolution", "faces", "silhouette", "fwd ms", "fwd+bwd ms", "fwd+bwd cpu ms"],
        rrows,
    )


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
