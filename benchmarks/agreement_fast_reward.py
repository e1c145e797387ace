"""Does the field reward path agree with the surface path, with the shipped RewardCS? (issue 15)

Not part of ``make bench`` (minutes, not seconds). On the dmtet-embedded recipe's grid (24 cubes,
scale 1.15; ``--grid 24 128`` adds the 128 grid), over 34 varied SDFs (primitives, bumpy and noisy
ones, unions, thin plates, shapes with holes, SDS-like blobs, rough versions, and ``--meshes``
files, e.g. a generation run's ``meshes/step_*.obj``), each scored by

- (a) the surface path (``RewardBranch``: marching tets, fuse, RewardCS), the reference;
- (b) the field path fresh (``FieldRewardBranch``'s first call: its own fusion);
- (c) the field path carried: fused on the surface, then the SDF perturbed by SDS-like steps (smooth
  random fields of RMS ``scale`` each, the layout carried step to step), against (a') a fresh
  surface-path fusion of the perturbed SDF;
- (d) the surface path against itself: the same SDF re-fused after iid noise of 1e-4 on the grid.

It prints Spearman correlations over the shapes with bootstrap 95% intervals (resampling shapes),
and the gradient check: the change of the surface path's reward after a small step (``--step`` cells,
RMS over the surface's grid vertices) along the surface path's gradient, the field path's (a carried
layout) and a random direction, and a short guided run per shape (``--guided`` ascent steps on the
grid SDF along each path's gradient, then the surface path's reward of the result).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/agreement_fast_reward.py [--grid 24 128] \\
        [--meshes 'runs/*/meshes/*.obj'] [--out figures.jsonl]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from dreamcs.generate.fast_reward import FieldRewardBranch  # noqa: E402
from dreamcs.generate.reward_branch import RewardBranch  # noqa: E402
from dreamcs.generate.tetgrid import TetGrid, load_tetgrid  # noqa: E402

GRID_SCALE = 1.15  # configs/dmtet-embedded.yaml: geometry.grid_scale
N_PATCHES = 256
#: (RMS of one step's SDF change, steps): 1-3 SDS-like optimiser steps before the comparison
CARRY = [(0.002, 1), (0.005, 2), (0.01, 3)]


def smooth_field(p: Tensor, seed: int, freq: float = 3.0, n: int = 24) -> Tensor:
    """A smooth random field (N,) of RMS 1 at points p (N, 3): ``n`` random cosines of wave numbers
    ~ N(0, freq^2) per axis (an MLP on a few Fourier octaves changes its SDF this smoothly)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(n, 3, generator=g, dtype=torch.float64) * freq
    phase = torch.rand(n, generator=g, dtype=torch.float64) * 2 * np.pi
    f = torch.cos(p.double() @ k.T + phase).sum(1)
    return (f / f.square().mean().sqrt()).to(p.dtype)


