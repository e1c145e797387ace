"""``dreamcs data harvest``: meshes from score-distillation runs, kept at early, middle and final steps.

The paper adds ~10k meshes from early SDS runs to its preference data: the failures a reward must
recognise while it guides. This runs the offline generator (``dreamcs.generate``) over prompts x
seeds and keeps the mesh after each of ``keep_steps`` optimisation steps:

    DIR/harvest.yaml                      the settings; a re-run must keep them (seeds/prompts may grow)
    DIR/runs/<slug>-s<seed>/              a GeneratePipeline run folder (config.yaml, metrics.jsonl,
                                          final.obj, turntable.png; checkpoints/ only while it runs)
    DIR/runs/<slug>-s<seed>/meshes/step_000010.obj   the mesh after 10 steps, ...
    DIR/runs/<slug>-s<seed>/harvest.json  written last, atomically: this run's manifest records
    DIR/harvest.jsonl                     the manifest: every finished run's records, sorted by id
                                          (rewritten from the run records when a harvest starts and
                                          ends; in between it grows run by run)
    DIR/failures.jsonl                    runs that raised (a re-run retries them)

A manifest record: ``id`` (``<run>/step_000010``), ``path`` (relative to DIR), ``prompt``, ``step``,
``seed``, ``object_id`` (the run), ``source`` (``sds_intermediate``), and for prompts with a ground
truth (``dreamcs.data.chamfer_labels``) ``scores: {overall}`` from the Chamfer distance plus
``chamfer`` and ``reference``; without one, ``scores`` is absent and ``dreamcs data build`` scores the
mesh with its scorer. Build from it with ``--source harvest:DIR`` (reads the run records, so it is
right even while shards still write into DIR) or ``--source manifest:DIR/harvest.jsonl``.

Resume: a killed harvest re-run with the same arguments skips runs that have ``harvest.json`` and
resumes a partial run from its last checkpoint (the pipeline restores field, optimiser and RNG, so
the result is the same as an uninterrupted run). Kept meshes are written atomically before the
checkpoint of their step, so a checkpoint never outlives a missing mesh. Jobs are ordered prompt-major
then seed; ``--shard i/n`` takes jobs ``k % n == i`` (as ``dreamcs evaluate run``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dreamcs.config import config_to_dict
from dreamcs.data.sources import SourceError, SourceItem, _parse_scores
from dreamcs.utils import append_jsonl, atomic_write_text, parse_shard, read_jsonl

MANIFEST = "harvest.jsonl"
RUN_RECORD = "harvest.json"
FAILURES = "failures.jsonl"
SOURCE = "sds_intermediate"

#: Prompts beyond the embedded captions: categories the shipped prior never saw, whose SDS runs fail
#: in the ways the reward has to learn (blobs, floaters, a sphere that never leaves its start).
CATEGORY_PROMPTS = (
    "a chair", "a table", "a sofa", "a bed", "a bicycle", "a car", "an airplane", "a boat", "a house",
    "a mug", "a teapot", "a bottle", "a guitar", "a penguin", "a dog", "a rabbit", "a mushroom",
    "a hamburger", "a shoe", "a rocket",
)

#: Named settings. ``fast`` is the cheap harvest for a 2-core CPU (numbers in the README): one view
#: per step on a 16^3 grid, 60 steps, four kept meshes per run.
PRESETS: dict[str, list[str]] = {
    "paper": [],
    "fast": ["keep_steps=[5,15,30,60]", "overrides=[render.batch_size=1,geometry.grid_resolution=16]",
             "chamfer_points=1024"],
}


@dataclass
class HarvestConfig:
    """A harvest: which generator runs, which steps are kept, how meshes with a ground truth are scored."""

    config: str = "dmtet-embedded"
    """Generation recipe: a shipped preset name or a YAML file."""
    overrides: list[str] = field(default_factory=list)
    """``key=value`` overrides of the generation config (``steps`` is set from ``keep_steps``)."""
    keep_steps: list[int] = field(default_factory=lambda: [10, 40, 80, 150])
    """Keep the mesh after each of these optimisation steps; a run lasts ``max(keep_steps)`` steps."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Generation seeds per prompt."""
    prompts: str | None = None
    """A prompt file (JSON list or one per line); None: embedded captions with a ground truth + CATEGORY_PROMPTS."""
    references: str | None = None
    """Optional JSON ``{prompt: mesh path}`` of extra ground-truth meshes (added to the embedded ones)."""
    procedural: int = 0
    """Also harvest the captions of the first N objects of ``dreamcs.data.procedural.library(N,
    procedural_seed)``, their meshes (written to ``DIR/references/``) as ground truth."""
    procedural_seed: int = 0
    chamfer_points: int = 2048
    """Surface points per mesh for the Chamfer label."""
    shard: str = "0/1"
    """``i/n``: only the jobs with index % n == i."""
    workers: int = 1
    """Processes, each running one generation at a time."""
    threads: int = 0
    """torch threads per worker; 0: torch's setting (OMP_NUM_THREADS) divided by ``workers``, at least 1.
    Float sums depend on it, so a resumed or compared harvest should keep it."""

    def validate(self) -> None:
        if not self.keep_steps or min(self.keep_steps) < 1:
            raise ValueError(f"keep_steps: need positive step counts, got {list(self.keep_steps)}")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if self.workers < 1 or self.threads < 0 or self.chamfer_points < 16:
            raise ValueError("workers must be >= 1, threads >= 0 and chamfer_points >= 16")
        parse_shard(self.shard)


