"""``evaluate janus``: the Janus and geometry benchmark, baseline against +RewardCS.

For every finished run (in one or more study folders) whose prompt is in the prompt file:

- with a ground-truth map (a JSON object ``{prompt: mesh path}``, paths relative to the map file),
  only prompts that have a ground truth count, and each gets the Chamfer distance and normal
  consistency to it (both normalised, best rotation about y) and ``janus_excess`` = Janus score of
  the asset minus that of the ground truth (cancels objects that are front-back symmetric anyway);
- the Janus heuristic, floaters, holes (``evaluate.geometry``) and the Janus decision ``janus``
  (its mean is the paper's Janus ratio): the asset's score reaches ``JANUS_THRESHOLD`` and, with a
  ground truth, the ground truth's does not (``janus_validation.flag_with_reference``; without
  one, a genuinely front-back symmetric object is flagged too);
- the reward of a RewardCS evaluator when ``reward`` is given.

Output: ``janus.md`` / ``janus.json`` (+ ``janus.csv``): (recipe, variant) as rows, mean +/- std over all
(prompt, seed) assets, then a per-prompt table (mean +/- std over seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dreamcs.evaluate.study import read_manifest
from dreamcs.evaluate.tables import aggregate, markdown_table, write_tables
from dreamcs.utils import atomic_write_text, read_prompt_mesh_map

JANUS_METRICS = ("chamfer", "normal_consistency", "janus", "janus_score", "janus_excess", "floaters", "holes", "reward")


def load_gt_map(path: str | Path) -> dict[str, Path]:
    """``{prompt: mesh path}`` from a JSON object; relative paths are taken from the map's folder."""
    return read_prompt_mesh_map(path, "ground-truth map")


def janus_benchmark(
    prompts: Sequence[str], studies: Sequence[str | Path], out: str | Path, *, gt: dict[str, Path] | None = None,
    reward: str | None = None, points: int = 2048, n_patches: int = 256, log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns {"assets", "table", "per_prompt", "paths"}."""
    from dreamcs.evaluate.geometry import compare_to_reference, geometry_metrics, janus_score
    from dreamcs.mesh import MeshError, fuse, load_mesh, normalize

    wanted = set(prompts) if gt is None else set(prompts) & set(gt)
    if gt is not None:
        missing = [q for q in prompts if q not in gt]
        if missing:
            log(f"{len(missing)} prompt(s) have no ground truth and are left out: {missing[:3]}...")
    if not wanted:
        raise ValueError("no prompt to benchmark (with --gt, no prompt of the file has a ground-truth mesh)")
    model = None
    if reward:
        from dreamcs.generate.pipeline import resolve_reward_dir
        from dreamcs.reward import RewardCS

        model = RewardCS.from_pretrained(resolve_reward_dir(reward))
    from dreamcs.evaluate.janus_validation import flag_with_reference
    from dreamcs.evaluate.score import _progress
    from dreamcs.evaluate.tables import recipe_of

    gt_cache: dict[str, tuple[Any, float]] = {}
    records = []
    jobs = [(study, run) for study in map(Path, studies)
            for run in sorted((r for r in read_manifest(study) if r["prompt"] in wanted), key=lambda r: (r["prompt"], r["seed"]))]
    with _progress("janus benchmark", len(jobs)) as advance:
        for study, run in jobs:
            rec: dict[str, Any] = {"study": str(study), "run": run["run"], "prompt": run["prompt"],
                                   "seed": run["seed"], "variant": run["variant"], "recipe": recipe_of(run.get("config"))}
            try:
                mesh = normalize(load_mesh(study / run["run"] / "final.obj"))
            except MeshError as e:
                rec["error"] = str(e)
                records.append(rec)
                advance()
                continue
            log(f"janus {study / run['run']}")
            rec.update(geometry_metrics(mesh, n=points))
            if gt is not None:
                q = run["prompt"]
                if q not in gt_cache:
                    ref = normalize(load_mesh(gt[q]))
                    gt_cache[q] = (ref, janus_score(ref, n=points)["janus_score"])
                ref, ref_janus = gt_cache[q]
                rec.update(compare_to_reference(mesh, ref, n=points))
                rec["janus_excess"] = rec["janus_score"] - ref_janus
                rec["janus"] = 1.0 if flag_with_reference(rec["janus_score"], ref_janus) else 0.0
            if model is not None:
                try:
                    pm = fuse(mesh, n_patches=n_patches, faces_per_patch=int(model.config.faces_per_patch))
                    rec["reward"] = float(model.score(pm, run["prompt"], figures_from=mesh))
                except (MeshError, ValueError) as e:
                    rec["reward_error"] = str(e)[:500]
            records.append(rec)
            advance()
    if not records:
        raise ValueError(f"no finished run in {', '.join(map(str, studies))} has a benchmarked prompt")
    agg = aggregate(records, metrics=JANUS_METRICS)
    per_prompt = {}
    for q in sorted({r["prompt"] for r in records}):
        per_prompt[q] = aggregate([r for r in records if r["prompt"] == q], metrics=JANUS_METRICS)
    paths = write_tables(out, agg, "janus", extra={"per_prompt": per_prompt, "assets": records})
    md = markdown_table(agg) + "".join(f"\n**{q}** (over seeds)\n\n" + markdown_table(t) for q, t in per_prompt.items())
    paths["md"] = atomic_write_text(Path(out) / "janus.md", md)
    return {"assets": records, "table": agg, "per_prompt": per_prompt, "paths": paths}