def shapes(p: Tensor) -> dict[str, Tensor]:
    """Varied SDFs (N,) at points p (N, 3) inside [-1, 1]^3; every feature at least ~1.5 cells of
    the 24 grid (cell 0.096) thick, so that each has a surface there."""
    x, y, z = p.unbind(1)
    t = torch.tensor

    def box(h, c=(0.0, 0.0, 0.0)):
        q = (p - t(c)).abs() - t(h)
        return q.clamp(min=0).norm(dim=1) + q.max(dim=1).values.clamp(max=0)

    def ball(r, c=(0.0, 0.0, 0.0)):
        return (p - t(c)).norm(dim=1) - r

    def cyl(r, h, c=(0.0, 0.0, 0.0), axis=1):
        q = p - t(c)
        radial = torch.cat([q[:, :axis], q[:, axis + 1:]], 1).norm(dim=1)
        return torch.maximum(radial - r, q[:, axis].abs() - h)

    def union(*s):
        return torch.stack(s).min(0).values

    legs = [box([0.07, 0.35, 0.07], (sx * 0.6, -0.4, sz * 0.4)) for sx in (-1, 1) for sz in (-1, 1)]
    sphere = ball(0.6)
    out = {
        "sphere": sphere,
        "ellipsoid": (p / t([0.85, 0.35, 0.5])).norm(dim=1) - 1,
        "box": box([0.7, 0.25, 0.5]),
        "rounded box": box([0.5, 0.3, 0.4]) - 0.15,
        "torus": torch.stack([torch.stack([x, z], 1).norm(dim=1) - 0.55, y], 1).norm(dim=1) - 0.2,
        "thin torus": torch.stack([torch.stack([x, y], 1).norm(dim=1) - 0.6, z], 1).norm(dim=1) - 0.12,
        "capsule": torch.stack([x, (y.abs() - 0.45).clamp(min=0), z], 1).norm(dim=1) - 0.25,
        "cylinder": cyl(0.3, 0.8),
        "cone": torch.maximum(torch.stack([x, z], 1).norm(dim=1) - 0.5 * (0.8 - y) / 1.6, y.abs() - 0.8),
        "two balls": union(ball(0.35, (0.45, 0, 0)), ball(0.3, (-0.45, 0, 0))),
        "snowman": union(ball(0.4, (0, -0.45, 0)), ball(0.3, (0, 0.15, 0)), ball(0.2, (0, 0.6, 0))),
        "thin plate": box([0.8, 0.08, 0.6]),
        "thin disc": cyl(0.8, 0.07),
        "bumpy sphere": sphere + 0.08 * torch.sin(7 * x) * torch.sin(7 * y) * torch.sin(7 * z),
        "noisy sphere": sphere + 0.03 * smooth_field(p, 1, freq=8.0),
        "noisy box": box([0.6, 0.4, 0.5]) + 0.03 * smooth_field(p, 2, freq=8.0),
        "box with hole": torch.maximum(box([0.6, 0.6, 0.25]), -cyl(0.3, 1.0, axis=2)),
        "cup": torch.maximum(cyl(0.5, 0.6), -cyl(0.38, 0.6, (0, 0.15, 0))),
        "table": union(box([0.8, 0.06, 0.55], (0, 0.0, 0)), *legs),
        "chair": union(box([0.5, 0.06, 0.5], (0, -0.1, 0)), box([0.5, 0.45, 0.06], (0, 0.4, -0.45)),
                       *[box([0.06, 0.35, 0.06], (sx * 0.44, -0.5, sz * 0.44)) for sx in (-1, 1) for sz in (-1, 1)]),
        "L shape": union(box([0.7, 0.15, 0.3], (0, -0.5, 0)), box([0.15, 0.6, 0.3], (-0.55, 0.0, 0))),
        "cross": union(box([0.8, 0.12, 0.12]), box([0.12, 0.8, 0.12]), box([0.12, 0.12, 0.8])),
    }
    for seed in range(3):  # SDS-like blobs: a sphere swollen and dented at low frequency
        out[f"blob {seed}"] = ball(0.5) + 0.15 * smooth_field(p, 100 + seed, freq=2.5)
    out["rippled sphere"] = sphere + 0.05 * smooth_field(p, 3, freq=16.0)
    out["slab through walls"] = y.abs() - 0.2  # cut open by the grid's walls
    return out


def rough_shapes(p: Tensor, clean: dict[str, Tensor], cell: float) -> dict[str, Tensor]:
    """Rough versions: iid noise of 0.3-0.5 cells on the grid SDF (a jagged surface, the defect the
    shipped reward reads most: clean shapes all score within ~0.01 of each other, rough ones lower)."""
    g = torch.Generator().manual_seed(7)
    out = {}
    for name, amp in (("sphere", 0.3), ("chair", 0.3), ("box", 0.4), ("torus", 0.4), ("sphere", 0.5),
                      ("table", 0.5), ("blob 0", 0.4)):
        out[f"rough {name} {amp}"] = clean[name] + amp * cell * torch.randn(len(p), generator=g)
    return out


def mesh_shapes(pattern: str, p: Tensor) -> dict[str, Tensor]:
    """SDFs (N,) of the mesh files matching ``pattern`` (normalised into [-0.9, 0.9]^3) at points p."""
    from dreamcs.generate.mesh_sdf import mesh_sdf
    from dreamcs.mesh import load_mesh, normalize

    out = {}
    for path in sorted(glob.glob(pattern)):
        mesh = normalize(load_mesh(path))
        mesh.vertices = mesh.vertices * 0.9
        out[Path(path).parent.parent.name + "/" + Path(path).stem] = torch.from_numpy(mesh_sdf(mesh, p.numpy()))
    return out


