"""Batch preparation: mesh files to patched ``.npz`` files and a ``report.jsonl``.

``prepare_file`` is the per-file work (load -> normalize -> simplify -> fuse -> save), usable from
Python; ``prepare_many`` runs it over files and folders (files of an unknown type in a folder are
reported as ``status: skipped`` with the reason), one bad file never stopping the batch,
optionally over a process pool, and resumes: inputs already ``ok`` in ``report.jsonl`` whose
``.npz`` still exists are skipped. ``report.jsonl`` holds one line per input (the latest attempt),
appended as results arrive and compacted atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from dreamcs.mesh.errors import MeshError
from dreamcs.mesh.io import is_mesh_file, load_mesh
from dreamcs.mesh.process import normalize, simplify
from dreamcs.mesh.quality import quality
from dreamcs.utils import append_jsonl, atomic_write_text, read_jsonl

REPORT_NAME = "report.jsonl"
# The quality figures copied into each report line (the full dict is available from quality()).
SUMMARY_KEYS = (
    "n_vertices", "n_faces", "n_components", "area_outside_largest", "boundary_edges",
    "nonmanifold_edges", "inconsistent_edges", "watertight", "degenerate_faces",
)


@dataclass
class PrepareConfig:
    """Settings of ``dreamcs mesh prepare``."""

    n_patches: int = 256
    """Patches per fused mesh."""
    faces_per_patch: int = 64
    """Faces per patch; the fused mesh has n_patches * faces_per_patch faces."""
    up: Literal["y", "z"] = "y"
    """Up axis of the input files; "z" rotates them into dreamcs's y-up frame."""


def prepare_file(path: str | os.PathLike, out_path: str | os.PathLike, cfg: PrepareConfig | None = None) -> dict[str, Any]:
    """Prepare one mesh file and write its patched mesh to ``out_path`` (``.npz``, atomically).

    Returns a JSON-ready record: ``status`` "ok" with face counts, timings and a quality summary
    of the normalised input, or ``status`` "error" with ``error`` (the message) and ``error_type``.
    Never raises for a bad mesh; the error is in the record.
    """
    from dreamcs.mesh.fusion import fuse  # written by the fusion owner; imported on use

    cfg = cfg or PrepareConfig()
    path, out_path = Path(path), Path(out_path)
    rec: dict[str, Any] = {"input": str(path.resolve()), "output": out_path.name}
    t0 = time.perf_counter()
    try:
        mesh = load_mesh(path)
        t_load = time.perf_counter()
        faces_in = len(mesh.faces)
        mesh = normalize(mesh, up=cfg.up)
        q = quality(mesh)
        t_quality = time.perf_counter()
        mesh = simplify(mesh, max_faces=cfg.n_patches * cfg.faces_per_patch)
        t_simplify = time.perf_counter()
        patched = fuse(mesh, n_patches=cfg.n_patches, faces_per_patch=cfg.faces_per_patch)
        t_fuse = time.perf_counter()
        _save_atomic(patched, out_path)
        rec.update(
            status="ok",
            faces_in=faces_in,
            faces_simplified=len(mesh.faces),
            faces_out=int(patched.faces.shape[0] * patched.faces.shape[1]),
            vertices_out=int(len(patched.vertices)),
            seconds=round(time.perf_counter() - t0, 4),
            ms={
                "load": round(1e3 * (t_load - t0), 2),
                "normalize_quality": round(1e3 * (t_quality - t_load), 2),
                "simplify": round(1e3 * (t_simplify - t_quality), 2),
                "fuse": round(1e3 * (t_fuse - t_simplify), 2),
            },
            quality={k: q[k] for k in SUMMARY_KEYS},
        )
    except MeshError as exc:
        rec.update(status="error", error=str(exc), error_type="MeshError", reason=exc.reason)
    except Exception as exc:  # a bug or an unforeseen input: record it, keep the batch going
        rec.update(
            status="error",
            error=f"{path}: {type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
            traceback=traceback.format_exc(limit=5),
        )
    rec.setdefault("seconds", round(time.perf_counter() - t0, 4))
    return rec


