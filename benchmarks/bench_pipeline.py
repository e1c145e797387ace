"""One full ``dmtet-tiny`` generation step, split into render / guidance / reward / other.

The pipeline times each branch itself (each branch's forward and backward run separately, see
``generate/pipeline.py``); this prints medians over steps after a warm-up, and the reward branch's
share of a step when it runs (every step here, the worst case) and amortised over dmtet-tiny's
``reward.every``; then the same with the fusion overlapped in a worker thread.
Target: the reward branch under 25% of a ``dmtet-tiny`` step.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import print_table

WARMUP, STEPS = 3, 15


def _tiny_reward(folder: Path) -> Path:
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(0)
    return RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32")).save_pretrained(folder)


def _fuse_ms(pipe) -> float:
    """Median time of the fusion alone (the non-torch part of the reward branch)."""
    from dreamcs.generate import outputs
    from dreamcs.generate.reward_branch import _fuse

    with torch.no_grad():
        verts, faces = pipe.field()
    mesh = outputs.to_trimesh(verts, faces)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        _fuse(mesh, n_patches=pipe.reward.n_patches, faces_per_patch=pipe.reward.faces_per_patch)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _run(tmp: Path, reward_dir: Path, overlap: bool) -> tuple[object, dict[str, float], list[dict]]:
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.pipeline import GeneratePipeline

    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), [
        "prompt=a wooden chair", f"steps={WARMUP + STEPS}", f"reward.checkpoint={reward_dir}",
        "reward.every=1", "mesh_every=0", f"save_every={WARMUP + STEPS}", f"reward.overlap_fusion={overlap}",
    ])
    pipe = GeneratePipeline(cfg, tmp / f"run-{overlap}", show_progress=False)
    recs = pipe().metrics[WARMUP:]
    med = {k: statistics.median(r[f"time_{k}"] for r in recs) * 1e3
           for k in ("render", "guidance", "reward", "other", "step")}
    return pipe, med, recs


def main() -> None:
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path

    with tempfile.TemporaryDirectory() as tmp:
        reward_dir = _tiny_reward(Path(tmp) / "reward")
        _, over, _ = _run(Path(tmp), reward_dir, overlap=True)
        pipe, med, recs = _run(Path(tmp), reward_dir, overlap=False)
        cfg = pipe.cfg
        fuse_ms = _fuse_ms(pipe)
    every = load_config(GenerateConfig, resolve_config_path("dmtet-tiny")).reward.every
    share = med["reward"] / med["step"]
    amortised = (med["reward"] / every) / (med["step"] - med["reward"] + med["reward"] / every)
    n_faces = statistics.median(r["n_faces"] for r in recs)
    print_table(
        f"dmtet-tiny step, reward every step (grid {cfg.geometry.grid_resolution}^3, {cfg.render.batch_size} views, "
        f"~{n_faces:.0f} faces; median of {len(recs)} steps, ms)",
        ["part", "ms", "share of step"],
        [[k, med[k], f"{med[k] / med['step']:.0%}"] for k in ("render", "guidance", "reward")]
        + [["  reward: fuse alone", fuse_ms, f"{fuse_ms / med['step']:.0%}"]]
        + [["other", med["other"], f"{med['other'] / med['step']:.0%}"], ["step", med["step"], "100%"]],
    )
    print(f"reward branch: {share:.0%} of a step when it runs every step; {amortised:.0%} amortised at "
          f"dmtet-tiny's reward.every={every} (target < 25%)")
    print(f"with reward.overlap_fusion=true: reward {over['reward']:.1f} ms = {over['reward'] / over['step']:.0%} "
          f"of a {over['step']:.1f} ms step ({med['step'] / over['step']:.2f}x the serial step's speed)")


if __name__ == "__main__":
    main()