class Scorer:
    """The two paths on one grid with the shipped model: rewards, and gradients on the grid SDF."""

    def __init__(self, model, grid: TetGrid, prompt: str, repair_rounds: int = 8) -> None:
        self.model, self.grid, self.prompt, self.repair_rounds = model, grid, prompt, repair_rounds

    def surface(self, sdf: Tensor, grad: bool = False) -> tuple[float, Tensor | None]:
        """(a): reward of a fresh fusion of the SDF's surface, and its gradient (N,) on the SDF."""
        s = sdf.detach().clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            verts, faces = self.grid.extract(s, self.grid.vertices)[:2]
            r = RewardBranch(self.model, self.prompt, N_PATCHES)(verts, faces)
            g = torch.autograd.grad(r, s, allow_unused=True)[0] if grad else None
        return float(r.detach()), (torch.zeros_like(s) if grad and g is None else g)

    def field(self, branch: FieldRewardBranch, sdf: Tensor, grad: bool = False) -> tuple[float, Tensor | None]:
        """(b, c): the field branch's reward at this SDF (its layout fused or carried), and its gradient."""
        s = sdf.detach().clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            r = branch(s, self.grid.vertices, self.grid)
            g = torch.autograd.grad(r, s) if grad else (None,)
        return float(r.detach()), g[0]

    def branch(self, max_flipped: int = 10**9) -> FieldRewardBranch:
        """A field branch that carries its layout (by default no re-fusion, folds repaired or not), to
        measure the carry; ``max_flipped=0``: the shipped setting, a fold left after the repair fuses."""
        return FieldRewardBranch(self.model, self.prompt, N_PATCHES, max_change=1.0, max_age=10**6,
                                 max_flipped=max_flipped, repair_rounds=self.repair_rounds)