# settings that may change between a killed harvest and its re-run without changing any mesh
_RUNTIME_KEYS = ("seeds", "prompts", "procedural", "procedural_seed", "shard", "workers", "threads")


@dataclass(frozen=True)
class HarvestJob:
    """One (prompt, seed) generation; ``name`` is its run folder."""

    index: int
    prompt: str
    seed: int
    name: str


def default_prompts() -> list[str]:
    """Embedded captions that have a ground-truth mesh (sorted), then ``CATEGORY_PROMPTS``."""
    from dreamcs.data.embedded import embedded_ground_truth

    return list(dict.fromkeys([*sorted(embedded_ground_truth()), *CATEGORY_PROMPTS]))


def plan_jobs(prompts: Sequence[str], seeds: Sequence[int], shard: str = "0/1") -> list[HarvestJob]:
    """This shard's jobs, prompt-major then seed (the order and split of ``dreamcs evaluate run``)."""
    from dreamcs.evaluate.study import plan_jobs as plan_study

    return [HarvestJob(j.index, j.prompt, j.seed, j.name) for j in plan_study(prompts, seeds, parse_shard(shard))]


def generation_overrides(cfg: HarvestConfig) -> list[str]:
    """The generation config overrides of every run: the user's, then steps and no periodic meshes."""
    return [*cfg.overrides, f"steps={max(cfg.keep_steps)}", "mesh_every=0"]


def _check_settings(out: Path, cfg: HarvestConfig) -> None:
    """Write ``harvest.yaml``, or refuse a re-run whose mesh-changing settings differ."""
    now = config_to_dict(cfg)
    path = out / "harvest.yaml"
    if path.is_file():
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        changed = sorted(k for k in set(old) | set(now) if k not in _RUNTIME_KEYS and old.get(k) != now.get(k))
        if changed:
            raise ValueError(f"{out}: holds a harvest with other settings ({', '.join(changed)} differ); "
                             "use another --out")
    atomic_write_text(path, yaml.safe_dump(now, sort_keys=False))


# ----------------------------------------------------------------------------- one run (worker side)
def _keep_pipeline_cls() -> type:
    from dreamcs.generate.outputs import write_mesh
    from dreamcs.generate.pipeline import GeneratePipeline

    class KeepStepsPipeline(GeneratePipeline):
        """A generation run that also writes ``meshes/step_%06d.obj`` after each step in ``keep``.

        Written inside the step, before the pipeline saves that step's checkpoint, so resuming from
        any checkpoint finds every earlier kept mesh on disk.
        """

        keep: frozenset[int] = frozenset()

        def train_step(self, step: int) -> dict[str, Any]:
            rec = super().train_step(step)
            if step + 1 in self.keep:
                import torch

                with torch.no_grad():
                    verts, faces = self.field()
                if faces.shape[0] > 0:
                    write_mesh(verts, faces, self.run_dir / "meshes" / f"step_{step + 1:06d}.obj")
            return rec

    return KeepStepsPipeline