def _save_atomic(patched: Any, out_path: Path) -> None:
    """``patched.save`` to a temporary name in the same folder, then rename (never half a file)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.tmp.npz")  # np.savez wants .npz
    try:
        patched.save(tmp)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()


def collect_inputs(inputs: Iterable[str | os.PathLike], skipped: list[dict[str, Any]] | None = None) -> list[Path]:
    """Files named directly (any extension: a bad one gets its error line) plus mesh files found
    recursively in folders, sorted within each folder; duplicates removed, order kept.

    Files in those folders that are not of a mesh type are appended to ``skipped`` (when given) as
    ``{"input", "status": "skipped", "reason"}`` records, so a report can say what was left out."""
    from dreamcs.mesh.io import MESH_EXTENSIONS

    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        found = sorted(q for q in p.rglob("*") if q.is_file() and is_mesh_file(q)) if p.is_dir() else [p]
        if p.is_dir() and skipped is not None:
            for q in sorted(q for q in p.rglob("*") if q.is_file() and not is_mesh_file(q)):
                kind = f"'{q.suffix}'" if q.suffix else "no extension"
                skipped.append({"input": str(q.resolve()), "status": "skipped",
                                "reason": f"unknown file type ({kind}); mesh types: {', '.join(sorted(MESH_EXTENSIONS))}"})
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def output_names(files: list[Path], reserved: dict[str, str] | None = None) -> dict[Path, str]:
    """``<stem>.npz`` per file, unique and the same for the same inputs on a rerun.

    ``reserved`` maps output names already written (from an earlier report) to the resolved input
    path that owns them: that input keeps its name, and no other input may take it. A stem taken
    before (case-insensitively) gets a short hash of the resolved input path appended.
    """
    owner = {k.lower(): v for k, v in (reserved or {}).items()}
    names: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        src = str(f.resolve())
        mine = [n for n, o in (reserved or {}).items() if o == src]
        name = mine[0] if mine else f"{f.stem}.npz"
        if name.lower() in used or owner.get(name.lower(), src) != src:
            h = hashlib.sha1(src.encode()).hexdigest()[:8]
            name = f"{f.stem}-{h}.npz"
        used.add(name.lower())
        names[f] = name
    return names


def _pool_context():
    """forkserver where available: workers fork from a clean server that imported the mesh core
    (and torch) once, so no thread state of this process is copied and imports are paid once."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["dreamcs.mesh.prepare", "dreamcs.mesh.fusion"])
        return ctx
    return mp.get_context("spawn")


def _run_one(args: tuple[str, str, dict]) -> dict[str, Any]:
    path, out_path, cfg = args
    return prepare_file(path, out_path, PrepareConfig(**cfg))


def prepare_many(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    cfg: PrepareConfig | None = None,
    workers: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Prepare every input into ``out_dir``; returns one record per input (resumed ones included,
    marked ``"resumed": True``), then one ``status: skipped`` record per non-mesh file of a folder. ``on_start(n_total, n_todo)`` and ``on_result(record)`` drive a
    progress display. ``workers > 1`` uses a process pool; the parent alone writes the report.
    """
    cfg = cfg or PrepareConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = out / REPORT_NAME
    skipped: list[dict[str, Any]] = []
    files = collect_inputs(inputs, skipped)
    own = {str(report.resolve())}  # the report itself when OUT lies inside an input folder
    skipped = [r for r in skipped if r["input"] not in own and not r["input"].endswith(".tmp.npz")]
    previous = {r.get("input"): r for r in read_jsonl(report)}
    reserved = {r["output"]: i for i, r in previous.items() if r.get("status") == "ok" and r.get("output")}
    names = output_names(files, reserved)
    done: dict[str, dict[str, Any]] = {}
    todo: list[Path] = []
    for f in files:
        old = previous.get(str(f.resolve()))
        if old and old.get("status") == "ok" and (out / str(old.get("output", ""))).is_file():
            done[str(f.resolve())] = {**old, "resumed": True}
        else:
            todo.append(f)
    if on_start:
        on_start(len(files), len(todo))

    results: dict[str, dict[str, Any]] = {}

    def _record(rec: dict[str, Any]) -> None:
        append_jsonl(report, rec)
        results[rec["input"]] = rec
        if on_result:
            on_result(rec)

    jobs = [(str(f), str(out / names[f]), asdict(cfg)) for f in todo]
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _record(_run_one(job))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = {pool.submit(_run_one, job): job for job in jobs}
            for fut in as_completed(futures):
                try:
                    rec = fut.result()
                except Exception as exc:  # a worker died (e.g. killed for memory)
                    path = futures[fut][0]
                    rec = {
                        "input": str(Path(path).resolve()), "output": Path(futures[fut][1]).name,
                        "status": "error", "error": f"{path}: worker failed: {type(exc).__name__}: {exc}",
                        "error_type": type(exc).__name__,
                    }
                _record(rec)

    # One line per input, inputs of earlier runs that were not named this time kept as they were;
    # files of an unknown type found in the folders are listed as skipped, with the reason.
    final = {**previous, **{r["input"]: r for r in skipped}, **results}
    atomic_write_text(report, "".join(json.dumps(r) + "\n" for r in final.values()))
    return [done.get(str(f.resolve())) or results[str(f.resolve())] for f in files] + skipped