def spearman_ci(a, b, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Spearman (a, b) over shapes and its bootstrap 95% interval (shapes resampled with replacement)."""
    from scipy.stats import rankdata, spearmanr

    a, b = np.asarray(a), np.asarray(b)
    i = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    ra, rb = rankdata(a[i], axis=1), rankdata(b[i], axis=1)  # all resamples at once: Pearson of ranks
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    boots = (ra * rb).sum(1)[den > 0] / den[den > 0]  # resamples with a constant side dropped
    return float(spearmanr(a, b)[0]), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def unit_step(g: Tensor, support: Tensor, cells: float, cell: float) -> Tensor:
    """Direction g (N,) scaled to an RMS of ``cells`` grid cells over the support's vertices."""
    n = int(support.sum())
    return g * (cells * cell * np.sqrt(n) / max(float(g.norm()), 1e-30))


def evaluate_shape(sc: Scorer, sdf: Tensor, step_cells: float, guided: int, seed: int, carry_only: bool = False
                   ) -> dict[str, float]:
    """Every figure of one shape: rewards (a, b, c per CARRY setting, d), gradient effects, guided gains
    (``carry_only``: a, b and c, and the carried layout's folds before and after the repair)."""
    out: dict[str, float] = {}
    cell = sc.grid.cell_size
    out["a"] = sc.surface(sdf)[0]
    out["b"] = sc.field(sc.branch(), sdf)[0]
    noise = torch.Generator().manual_seed(seed)
    if not carry_only:
        out["d"] = sc.surface(sdf + 1e-4 * torch.randn(sdf.shape, generator=noise))[0]
    for scale, steps in CARRY:
        branch, s = sc.branch(), sdf.clone()
        sc.field(branch, s)  # the fusion
        for k in range(steps):
            s = s + scale * smooth_field(sc.grid.vertices, seed * 100 + k)
            r = sc.field(branch, s)[0]
        out[f"c {scale}x{steps}"], out[f"a' {scale}x{steps}"] = r, sc.surface(s)[0]
        out[f"change {scale}x{steps}"] = branch.last_change
        out[f"folds {scale}x{steps}"] = branch.last_flipped + branch.last_repaired
        out[f"left {scale}x{steps}"] = branch.last_flipped
        branch, s = sc.branch(max_flipped=0), sdf.clone()  # (c0): max_flipped 0, a fold left fuses again
        sc.field(branch, s)
        for k in range(steps):
            s = s + scale * smooth_field(sc.grid.vertices, seed * 100 + k)
            out[f"c0 {scale}x{steps}"] = sc.field(branch, s)[0]
        out[f"fused {scale}x{steps}"] = branch.n_fused - 1
    if carry_only:
        return out
    # gradient effect, on the surface after one SDS-like step (the field path's layout carried there)
    branch, s = sc.branch(), sdf.clone()
    sc.field(branch, s)
    s = s + 0.005 * smooth_field(sc.grid.vertices, seed * 100 + 50)
    r0, g_surf = sc.surface(s, grad=True)
    g_field = sc.field(branch, s, grad=True)[1]
    support = (g_surf != 0) | (g_field != 0)
    g_rand = torch.randn(s.shape, generator=noise) * support
    out["cos"] = float(g_surf @ g_field / (g_surf.norm() * g_field.norm()).clamp_min(1e-30))
    for name, g in (("surface", g_surf), ("field", g_field), ("random", g_rand)):
        out[f"step {name}"] = sc.surface(s + unit_step(g, support, step_cells, cell))[0] - r0
    out["jitter"] = sc.surface(s + 1e-4 * torch.randn(s.shape, generator=noise))[0] - r0
    # a short guided run: ascent on the grid SDF along each path's gradient, the field one carried
    for name in ("surface", "field") if guided else ():
        branch, x = sc.branch(), s.clone()
        for _ in range(guided):
            g = sc.surface(x, grad=True)[1] if name == "surface" else sc.field(branch, x, grad=True)[1]
            x = x + unit_step(g, g != 0, step_cells, cell)
        out[f"guided {name}"] = sc.surface(x)[0] - r0
    return out


def summarise(res: int, names: list[str], rows: list[dict[str, float]], prompt: str, minutes: float) -> None:
    """Print the agreement table and the gradient table for one grid."""
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    spread = float(col["a"].std())
    clean = np.array([not n.startswith("rough") for n in names])

    def row(label: str, ref: str, other: str, note: str = "") -> list[object]:
        rho, lo, hi = spearman_ci(col[ref], col[other])
        rho_c, lo_c, hi_c = spearman_ci(col[ref][clean], col[other][clean])
        diff = col[other] - col[ref]
        return [label, f"{rho:.3f} [{lo:.3f}, {hi:.3f}]", f"{rho_c:.3f} [{lo_c:.3f}, {hi_c:.3f}]",
                f"{diff.mean():+.4f}", f"{np.abs(diff).mean() / spread:.3f}", note]

    table = [row("(a) surface vs (b) field fresh", "a", "b")]
    if "d" in col:
        table.append(row("(d) surface vs surface + 1e-4 iid", "a", "d"))
    for scale, steps in CARRY:
        key = f"{scale}x{steps}"
        moved = float(np.mean(col[f"change {key}"]))
        over = float(np.mean(np.abs(col[f"c {key}"] - col[f"a' {key}"]) > 0.1))
        table.append(row(f"(a') vs (c) carried, {steps} step(s) RMS {scale}", f"a' {key}", f"c {key}",
                         f"layout changed {moved:.1%}; folds median {np.median(col[f'folds {key}']):.0f}, left "
                         f"{np.median(col[f'left {key}']):.0f} (0 on {np.mean(col[f'left {key}'] == 0):.0%}); "
                         f"|diff| > 0.1 on {over:.0%}"))
        if f"c0 {key}" in col:
            over0 = float(np.mean(np.abs(col[f"c0 {key}"] - col[f"a' {key}"]) > 0.1))
            table.append(row(f"(a') vs (c0) max_flipped 0 (a fold left fuses), {key}", f"a' {key}", f"c0 {key}",
                             f"fused {np.mean(col[f'fused {key}']) / steps:.0%} of calls; |diff| > 0.1 on {over0:.0%}"))
        table.append(row(f"  reference: (a) before vs (a') after, {key}", "a", f"a' {key}", "stale reward"))
    print_table(f"grid {res} (scale {GRID_SCALE}), shipped RewardCS, prompt {prompt!r}, {len(rows)} shapes "
                f"({clean.sum()} clean, {minutes:.1f} min); reward sd over shapes {spread:.4f} (clean ones: "
                f"{col['a'][clean].std():.4f}), range [{col['a'].min():.3f}, {col['a'].max():.3f}]",
                ["comparison", "Spearman, all [95%]", "Spearman, clean [95%]", "mean diff", "mean |diff| / sd",
                 "note"], table)
    if "jitter" not in col:
        return
    noise = float(np.median(np.abs(col["jitter"])))
    grad = []
    for name in ("surface", "field", "random"):
        d = col[f"step {name}"]
        grad.append([f"step along {name}", f"{np.mean(d > 0):.0%}", f"{np.median(d):+.4f}",
                     f"{np.mean(np.sign(d) == np.sign(col['step surface'])):.0%}" if name != "surface" else "-"])
    for name in ("surface", "field") if "guided surface" in col else ():
        d = col[f"guided {name}"]
        grad.append([f"guided run along {name}", f"{np.mean(d > 0):.0%}", f"{np.median(d):+.4f}",
                     f"{np.mean(np.sign(d) == np.sign(col['guided surface'])):.0%}" if name != "surface" else "-"])
    print_table(f"grid {res}: change of the surface path's reward (fresh fusion) after a step; median |change| "
                f"from 1e-4 iid jitter alone {noise:.4f}; cosine(surface, field gradient) median "
                f"{np.median(col['cos']):+.3f}",
                ["direction", "share > 0", "median change", "same sign as surface's"], grad)
    for n, r in zip(names, rows, strict=True):
        c, a2 = r["c 0.005x2"], r["a' 0.005x2"]
        print(f"  {n:>16}: a {r['a']:.3f} b {r['b']:.3f} d {r['d']:.3f} c/a' {c:.3f}/{a2:.3f}"
              f" steps s/f/r {r['step surface']:+.4f}/{r['step field']:+.4f}/{r['step random']:+.4f}"
              f" guided s/f {r.get('guided surface', 0):+.4f}/{r.get('guided field', 0):+.4f}")


def run_trajectory(model, prompt: str, steps: int, repair_rounds: int = 8, overrides: tuple[str, ...] = ()
                   ) -> dict[str, float]:
    """(e) A dmtet-embedded run (the recipe as shipped, field path; the reward only monitors until
    alpha rises at step 50): at every step the field path's logged reward against a fresh
    surface-path fusion of the same SDF (before the step's update), the layout's folds before and
    after the repair (``repair_rounds`` 0: none), fusions, and the reward's time (forward + backward)."""
    import tempfile

    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.pipeline import GeneratePipeline
    from dreamcs.mesh import MeshError

    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-embedded"),
                      [f"prompt={prompt}", f"steps={steps}", "mesh_every=0", "save_every=1000", *overrides])
    rows = []
    with tempfile.TemporaryDirectory() as d:
        pipe = GeneratePipeline(cfg, Path(d) / "run", show_progress=False, reward_model=model)
        pipe.prepare()
        pipe.reward.repair_rounds = repair_rounds
        for step in range(steps):
            with torch.no_grad():
                pipe.field()
                s = pipe.field._last_sdf.detach().clone()
                verts, faces = pipe.field.grid.extract(s, pipe.field._last_positions.detach())[:2]
                try:
                    fresh = float(RewardBranch(model, prompt, N_PATCHES)(verts, faces))
                except MeshError:  # no surface to fuse: the pipeline skips the reward this step too
                    fresh = float("nan")
            rec = pipe.train_step(step)
            if rec.get("reward") is None:
                continue
            folded = rec["reward_flipped"] + rec["reward_repaired"]
            rows.append([step, rec["reward"], fresh, rec["reward_fused"], rec["reward_layout_change"], folded,
                         rec["reward_flipped"], rec["time_reward"]])
    col = np.array(rows, dtype=float)
    col = col[np.isfinite(col[:, 2])]  # steps with a surface to score
    diff = col[:, 1] - col[:, 2]
    steps = len(col)
    table = [[f"{col[a, 0]:.0f}-{col[min(b, steps) - 1, 0]:.0f}", f"{col[a:b, 1].mean():.3f}", f"{col[a:b, 2].mean():.3f}", f"{np.abs(diff[a:b]).max():.3f}",
              int(col[a:b, 3].sum()), f"{np.median(col[a:b, 5]):.0f}", f"{np.median(col[a:b, 6]):.0f}",
              f"{col[a:b, 4].max():.3f}", f"{np.median(col[a:b, 7]):.2f}"]
             for a, b in zip(range(0, steps, 10), range(10, steps + 10, 10), strict=False)]
    out = {"fused": float(col[1:, 3].mean()), "folds": float(np.median(col[1:, 5])), "left": float(np.median(col[1:, 6])),
           "time": float(np.median(col[1:, 7])), "absdiff": float(np.abs(diff).mean()),
           "over": float(np.mean(np.abs(diff) > 0.1))}
    print_table(f"(e) dmtet-embedded run, {steps} scored steps, prompt {prompt!r}, repair rounds {repair_rounds}: the field "
                f"path's reward (as logged) vs a fresh surface-path fusion of the same SDF; mean |diff| "
                f"{out['absdiff']:.3f}, > 0.1 at {out['over']:.0%} of steps; fused at {out['fused']:.0%} of steps "
                f"after the first; median reward time {out['time']:.2f} s",
                ["steps", "field mean", "fresh mean", "max |diff|", "fusions", "folds (median)",
                 "left after repair", "max layout change", "reward s (median)"], table)
    return out


