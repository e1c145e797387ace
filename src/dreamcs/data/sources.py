"""Where the meshes come from: the ``--source`` SPEC strings of ``dreamcs data build``.

    cap3d:MESH_DIR:CAPTIONS.csv   a folder of meshes + a Cap3D CSV (``id,caption``, no header; id = file stem)
    manifest:FILE.jsonl           one JSON object a line: ``path``, ``prompt``, optional ``source``,
                                  ``scores`` ({alignment, realism, fidelity} or {overall}), ``id``,
                                  ``object_id``, ``caption``, ``license`` and ``origin`` (where the
                                  object comes from, e.g. a URL; both go into the dataset's columns)
    run:RUN_DIR                   a generation run: ``RUN/meshes/step_*.obj`` with the prompt from
                                  ``RUN/config.yaml`` (key ``prompt``), marked ``source=sds_intermediate``
    harvest:HARVEST_DIR           meshes kept from many SDS runs by ``dreamcs data harvest``
                                  (``dreamcs.data.harvest``; Chamfer scores where a ground truth exists)
    preset:NAME                   a named item set of ``dreamcs.data.presets`` (``offline``: procedural + licensed real
                                  meshes with graded defects)
    embedded                      the offline set shipped in ``dreamcs/assets/meshpref`` (clean meshes and
                                  synthesised defects, see ``dreamcs.data.embedded``)
    procedural:N[:SEED]           N generated objects of ``dreamcs.data.procedural.library(N, SEED)``,
                                  written once as OBJ to a cache folder (``$DREAMCS_PROCEDURAL_CACHE``
                                  or the temp dir), keyed by a hash of the generators' source

Every source yields ``SourceItem`` records; malformed input raises ``SourceError`` naming the file
(and line) and the reason.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
SCORE_KEYS = ("alignment", "realism", "fidelity")


class SourceError(ValueError):
    """A source spec or input file that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class SourceItem:
    """One (mesh, prompt) pair to prepare and score.

    ``caption`` is the mesh's own description where one is known (Cap3D, the embedded set); the
    geometric scorer compares it with ``prompt``. ``defect`` names a synthetic defect applied at
    preparation time (embedded preset only). ``scores`` are given scores that bypass the scorer.
    """

    id: str
    path: str
    prompt: str
    source: str
    object_id: str
    caption: str | None = None
    defect: str | None = None
    scores: dict[str, float] | None = None
    license: str | None = None
    """The object's licence (the dataset's ``license`` column; None: unknown)."""
    origin: str | None = None
    """Where the object comes from (a repository, URL or dataset id; the ``origin`` column)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_cap3d_csv(csv_path: Path) -> dict[str, str]:
    if not csv_path.is_file():
        raise SourceError(csv_path, "captions CSV not found")
    captions: dict[str, str] = {}
    with open(csv_path, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise SourceError(f"{csv_path}:{lineno}", f"expected 'id,caption', got {row!r}")
            # A caption with unquoted commas arrives split; join the rest back.
            captions[row[0].strip()] = ",".join(row[1:]).strip()
    if not captions:
        raise SourceError(csv_path, "no captions in file")
    return captions


def cap3d_items(mesh_dir: str | os.PathLike, csv_path: str | os.PathLike, source: str = "cap3d") -> list[SourceItem]:
    """Meshes in ``mesh_dir`` whose file stem has a caption in the Cap3D CSV (prompt = caption)."""
    mesh_dir, csv_path = Path(mesh_dir), Path(csv_path)
    if not mesh_dir.is_dir():
        raise SourceError(mesh_dir, "mesh folder not found")
    captions = _read_cap3d_csv(csv_path)
    items = []
    for p in sorted(mesh_dir.iterdir()):
        if p.suffix.lower() not in MESH_SUFFIXES or p.stem not in captions:
            continue
        cap = captions[p.stem]
        items.append(SourceItem(id=p.stem, path=str(p), prompt=cap, source=source, object_id=p.stem, caption=cap,
                                origin=f"cap3d:{p.stem}"))  # Objaverse-style assets: licence per object, unknown here
    if not items:
        raise SourceError(mesh_dir, f"no mesh file whose stem has a caption in {csv_path}")
    return items


def _parse_scores(where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise SourceError(where, f"'scores' must be an object, got {type(value).__name__}")
    keys = set(value)
    if not (keys >= set(SCORE_KEYS) or "overall" in keys):
        raise SourceError(where, f"'scores' needs {', '.join(SCORE_KEYS)} or overall; got {sorted(keys)}")
    out = {}
    for k, v in value.items():
        if k not in (*SCORE_KEYS, "overall"):
            raise SourceError(where, f"unknown score {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 5.0:
            raise SourceError(where, f"score {k!r} must be a number in [0, 5], got {v!r}")
        out[k] = float(v)
    return out


def manifest_items(path: str | os.PathLike) -> list[SourceItem]:
    """Items from a JSONL manifest; relative mesh paths are relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(path, "manifest not found")
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(where, f"not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise SourceError(where, "each line must be a JSON object")
            for key in ("path", "prompt"):
                if not isinstance(rec.get(key), str) or not rec[key].strip():
                    raise SourceError(where, f"missing or empty string field {key!r}")
            mesh = Path(rec["path"])
            if not mesh.is_absolute():
                mesh = path.parent / mesh
            item_id = str(rec.get("id") or mesh.stem)
            items.append(
                SourceItem(
                    id=item_id,
                    path=str(mesh),
                    prompt=rec["prompt"].strip(),
                    source=str(rec.get("source") or "manifest"),
                    object_id=str(rec.get("object_id") or item_id),
                    caption=rec.get("caption"),
                    scores=_parse_scores(where, rec["scores"]) if rec.get("scores") is not None else None,
                    license=str(rec["license"]) if rec.get("license") else None,
                    origin=str(rec["origin"]) if rec.get("origin") else None,
                )
            )
    if not items:
        raise SourceError(path, "manifest has no items")
    return items


def run_items(run_dir: str | os.PathLike) -> list[SourceItem]:
    """Intermediate meshes of a generation run: one object (the run), one item per saved step."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise SourceError(cfg_path, "run config not found")
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SourceError(cfg_path, f"not valid YAML ({e})") from None
    prompt = cfg.get("prompt") if isinstance(cfg, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise SourceError(cfg_path, "no 'prompt' string in the run config")
    meshes = sorted((run_dir / "meshes").glob("step_*.obj"))
    if not meshes:
        raise SourceError(run_dir / "meshes", "no step_*.obj meshes")
    name = run_dir.resolve().name
    return [
        SourceItem(id=f"{name}/{m.stem}", path=str(m), prompt=prompt.strip(), source="sds_intermediate", object_id=name,
                   origin=f"dreamcs run {name}")
        for m in meshes
    ]


def parse_source(spec: str) -> list[SourceItem]:
    """Items for one ``--source`` SPEC (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if kind == "cap3d":
        mesh_dir, sep, csv_path = rest.partition(":")
        if not sep or not mesh_dir or not csv_path:
            raise SourceError(spec, "expected cap3d:MESH_DIR:CAPTIONS.csv")
        return cap3d_items(mesh_dir, csv_path)
    if kind == "manifest" and rest:
        return manifest_items(rest)
    if kind == "run" and rest:
        return run_items(rest)
    if kind == "harvest" and rest:
        from dreamcs.data.harvest import harvest_items

        return harvest_items(rest)
    if kind == "procedural" and rest:
        from dreamcs.data.procedural.source import procedural_items

        return procedural_items(spec, rest)
    if kind == "embedded" and not rest:
        from dreamcs.data.embedded import embedded_items

        return embedded_items()
    if kind == "preset" and rest:  # preset:NAME, see dreamcs.data.presets
        from dreamcs.data.presets import preset_items

        return preset_items(rest)
    raise SourceError(
        spec, "unknown source; use cap3d:MESH_DIR:CAPTIONS.csv, manifest:FILE.jsonl, run:RUN_DIR, harvest:DIR, preset:NAME, procedural:N[:SEED] or embedded"
    )


def collect_items(specs: list[str]) -> list[SourceItem]:
    """All items of all specs, sorted by id; duplicate ids are an error naming both files."""
    seen: dict[str, SourceItem] = {}
    for spec in specs:
        for it in parse_source(spec):
            if it.id in seen:
                raise SourceError(it.path, f"item id {it.id!r} already used by {seen[it.id].path}")
            seen[it.id] = it
    return [seen[k] for k in sorted(seen)]
