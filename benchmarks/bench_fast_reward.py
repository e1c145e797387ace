"""The reward branch per step on DMTet surfaces: the field path (layout carried) against the surface path.

A moving surface: a bumpy sphere whose bumps drift a little each step (a few to a few tens of
percent of the layout's vertices change grid edge per step; 12-35 % per step were measured in the
first steps of a dmtet-embedded run at grid 64), on
the grids 64 and 128. Each step runs the whole branch, forward and backward into the vertices:
the surface path fuses every step (today's `reward.path: surface`), the field path carries the
layout and fuses again when needed (`reward.path: field`, the default). The model is the `tiny`
preset with a random init (timing only; no trained RewardCS ships yet). Few repeats (a shared CPU): one pass of STEPS steps per grid.

Printed: ms per step (median over steps after the first, and the mean, fusions included), the
speed-up, the number of fusions, the ratio to a dmtet-embedded step (its own median step time at
its grid 24, measured here), and how far the layout was carried. Agreement of the two paths is a
test (``tests/generate/test_fast_reward.py``): an untrained model's reward is triangulation noise.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from dreamcs.generate.fast_reward import FieldRewardBranch  # noqa: E402
from dreamcs.generate.pipeline import RewardBranch  # noqa: E402
from dreamcs.generate.tetgrid import load_tetgrid  # noqa: E402

STEPS = int(os.environ.get("DREAMCS_BENCH_REWARD_STEPS", "12"))
PROMPT = "a chair"


def reward_model(preset_name: str = "tiny", seed: int = 0):
    """A RewardCS of ``preset_name`` with a random init (seeded): its cost is a trained one's."""
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(seed)
    return RewardCS(preset(preset_name))


def bumpy_sdf(points: torch.Tensor, t: float, radius: float = 0.6) -> torch.Tensor:
    """A sphere with bumps drifting with ``t``: SDF (N,) at points (N, 3)."""
    x, y, z = points.unbind(1)
    return points.norm(dim=1) - radius + 0.05 * torch.sin(9 * x + t) * torch.sin(9 * y) * torch.sin(9 * z)


def _step(branch, grid, sdf: torch.Tensor, field_path: bool) -> tuple[float, float]:
    """One scored step: extract, reward, backward into the vertices. Returns (reward, seconds)."""
    verts, faces, _, edges = grid.extract(sdf, grid.vertices, return_edges=True)
    v = verts.detach().requires_grad_(True)
    t0 = time.perf_counter()
    r = branch(v, faces, edges, grid.num_vertices) if field_path else branch(v, faces)
    r.backward()
    return float(r.detach()), time.perf_counter() - t0


def run_sequence(model, grid, sdfs: list[torch.Tensor]) -> dict[str, object]:
    """Both paths over one sequence of SDFs: per-step times and rewards."""
    surface = RewardBranch(model, PROMPT, 256)
    field = FieldRewardBranch(model, PROMPT, 256)
    out: dict[str, list[float]] = {"t_surface": [], "t_field": [], "r_surface": [], "r_field": [], "change": []}
    for sdf in sdfs:
        r, t = _step(surface, grid, sdf, False)
        out["r_surface"].append(r)
        out["t_surface"].append(t)
        r, t = _step(field, grid, sdf, True)
        out["r_field"].append(r)
        out["t_field"].append(t)
        out["change"].append(field.last_change)
    return {**out, "n_fused": field.n_fused}


def embedded_step_seconds(steps: int = 4) -> float:
    """Median step time of a dmtet-embedded run (its own grid, no reward) on this machine."""
    import tempfile

    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.pipeline import GeneratePipeline

    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-embedded"),
                      ["prompt=a chair", f"steps={steps}", "mesh_every=0", "save_every=1000"])
    with tempfile.TemporaryDirectory() as d:
        out = GeneratePipeline(cfg, Path(d) / "run", show_progress=False)()
    return float(np.median([r["time_step"] for r in out.metrics[1:]]))


def main() -> None:
    model = reward_model()
    embedded = embedded_step_seconds()
    rows: list[list[object]] = []
    for res in (64, 128):
        grid = load_tetgrid(res)
        sdfs = [bumpy_sdf(grid.vertices, 0.08 * k) for k in range(STEPS)]
        seq = run_sequence(model, grid, sdfs)
        ts, tf = np.array(seq["t_surface"][1:]) * 1e3, np.array(seq["t_field"][1:]) * 1e3
        change = float(np.mean(seq["change"][1:]))
        rows.append([f"{res}^3", "surface (fuse every step)", float(np.median(ts)), float(ts.mean()), STEPS,
                     f"{ts.mean() / 1e3 / embedded:.2f}", "1.0x", ""])
        rows.append([f"{res}^3", "field (layout carried)", float(np.median(tf)), float(tf.mean()), seq["n_fused"],
                     f"{tf.mean() / 1e3 / embedded:.2f}", f"{ts.mean() / tf.mean():.1f}x", f"{change:.2f}"])
    print_table(
        f"reward branch per step, fwd+bwd, tiny RewardCS, {STEPS} steps of a drifting bumpy sphere "
        f"(dmtet-embedded step here: {embedded * 1e3:.0f} ms)",
        ["grid", "path", "median ms", "mean ms", "fusions", "mean ms / embedded step", "speed-up (mean)",
         "share of layout vertices gone when carried"],
        rows,
    )


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