def run(res: int, model, prompt: str, meshes: str | None, step_cells: float, guided: int, out: str | None = None,
        repair_rounds: int = 8, carry_only: bool = False, log: Callable[[str], None] = print) -> None:
    grid = load_tetgrid(res, scale=GRID_SCALE)
    sdfs = shapes(grid.vertices)
    sdfs.update(rough_shapes(grid.vertices, sdfs, grid.cell_size))
    if meshes:
        sdfs.update(mesh_shapes(meshes, grid.vertices))
    sc, rows, t0 = Scorer(model, grid, prompt, repair_rounds), [], time.perf_counter()
    for i, (name, sdf) in enumerate(sdfs.items()):
        rows.append(evaluate_shape(sc, sdf, step_cells, guided, seed=i, carry_only=carry_only))
        if out:  # one JSON line per shape, so that a stopped run keeps what it measured
            with open(out, "a") as f:
                f.write(json.dumps({"grid": res, "shape": name, "repair_rounds": repair_rounds, **rows[-1]}) + "\n")
        log(f"[grid {res}] {i + 1}/{len(sdfs)} {name}: a {rows[-1]['a']:.3f} ({time.perf_counter() - t0:.0f} s)")
    summarise(res, list(sdfs), rows, prompt, (time.perf_counter() - t0) / 60)


