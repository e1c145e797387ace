"""Geometry and rendering speed: marching tets and the rasteriser, forward + backward.

Marching tets: a sphere-like SDF (radius 0.6 plus a little noise, so the surface is not a perfect
lattice-aligned sphere) on the project's Kuhn grids at 32^3, 64^3 and 128^3, through the lattice
path; at 64^3 also the precomputed-edges path and the generic path (any tet mesh, no ``grid=``),
the latter against ``simple_marching_tets`` below (threestudio's / kaolin's straightforward way)
as the in-process baseline, printed as a ratio. The same pair runs on a user-style tet mesh:
threestudio's ``64_tets.npz`` if ``DREAMCS_BENCH_TETS`` names it, else a stand-in of about its size
(our 32^3 grid with vertices relabelled, tets shuffled and half of them flipped).
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

from dreamcs.generate.marching_tets import _NUM_TRI, _PAIRS, _TRI_TABLE, marching_tetrahedra  # noqa: E402
from dreamcs.generate.tetgrid import load_tetgrid, load_tets  # noqa: E402
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


def simple_marching_tets(vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor):
    """The baseline: marching tets as threestudio / kaolin write it in plain torch (all six edges of
    every cut tet keyed ``min * N + max``, one ``torch.unique``, the triangle table by sign code).
    Assumes positively oriented tets (the library also flips the others)."""
    n = vertices.shape[0]
    with torch.no_grad():
        occ = sdf[tets] < 0  # (T, 4)
        n_in = occ.sum(1)
        valid = (n_in > 0) & (n_in < 4)
        pairs = tets[valid][:, _PAIRS].view(-1, 2)
        key = pairs.min(1).values * n + pairs.max(1).values
        uniq, inverse = torch.unique(key, return_inverse=True)
        a, b = uniq // n, uniq % n
        is_cut = (sdf[a] < 0) != (sdf[b] < 0)
        vmap = torch.full_like(uniq, -1)
        vmap[is_cut] = torch.arange(int(is_cut.sum()))
        slot = vmap[inverse].view(-1, 6)
        code = (occ[valid].long() * torch.tensor([1, 2, 4, 8])).sum(1)
        ntri, tri = _NUM_TRI[code], _TRI_TABLE[code]
        one, two = ntri == 1, ntri == 2
        faces = torch.cat([slot[one].gather(1, tri[one][:, :3]), slot[two].gather(1, tri[two]).view(-1, 3)])
        a, b = a[is_cut], b[is_cut]
    sa, sb = sdf[a].unsqueeze(1), sdf[b].unsqueeze(1)
    return (sb * vertices[a] - sa * vertices[b]) / (sb - sa), faces


def _user_tets() -> tuple[str, torch.Tensor, torch.Tensor]:
    """threestudio's 64 grid (``DREAMCS_BENCH_TETS``), else a scrambled 32^3 grid of about its size."""
    path = os.environ.get("DREAMCS_BENCH_TETS")
    if path:
        v, t = load_tets(path, fit=1.0)
        return Path(path).name, v, t
    g = load_tetgrid(32)
    gen = torch.Generator().manual_seed(0)
    vperm = torch.randperm(g.num_vertices, generator=gen)
    inv = torch.empty_like(vperm)
    inv[vperm] = torch.arange(g.num_vertices)
    t = inv[g.tets[torch.randperm(g.tets.shape[0], generator=gen)]]
    flip = torch.rand(t.shape[0], generator=gen) < 0.5
    t[flip] = t[flip][:, [1, 0, 2, 3]]
    return "scrambled 32^3", g.vertices[vperm], t


def _sdf(grid, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = 0.2 * grid.cell_size * torch.randn(grid.num_vertices, generator=g)
    return grid.vertices.norm(dim=1) - 0.6 + noise


def _mt_step(grid, sdf: torch.Tensor, mode: str, vertices=None, tets=None):
    s = sdf.clone().requires_grad_(True)
    v = (grid.vertices if vertices is None else vertices).clone().requires_grad_(True)
    tets = grid.tets if tets is None else tets

    def run() -> int:
        s.grad = v.grad = None
        if mode == "lattice":
            verts, faces, _ = marching_tetrahedra(v, tets, s, grid=grid)
        elif mode == "edges":
            verts, faces, _ = marching_tetrahedra(v, tets, s, grid.edges, grid.tet_edges)
        elif mode == "generic":
            verts, faces, _ = marching_tetrahedra(v, tets, s)
        else:
            verts, faces = simple_marching_tets(v, tets, s)
        verts.sum().backward()
        return faces.shape[0]

    return run


def _generic_vs_baseline(rows: list[list[object]], name: str, vertices, tets, sdf, repeats: int) -> None:
    """The generic path and the simple baseline, call by call interleaved (a shared machine slows
    both alike); wall and CPU medians, and the baseline / generic ratio."""
    runs = {m: _mt_step(None, sdf, m, vertices, tets) for m in ("generic", "baseline")}
    faces = {m: run() for m, run in runs.items()}  # warm-up
    wall: dict[str, list[float]] = {m: [] for m in runs}
    cpu: dict[str, list[float]] = {m: [] for m in runs}
    for _ in range(repeats):
        for m, run in runs.items():
            c0, t0 = time.process_time(), time.perf_counter()
            run()
            wall[m].append((time.perf_counter() - t0) * 1e3)
            cpu[m].append((time.process_time() - c0) * 1e3)
    med = {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in runs}
    label = {"generic": "generic (no grid=)", "baseline": "simple baseline"}
    for m in runs:
        rows.append([name, f"{tets.shape[0] / 1e6:.2f} M", label[m], faces[m], med[m][0], med[m][1], ""])
    ratio = med["baseline"][0] / med["generic"][0], med["baseline"][1] / med["generic"][1]
    rows.append([name, "", "speed-up generic vs baseline", "", f"{ratio[0]:.1f}x", f"{ratio[1]:.1f}x", ""])


def bench_marching_tets(rows: list[list[object]]) -> None:
    for res in (32, 64, 128):
        t0 = time.perf_counter()
        grid = load_tetgrid(res)
        load_s = time.perf_counter() - t0
        sdf = _sdf(grid)
        modes = ["lattice"] + (["edges"] if res == 64 else [])
        for mode in modes:
            run = _mt_step(grid, sdf, mode)
            n_faces = run()
            repeats = 3 if res == 128 else 10
            ms = median_ms(run, repeats=repeats)
            cpu = cpu_ms(run, repeats=repeats)
            rows.append(
                [f"{res}^3", f"{grid.tets.shape[0] / 1e6:.2f} M", mode, n_faces, ms, cpu, f"{load_s:.2f}"]
            )
        if res == 64:
            _generic_vs_baseline(rows, "64^3", grid.vertices, grid.tets, sdf, repeats=5)
    name, v, t = _user_tets()
    noise = 0.2 * (2.0 / 64) * torch.randn(v.shape[0], generator=torch.Generator().manual_seed(0))
    _generic_vs_baseline(rows, name, v, t, v.norm(dim=1) - 0.6 + noise, repeats=10)


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