def harvest_run(job: HarvestJob, cfg: HarvestConfig, out: str, reference: str | None,
                on_step: Callable[[HarvestJob, int], None] | None = None) -> dict[str, Any]:
    """Generate one job (resuming a partial run), label its kept meshes, write its ``harvest.json``.

    Returns ``{"status": "ok", "records": [...], "seconds"}`` or ``{"status": "failed", ...}`` for an
    ``Exception`` (anything else, e.g. a ``KeyboardInterrupt``, propagates: the run stays resumable).
    """
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path

    run_dir = Path(out) / "runs" / job.name
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    try:
        gcfg = load_config(GenerateConfig, resolve_config_path(cfg.config), generation_overrides(cfg))
        gcfg.prompt, gcfg.seed = job.prompt, job.seed
        pipe = _keep_pipeline_cls()(gcfg, run_dir, show_progress=False)
        pipe.keep = frozenset(int(s) for s in cfg.keep_steps)
        resume = (run_dir / "config.yaml").is_file() or (run_dir / "metrics.jsonl").is_file()
        callback = None if on_step is None else (lambda step, rec: on_step(job, step))
        pipe(resume=resume, callback=callback)
        records = _label_run(job, cfg, run_dir, reference)
    except Exception as e:  # one bad run must not end a long harvest; recorded and retried next time
        return {"status": "failed", "run": job.name, "prompt": job.prompt, "seed": job.seed,
                "error": f"{type(e).__name__}: {e}"[:2000]}
    # wall time depends on what else the machine runs; CPU time is what a harvest plan needs
    cost = {"seconds": round(time.perf_counter() - t0, 3), "cpu_seconds": round(_cpu_seconds() - cpu0, 3)}
    atomic_write_text(run_dir / RUN_RECORD, json.dumps({"run": job.name, **cost, "records": records}, indent=1) + "\n")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the run is final; its meshes are kept
    return {"status": "ok", "run": job.name, "records": records, **cost}


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (a resumed run counts only this part)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _label_run(job: HarvestJob, cfg: HarvestConfig, run_dir: Path, reference: str | None) -> list[dict[str, Any]]:
    """Manifest records of a finished run's kept meshes (steps whose surface was empty are absent)."""
    from dreamcs.mesh import load_mesh

    labeler = None
    if reference is not None:
        from dreamcs.data.chamfer_labels import ChamferLabeler

        labeler = ChamferLabeler(reference, points=cfg.chamfer_points)
    records = []
    for step in sorted(set(cfg.keep_steps)):
        mesh_path = run_dir / "meshes" / f"step_{step:06d}.obj"
        if not mesh_path.is_file():
            continue
        rec: dict[str, Any] = {
            "id": f"{job.name}/step_{step:06d}", "path": f"runs/{job.name}/meshes/{mesh_path.name}",
            "prompt": job.prompt, "step": step, "seed": job.seed, "object_id": job.name, "source": SOURCE,
        }
        if labeler is not None:
            lab = labeler.label(load_mesh(mesh_path))
            ref = Path(reference)
            out = run_dir.parent.parent
            ref_name = ref.relative_to(out).as_posix() if ref.is_relative_to(out) else str(ref)  # portable
            rec.update(scores={"overall": lab["overall"]}, chamfer=lab["chamfer"], chamfer_floor=lab["floor"],
                       reference=ref_name, score_provenance="chamfer")
        records.append(rec)
    return records