def main(argv: list[str] | None = None) -> None:
    from dreamcs.reward import RewardCS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", type=int, nargs="+", default=[24], help="DMTet grid resolutions (24: dmtet-embedded)")
    ap.add_argument("--prompt", default="a chair")
    ap.add_argument("--meshes", default=None, help="glob of mesh files to add as shapes (e.g. a run's meshes)")
    ap.add_argument("--step", type=float, default=0.05,
                    help="gradient step, RMS in grid cells over the surface's vertices")
    ap.add_argument("--guided", type=int, default=5, help="ascent steps of the short guided run per shape")
    ap.add_argument("--out", default=None, help="append each shape's figures to this JSONL file")
    ap.add_argument("--run-steps", type=int, default=60, help="steps of the dmtet-embedded run (e); 0: skip")
    ap.add_argument("--run-prompts", nargs="+", default=None, help="prompts of the runs (e) (default: --prompt)")
    ap.add_argument("--repair-rounds", type=int, nargs="+", default=[8],
                    help="the field branch's fold repair rounds, one run (e) each (0: no repair)")
    ap.add_argument("--run-set", nargs="*", default=[], help="config overrides of the runs (e), e.g. reward.alpha=1")
    ap.add_argument("--shapes", action=argparse.BooleanOptionalAction, default=True, help="the 34 shapes (a)-(d)")
    ap.add_argument("--carry-only", action="store_true", help="the shapes' (a)-(c) only (no (d), no gradients)")
    args = ap.parse_args(argv)
    model = RewardCS.from_pretrained("embedded")
    for prompt in args.run_prompts or [args.prompt] if args.run_steps else ():
        for rounds in args.repair_rounds:
            out = run_trajectory(model, prompt, args.run_steps, rounds, tuple(args.run_set))
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps({"run": prompt, "repair_rounds": rounds, **out}) + "\n")
    for res in args.grid if args.shapes else ():
        for rounds in args.repair_rounds:
            run(res, model, args.prompt, args.meshes, args.step, args.guided, args.out, rounds, args.carry_only)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
