"""The demo's generation with the reward every step against every 5th (issue 15's "+15% at most").

`make demo` generates each prompt twice, without and with the shipped RewardCS (``dmtet-embedded``,
150 steps). Until the reward moved to every step the guided arm scored every 5th step (alpha x 5);
this times one run of each arm as the demo makes it (same recipe, prompt, seed, steps, saves), in
the order baseline, every 5, every 1, every 1, every 5, baseline, so that a drift of this shared
machine's speed falls on both sides, and prints medians and the ratios: the guided arm, and the
demo's generation (both arms), every step against every 5th. Skips when the embedded prior or
reward is not installed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import print_table

PROMPT, SEED = "a pyramid", 0
ORDER = ["baseline", "every 5", "every 1", "every 1", "every 5", "baseline"]


def _steps() -> int:
    from dreamcs.quickstart import QuickstartConfig

    return QuickstartConfig().generate_steps


def _run(folder: Path, variant: str, steps: int) -> tuple[float, float]:
    """Wall seconds of one run, and the seconds its reward branch took (summed over steps)."""
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.pipeline import GeneratePipeline

    overrides = [f"prompt={PROMPT}", f"seed={SEED}", f"steps={steps}"]
    if variant != "baseline":
        overrides += ["reward.checkpoint=embedded", f"reward.every={variant.split()[1]}"]
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-embedded"), overrides)
    t0 = time.perf_counter()
    pipe = GeneratePipeline(cfg, folder, show_progress=False)
    metrics = pipe().metrics
    wall = time.perf_counter() - t0
    return wall, sum(r.get("time_reward") or 0.0 for r in metrics)


def main() -> None:
    from dreamcs.generate.reward_branch import resolve_reward_dir
    from dreamcs.quickstart import QuickstartConfig, _check_prior

    try:
        resolve_reward_dir("embedded")
        _check_prior(QuickstartConfig())
    except FileNotFoundError as e:
        print(f"skipped: {e}")
        return
    steps = _steps()
    walls: dict[str, list[float]] = {v: [] for v in ORDER}
    rewards: dict[str, list[float]] = {v: [] for v in ORDER}
    with tempfile.TemporaryDirectory() as tmp:
        for i, variant in enumerate(ORDER):
            wall, rew = _run(Path(tmp) / f"{i}", variant, steps)
            walls[variant].append(wall)
            rewards[variant].append(rew)
    med = {v: statistics.median(w) for v, w in walls.items()}
    rmed = {v: statistics.median(r) for v, r in rewards.items()}
    print_table(
        f"the demo's generation run ({PROMPT!r}, seed {SEED}, {steps} steps, dmtet-embedded; median of 2, s)",
        ["arm", "run s", "reward branch s", "each run (s)"],
        [[v, med[v], rmed[v], ", ".join(f"{w:.1f}" for w in walls[v])] for v in ("baseline", "every 5", "every 1")],
    )
    both5, both1 = med["baseline"] + med["every 5"], med["baseline"] + med["every 1"]
    print(f"guided arm, every step / every 5th: {med['every 1'] / med['every 5']:.2f}x; "
          f"guided / baseline: every 5th {med['every 5'] / med['baseline']:.2f}x, every step {med['every 1'] / med['baseline']:.2f}x")
    print(f"the demo's generation (both arms), every step / every 5th: {both1 / both5:.2f}x "
          f"(issue 15: at most 1.15x)")


if __name__ == "__main__":
    main()