# ----------------------------------------------------------------------------- the harvest (main side)
def read_run_records(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished run's records under ``out/runs/*/harvest.json``, sorted by id."""
    recs = []
    for p in sorted(Path(out).glob(f"runs/*/{RUN_RECORD}")):
        try:
            recs += json.loads(p.read_text(encoding="utf-8"))["records"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise SourceError(p, f"not a harvest run record ({e})") from None
    return sorted(recs, key=lambda r: r["id"])


def write_manifest(out: str | os.PathLike) -> Path:
    """(Re)write ``out/harvest.jsonl`` from the finished runs' records, atomically."""
    out = Path(out)
    return atomic_write_text(out / MANIFEST, "".join(json.dumps(r) + "\n" for r in read_run_records(out)))


def _append_lines(path: Path, records: list[dict[str, Any]]) -> None:
    """Append a run's records in one write (a kill leaves none or all of them, or a torn line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_harvest(
    out: str | os.PathLike,
    cfg: HarvestConfig,
    *,
    prompts: Sequence[str] | None = None,
    on_step: Callable[[HarvestJob, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) this shard's jobs into ``out``; returns counts ``done``, ``skipped``, ``failed``,
    ``meshes`` (in the manifest) and ``cpu_seconds`` (of the runs done now). ``prompts`` replaces
    ``cfg.prompts`` (procedural captions are still added); ``on_step(job, step)`` is
    called after every optimisation step (in-process only, i.e. ``workers == 1``)."""
    from dreamcs.config import load_config
    from dreamcs.data.chamfer_labels import ground_truth_meshes, procedural_references
    from dreamcs.evaluate.prompts import load_prompts
    from dreamcs.generate.config import GenerateConfig, resolve_config_path

    cfg.validate()
    if on_step is not None and cfg.workers > 1:
        raise ValueError("on_step runs in this process only; use workers=1 with it")
    out = Path(out)
    gcfg = load_config(GenerateConfig, resolve_config_path(cfg.config), generation_overrides(cfg))
    gcfg.prompt = "a prompt"
    gcfg.validate()  # a bad recipe or override fails here, not in every run
    if prompts is None:
        prompts = load_prompts(cfg.prompts) if cfg.prompts else default_prompts()
    refs = ground_truth_meshes(cfg.references)
    _check_settings(out, cfg)
    if cfg.procedural:
        proc = procedural_references(cfg.procedural, cfg.procedural_seed, out / "references")
        refs.update(proc)
        prompts = list(dict.fromkeys([*prompts, *proc]))
    if not prompts:
        raise ValueError("no prompts to harvest")
    jobs = plan_jobs(prompts, cfg.seeds, cfg.shard)
    todo = [j for j in jobs if not (out / "runs" / j.name / RUN_RECORD).is_file()]
    counts: dict[str, Any] = {"done": 0, "skipped": len(jobs) - len(todo), "failed": 0, "cpu_seconds": 0.0}
    ref_of = {j.name: _reference_of(j.prompt, refs) for j in todo}
    import torch

    # torch's own setting (OMP_NUM_THREADS) shared out over the workers; the CPU count can be far
    # above the cores this process may use. Results depend on it (float sums), so pin it to repeat.
    threads = cfg.threads or max(1, torch.get_num_threads() // cfg.workers)

    write_manifest(out)  # whatever a killed harvest had finished, before adding to it

    def record(k: int, job: HarvestJob, res: dict[str, Any]) -> None:
        if res["status"] == "ok":
            counts["done"] += 1
            _append_lines(out / MANIFEST, res["records"])  # the manifest grows run by run
            counts["cpu_seconds"] += res["cpu_seconds"]
            log(f"[{k}/{len(todo)}] {job.name}: {len(res['records'])} meshes in {res['seconds']:.1f} s "
                f"({res['cpu_seconds']:.1f} CPU s)")
        else:
            counts["failed"] += 1
            append_jsonl(out / FAILURES, {k2: res[k2] for k2 in ("run", "prompt", "seed", "error")})
            log(f"[{k}/{len(todo)}] {job.name}: failed: {res['error']}")

    if cfg.workers <= 1 or len(todo) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for k, job in enumerate(todo, 1):
                record(k, job, harvest_run(job, cfg, str(out), ref_of[job.name], on_step))
        finally:
            torch.set_num_threads(before)
    else:
        _run_pool(todo, cfg, out, ref_of, threads, record)
    write_manifest(out)
    counts["meshes"] = len(read_jsonl(out / MANIFEST))
    return counts


def _reference_of(prompt: str, refs: dict[str, Path]) -> str | None:
    p = refs.get(" ".join(prompt.split()))
    return None if p is None else str(p)


def _run_pool(todo: list[HarvestJob], cfg: HarvestConfig, out: Path, ref_of: dict[str, str | None], threads: int,
              record: Callable[[int, HarvestJob, dict[str, Any]], None]) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # fork where the OS has it (as `data build`); the parent has not started torch's thread pool
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context(method), initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futs = {pool.submit(harvest_run, j, cfg, str(out), ref_of[j.name]): j for j in todo}
        k, pending = 0, set(futs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                k += 1
                record(k, futs[fut], fut.result())


def harvest_items(out: str | os.PathLike) -> list[SourceItem]:
    """The ``harvest:DIR`` source of ``dreamcs data build``: every finished run's kept meshes."""
    out = Path(out)
    if not (out / "harvest.yaml").is_file():
        raise SourceError(out, "not a harvest folder (no harvest.yaml); run `dreamcs data harvest --out` first")
    recs = read_run_records(out)
    if not recs:
        raise SourceError(out, "harvest has no finished runs yet")
    items = []
    for r in recs:
        where = f"{out / 'runs' / r['object_id'] / RUN_RECORD}"
        scores = _parse_scores(where, r["scores"]) if r.get("scores") is not None else None
        items.append(SourceItem(id=r["id"], path=str(out / r["path"]), prompt=r["prompt"], source=r.get("source", SOURCE),
                                object_id=r["object_id"], scores=scores,
                                extra={k: r[k] for k in ("step", "seed", "chamfer") if k in r}))
    return items
