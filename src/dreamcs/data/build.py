"""``dreamcs data build``: sources -> prepared, scored, labelled, stored 3D-MeshPref dataset.

1. Ingest the ``--source`` specs (``dreamcs.data.sources``), keep this shard's items (``--shard i/n``).
2. Skip what the journal says is finished (resume).
3. Per item, in a process pool: load, normalise, apply a synthetic defect (embedded preset only),
   normalise, simplify to ``max_faces``, score, fuse to the P x K layout; the patched mesh is
   written atomically to ``.work/items/`` and the main process appends one journal line.
4. Finalize (``dreamcs.data.store.finalize``): the human reviews of ``calibration.jsonl`` re-applied
   (``dreamcs.data.calibrate.apply_reviews``), labels, splits, shards, Parquet, stats, plots.

Resume: ``DATASET/.work/journal.jsonl`` gets one line per finished item (ok or failed) *after* its
arrays are on disk, so a killed build loses at most the items in flight and a re-run recomputes
nothing finished. Because the final folder is a pure function of the journalled rows sorted by id,
a resumed build writes exactly what an uninterrupted one writes. The journal also pins the config:
re-running into the folder with different settings is refused.

Sharding: ``--shard i/n`` keeps the items with ``sha1(id) % n == i``; ``merge`` combines the shard
folders into one equal to an unsharded build.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.config import config_to_dict, save_config
from dreamcs.data.scorers.geometric import GeometricScorerConfig
from dreamcs.data.scorers.llm import LLMScorerConfig
from dreamcs.data.sources import SourceItem, collect_items
from dreamcs.data.store import finalize, item_key, read_table
from dreamcs.utils import append_jsonl, atomic_write_bytes, atomic_write_text, parse_shard, read_jsonl


@dataclass
class BuildConfig:
    sources: list[str] = field(default_factory=list)
    """``--source`` specs (see ``dreamcs.data.sources``)."""
    scorer: str = "geometric"
    """``geometric`` (offline heuristic) or ``llm``."""
    geometric: GeometricScorerConfig = field(default_factory=GeometricScorerConfig)
    llm: LLMScorerConfig = field(default_factory=LLMScorerConfig)
    max_faces: int = 16384
    """Simplify every mesh to at most this many faces before scoring and fusion."""
    n_patches: int = 256
    faces_per_patch: int = 64
    preferred_min: float = 4.0
    """Label 1 (preferred) when overall >= this."""
    dispreferred_max: float = 3.5
    """Label 0 (dispreferred) when overall <= this; the band between is left out."""
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    """train / val / test shares, assigned per object id."""
    split_salt: str = "meshpref"
    shard_size: int = 64
    """Items per ``shards/*.npz`` file."""
    seed: int = 0
    """Seeds the synthetic defects (each item's generator is seeded from this and its id)."""
    shard: str = "0/1"
    """``i/n``: build only the i-th of n disjoint parts of the items."""
    densify_faces: int = 4000
    """Midpoint-subdivide every mesh below this many faces (the shape is kept) before its defect.
    Several defects subdivide before they cut or displace; without this, a coarse clean mesh beside
    its subdivided defective copies lets triangle density stand in for the label. 0: off."""


# Settings that do not change the result; a resumed build may differ in them.
_RUNTIME_KEYS = ("workers",)


def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16)


def mesh_hash(vertices: np.ndarray, faces: np.ndarray) -> str:
    h = hashlib.sha1(np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- worker side
_SCORER: dict[str, Any] = {}


def _scorer(cfg: BuildConfig) -> Any:
    from dreamcs.data.scorers import SCORERS

    sub = getattr(cfg, cfg.scorer, None)
    key = json.dumps([cfg.scorer, config_to_dict(sub) if sub is not None else None], sort_keys=True)
    if key not in _SCORER:  # one scorer per process and setting (the text encoder loads once)
        cls = SCORERS.get(cfg.scorer)
        _SCORER[key] = cls(sub if sub is not None else cls.config_cls())
    return _SCORER[key]


def prepare_mesh(item: SourceItem, cfg: BuildConfig):
    """Load, normalise, apply the item's defect, normalise again and simplify: a trimesh in [-1, 1]^3."""
    from dreamcs.data.defects import apply_defect, densify
    from dreamcs.mesh import load_mesh, normalize, simplify

    mesh = normalize(load_mesh(item.path))
    if item.extra.get("max_faces"):  # a coarser level of detail of a clean object (offline preset)
        mesh = simplify(mesh, max_faces=int(item.extra["max_faces"]))
    if cfg.densify_faces > 0:  # never past the simplification cap: that would only be undone below
        mesh = densify(mesh, min(cfg.densify_faces, cfg.max_faces))
    if item.extra.get("realism"):  # a clean variant that looks like a real mesh (dreamcs.data.realism)
        from dreamcs.data.realism import apply_realism

        mesh = normalize(apply_realism(mesh, str(item.extra["realism"]), _h(f"{cfg.seed}:{item.id}:realism")))
    if item.defect and item.defect != "wrong_prompt":
        mesh = normalize(apply_defect(mesh, item.defect, _h(f"{cfg.seed}:{item.id}"), item.extra.get("severity")))
    return simplify(mesh, max_faces=cfg.max_faces)


def process_item(item: SourceItem, cfg: BuildConfig, work: str) -> dict[str, Any]:
    """Prepare, score and fuse one item; write its patched mesh; the journal record (ok or failed)."""
    from dreamcs.data.scorers import ScoreError
    from dreamcs.mesh import fuse

    try:
        mesh = prepare_mesh(item, cfg)
        mh = mesh_hash(mesh.vertices, mesh.faces)
        if item.scores is not None:
            s = item.scores
            overall = s["overall"] if "overall" in s else float(np.mean([s[k] for k in ("alignment", "realism", "fidelity")]))
            scores = {k: s.get(k) for k in ("alignment", "realism", "fidelity")}
            provenance, details = f"given:{item.source}", {}
        else:
            res = _scorer(cfg).score(mesh, item.prompt, caption=item.caption, mesh_hash=mh)
            scores = {"alignment": res.alignment, "realism": res.realism, "fidelity": res.fidelity}
            overall = res.overall()
            provenance = cfg.scorer if cfg.scorer != "llm" else f"llm:{cfg.llm.model}"
            details = res.details
        pm = fuse(mesh, cfg.n_patches, cfg.faces_per_patch)
        buf = io.BytesIO()
        # the fused layout and the simplified mesh (kept so another encoder can be trained on the data)
        np.savez_compressed(buf, vertices=pm.vertices.astype(np.float32), faces=pm.faces.astype(np.int32),
                            mesh_vertices=np.asarray(mesh.vertices, np.float32), mesh_faces=np.asarray(mesh.faces, np.int32))
        atomic_write_bytes(Path(work) / "items" / f"{item_key(item.id)}.npz", buf.getvalue())
        row = {
            "id": item.id, "prompt": item.prompt, "source": item.source, "object_id": item.object_id,
            **{k: (None if v is None else round(float(v), 6)) for k, v in scores.items()},
            "overall": round(float(overall), 6), "provenance": provenance, "mesh_hash": mh,
            "n_faces": int(len(mesh.faces)), "caption": item.caption, "defect": item.defect,
            "license": item.license or "unknown", "origin": item.origin,
            "details": json.dumps(details, sort_keys=True, default=str),
        }
        return {"status": "ok", "row": row}
    except ScoreError as e:
        return {"status": "failed", "id": item.id, "path": item.path, "reason": f"scorer: {e.reason}", "raw": e.raw}
    except Exception as e:  # one bad mesh never stops the build
        return {"status": "failed", "id": item.id, "path": item.path, "reason": f"{type(e).__name__}: {e}"}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the pool is the parallelism


# ----------------------------------------------------------------------------- main side
def _fingerprint(cfg: BuildConfig) -> dict[str, Any]:
    d = config_to_dict(cfg)
    d["llm"].pop("cache_dir", None)  # where replies are cached does not change them
    return {k: v for k, v in d.items() if k not in _RUNTIME_KEYS}


def _check_fingerprint(work: Path, cfg: BuildConfig) -> None:
    fp_path = work / "fingerprint.json"
    fp = _fingerprint(cfg)
    if fp_path.is_file():
        old = json.loads(fp_path.read_text(encoding="utf-8"))
        if old != fp:
            diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
            raise ValueError(
                f"{fp_path}: this folder holds a build with different settings ({', '.join(diff)}); "
                "use a new --out folder (or delete this one) to build with these"
            )
    else:
        atomic_write_text(fp_path, json.dumps(fp, indent=1, sort_keys=True))


def journal_state(work: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """(ok rows by id, failures by id) from the journal; an ok row whose arrays are missing is dropped."""
    ok, failed = {}, {}
    for rec in read_jsonl(work / "journal.jsonl"):
        if rec.get("status") == "ok":
            rid = rec["row"]["id"]
            if (work / "items" / f"{item_key(rid)}.npz").is_file():
                ok[rid] = rec["row"]
                failed.pop(rid, None)
        elif rec.get("status") == "failed":
            failed[rec["id"]] = {k: rec.get(k) for k in ("id", "path", "reason", "raw")}
    return ok, failed


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class Rate(TextColumn):
        def render(self, task):  # items per second over the whole run
            from rich.text import Text

            sp = task.finished_speed or task.speed
            return Text(f"{sp:.2f} it/s" if sp else "-- it/s")

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(""),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )


def build(cfg: BuildConfig, out: str | os.PathLike, workers: int = 1, retry_failed: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build (or resume) the dataset at ``out``; returns its stats (plus ``build_seconds``)."""
    t0 = time.perf_counter()
    cfg = copy.deepcopy(cfg)  # the caller's config is left as it was
    out = Path(out)
    work = out / ".work"
    i, n = parse_shard(cfg.shard)
    if not cfg.sources:
        raise ValueError("no sources: give at least one --source (or --preset embedded)")
    # 1. ingest
    items = [it for it in collect_items(cfg.sources) if _h(it.id) % n == i]
    work.mkdir(parents=True, exist_ok=True)
    _check_fingerprint(work, cfg)
    save_config(cfg, out / "config.yaml")
    if cfg.scorer == "llm" and cfg.llm.cache_dir is None:
        cfg.llm.cache_dir = str(work / "llm_cache")
    # 2. resume
    ok, failed = journal_state(work)
    wanted = {it.id for it in items}
    todo = [it for it in items if it.id not in ok and (retry_failed or it.id not in failed)]
    # 3. process
    journal = work / "journal.jsonl"

    def record(res: dict[str, Any]) -> None:
        append_jsonl(journal, res)
        if res["status"] == "ok":
            ok[res["row"]["id"]] = res["row"]
            failed.pop(res["row"]["id"], None)
        else:
            failed[res["id"]] = {k: res.get(k) for k in ("id", "path", "reason", "raw")}

    prog = _progress() if progress and todo else None
    task = prog.add_task("scoring", total=len(todo)) if prog else None
    if prog:
        prog.start()
    try:
        if workers <= 1:
            for it in todo:
                record(process_item(it, cfg, str(work)))
                if prog:
                    prog.advance(task)
        else:
            import multiprocessing as mp

            # fork where the OS has it (workers inherit the imports, as torch's DataLoader does); spawn elsewhere
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker) as pool:
                pending = set()
                queue = list(todo)
                while queue or pending:
                    while queue and len(pending) < 2 * workers:  # bounded: a kill loses little
                        pending.add(pool.submit(process_item, queue.pop(0), cfg, str(work)))
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        record(fut.result())
                        if prog:
                            prog.advance(task)
    finally:
        if prog:
            prog.stop()
    # 4. finalize: the machine rows, then the human reviews of calibration.jsonl on top
    from dreamcs.data.calibrate import REVIEW_LOG, apply_reviews

    rows = [dict(ok[k]) for k in sorted(ok) if k in wanted]
    apply_reviews(rows, read_jsonl(out / REVIEW_LOG))
    fails = [failed[k] for k in sorted(failed) if k in wanted and k not in ok]
    st = _finalize(cfg, out, rows, lambda r: _item_arrays(work, r), fails, lambda r: _item_mesh(work, r))
    st["build_seconds"] = round(time.perf_counter() - t0, 2)
    st["computed_now"] = len(todo)
    return st


def _item_arrays(work: Path, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    with np.load(work / "items" / f"{item_key(row['id'])}.npz") as z:
        return z["vertices"], z["faces"]


def _item_mesh(work: Path, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The simplified mesh of an item, or None for items journalled before it was kept."""
    with np.load(work / "items" / f"{item_key(row['id'])}.npz") as z:
        if "mesh_vertices" not in z.files:
            return None
        return z["mesh_vertices"], z["mesh_faces"]


def _finalize(cfg: BuildConfig, out: Path, rows, arrays, fails, meshes=None) -> dict[str, Any]:
    fr = tuple(cfg.split_fractions)
    if len(fr) != 3 or abs(sum(fr) - 1.0) > 1e-6 or min(fr) < 0:
        raise ValueError(f"split_fractions must be three non-negative shares summing to 1, got {list(fr)}")
    return finalize(
        out, rows, arrays, fails, preferred_min=cfg.preferred_min, dispreferred_max=cfg.dispreferred_max,
        split_fractions=fr, split_salt=cfg.split_salt, shard_size=cfg.shard_size, meshes=meshes,
    )


def merge(parts: list[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """Combine finished shard builds (same settings, different ``--shard``) into one dataset."""
    from dreamcs.config import load_config
    from dreamcs.data.store import load_arrays, load_mesh_arrays

    if not parts:
        raise ValueError("merge needs at least one dataset folder")
    cfgs = [load_config(BuildConfig, Path(p) / "config.yaml") for p in parts]
    base = _fingerprint(cfgs[0])
    for p, c in zip(parts, cfgs, strict=True):
        fp = _fingerprint(c)
        if {k: v for k, v in fp.items() if k != "shard"} != {k: v for k, v in base.items() if k != "shard"}:
            raise ValueError(f"{p}: built with different settings from {parts[0]}; cannot merge")
    rows, where, fails = [], {}, []
    for p in parts:
        for r in read_table(p):
            if r["id"] in where:
                raise ValueError(f"{p}: item {r['id']!r} is also in {where[r['id']]}; overlapping shards")
            where[r["id"]] = Path(p)
            rows.append(r)
        fails += read_jsonl(Path(p) / "failures.jsonl")
    cfg = cfgs[0]
    cfg.shard = "0/1"
    out = Path(out)
    from dreamcs.data.calibrate import REVIEW_LOG, apply_reviews

    apply_reviews(rows, read_jsonl(out / REVIEW_LOG))  # reviews made on an earlier merge survive a re-merge
    save_config(cfg, out / "config.yaml")
    return _finalize(cfg, out, rows, lambda r: load_arrays(where[r["id"]], r), fails,
                     lambda r: load_mesh_arrays(where[r["id"]], r))
