"""The dataset folder on disk: labels, object-level splits, shards, the Parquet table, stats, plots.

    DATASET/items.parquet     one row per scored item (the columns of ``COLUMNS``); label 1 preferred,
                              0 dispreferred, -1 in the middle band (kept so calibration can relabel,
                              never served by ``MeshPrefDataset``)
    DATASET/data/{train,validation,test}.parquet, DATASET/README.md   the same rows per split and a
                              dataset card: a Hugging Face ``datasets`` layout (``dreamcs.data.hub``)
    DATASET/shards/shard_NNNNN.npz   patched meshes, ``v{j}`` (V, 3) float32 and ``f{j}`` (P, K, 3) int32
                              for the j-th item of the shard; rows point at them by (shard, shard_index)
    DATASET/shards/meshes/<key>.ply  the simplified mesh of each item (before fusion, <= max_faces
                              faces, in [-1, 1]^3): the row's ``mesh_path``, for training other encoders
    DATASET/stats.json        counts, class balance, per-source and per-split figures
    DATASET/plots/scores_<source>.png   histograms of the scores per source
    DATASET/failures.jsonl    items that could not be prepared or scored, with the reason
    DATASET/config.yaml       the resolved build config

Everything here is a pure function of the rows (sorted by id), so two builds that scored the same
items write identical files whatever order the items finished in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.utils import atomic_write_bytes, atomic_write_text

COLUMNS = [
    "id", "prompt", "source", "object_id", "alignment", "realism", "fidelity", "overall", "label",
    "provenance", "score_source", "machine_overall", "split", "mesh_hash", "n_faces", "caption", "defect", "details",
    "license", "origin", "mesh_path", "shard", "shard_index",
]
#: where a row's scores come from: the scorer (or scores given with the source), a human reviewer
#: (all three), or a human's overall over the machine's component scores
SCORE_SOURCES = ("machine", "human", "calibrated")
SCORE_COLS = ("alignment", "realism", "fidelity", "overall")


def label_for(overall: float, preferred_min: float = 4.0, dispreferred_max: float = 3.5) -> int:
    """1 when ``overall >= preferred_min``, 0 when ``<= dispreferred_max``, else -1 (left out)."""
    if preferred_min <= dispreferred_max:
        raise ValueError(f"preferred_min ({preferred_min}) must be above dispreferred_max ({dispreferred_max})")
    if overall >= preferred_min:
        return 1
    if overall <= dispreferred_max:
        return 0
    return -1


def split_for(object_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), salt: str = "meshpref") -> str:
    """train/val/test from a hash of the object id alone: every item of an object lands on one side."""
    u = int(hashlib.sha1(f"{salt}:{object_id}".encode()).hexdigest()[:15], 16) / 16**15
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def item_key(item_id: str) -> str:
    """A file-name-safe key for an item id (ids may hold '/' and '~')."""
    return hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:20]


def table_bytes(rows: list[dict[str, Any]]) -> bytes:
    """The rows as Parquet bytes with the fixed schema of ``COLUMNS``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (c, pa.float64() if c in (*SCORE_COLS, "machine_overall") else pa.int64() if c in ("label", "n_faces", "shard_index") else pa.string())
            for c in COLUMNS
        ]
    )
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    """``items.parquet`` and, beside it, the per-split Parquet files and dataset card of ``dreamcs.data.hub``."""
    from dreamcs.data.hub import write_hub_layout

    atomic_write_bytes(path, table_bytes(rows))
    write_hub_layout(Path(path).parent, rows)


def read_table(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``root/items.parquet`` as dicts (pyarrow only; no pandas needed), or of the
    per-split files ``root/data/*.parquet`` for a folder that has only those (e.g. from the Hub)."""
    import pyarrow.parquet as pq

    p = Path(root) / "items.parquet"
    if p.is_file():
        return pq.read_table(p).to_pylist()
    from dreamcs.data.hub import SPLIT_FILES

    splits = [Path(root) / f for f in SPLIT_FILES.values() if (Path(root) / f).is_file()]
    if not splits:
        raise FileNotFoundError(f"{p}: not a dataset (no items.parquet, no data/*.parquet); build one with `dreamcs data build`")
    return sorted((r for f in splits for r in pq.read_table(f).to_pylist()), key=lambda r: r["id"])


def load_arrays(root: str | os.PathLike, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float32, faces (P, K, 3) int64) of one row."""
    with np.load(Path(root) / "shards" / row["shard"]) as z:
        j = row["shard_index"]
        return z[f"v{j}"].astype(np.float32), z[f"f{j}"].astype(np.int64)


def load_mesh_arrays(root: str | os.PathLike, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertices (V, 3) float32, faces (F, 3) int64) of a row's simplified mesh, or None without one."""
    if not row.get("mesh_path"):
        return None
    import trimesh

    m = trimesh.load(Path(root) / row["mesh_path"], process=False, force="mesh")
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)


def _ply_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    import trimesh

    m = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    return m.export(file_type="ply", encoding="binary")


def stats(rows: list[dict[str, Any]], n_failures: int = 0) -> dict[str, Any]:
    """Counts and class balance overall, per source and per split."""

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        lab = Counter(r["label"] for r in rs)
        n_lab = lab[1] + lab[0]
        out: dict[str, Any] = {
            "items": len(rs),
            "preferred": lab[1],
            "dispreferred": lab[0],
            "middle_left_out": lab[-1],
            "preferred_share": round(lab[1] / n_lab, 4) if n_lab else None,
        }
        for c in SCORE_COLS:
            vals = [r[c] for r in rs if r[c] is not None]
            out[f"mean_{c}"] = round(float(np.mean(vals)), 4) if vals else None
        return out

    return {
        **block(rows),
        "objects": len({r["object_id"] for r in rows}),
        "failures": n_failures,
        "per_source": {s: block([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})},
        "per_split": {s: block([r for r in rows if r["split"] == s]) for s in ("train", "val", "test")},
    }


def plot_histograms(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per source: histograms of alignment, realism, fidelity and overall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for src in sorted({r["source"] for r in rows}):
        rs = [r for r in rows if r["source"] == src]
        fig, axes = plt.subplots(1, 4, figsize=(12, 2.6))
        for ax, c in zip(axes, SCORE_COLS, strict=True):
            vals = [r[c] for r in rs if r[c] is not None]
            ax.hist(vals, bins=np.linspace(0, 5, 21), color="tab:blue" if c != "overall" else "tab:orange")
            ax.set_title(f"{c} (n={len(vals)})", fontsize=9)
            ax.set_xlim(0, 5)
        fig.suptitle(src, fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})  # no timestamps: reproducible bytes
        plt.close(fig)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in src)
        written.append(atomic_write_bytes(out_dir / "plots" / f"scores_{safe}.png", buf.getvalue()))
    return written


def finalize(
    out: Path,
    rows: Iterable[dict[str, Any]],
    arrays: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]],
    failures: list[dict[str, Any]],
    *,
    preferred_min: float,
    dispreferred_max: float,
    split_fractions: tuple[float, float, float],
    split_salt: str,
    shard_size: int,
    meshes: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray] | None] | None = None,
) -> dict[str, Any]:
    """Label, split, shard and write the whole folder from scored rows; returns the stats.

    ``arrays(row)`` gives (vertices, faces) of a row's patched mesh, ``meshes(row)`` its simplified
    mesh (or None: no ``mesh_path``); rows are sorted by id before anything is written.
    """
    rows = sorted((dict(r) for r in rows), key=lambda r: r["id"])
    for r in rows:
        if r.get("score_source") is None:  # a machine row (human reviews are applied before this)
            r["score_source"], r["machine_overall"] = "machine", r["overall"]
        r["label"] = label_for(r["overall"], preferred_min, dispreferred_max)
        r["split"] = split_for(r["object_id"], split_fractions, split_salt)
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    names = set()
    for s in range(0, len(rows), shard_size):
        name = f"shard_{s // shard_size:05d}.npz"
        names.add(name)
        payload = {}
        for j, r in enumerate(rows[s : s + shard_size]):
            v, f = arrays(r)
            payload[f"v{j}"] = np.asarray(v, dtype=np.float32)
            payload[f"f{j}"] = np.asarray(f, dtype=np.int32)
            r["shard"], r["shard_index"] = name, j
        buf = io.BytesIO()
        np.savez_compressed(buf, **payload)
        atomic_write_bytes(shard_dir / name, buf.getvalue())
    for stale in shard_dir.glob("shard_*.npz"):  # from an earlier, larger build into the same folder
        if stale.name not in names:
            stale.unlink()
    kept = set()
    for r in rows:
        m = meshes(r) if meshes is not None else None
        r["mesh_path"] = None
        if m is not None:
            r["mesh_path"] = f"shards/meshes/{item_key(r['id'])}.ply"
            atomic_write_bytes(out / r["mesh_path"], _ply_bytes(*m))
            kept.add(Path(r["mesh_path"]).name)
    for stale in (shard_dir / "meshes").glob("*.ply"):
        if stale.name not in kept:
            stale.unlink()
    write_table(rows, out / "items.parquet")
    failures = sorted(failures, key=lambda f: f["id"])
    atomic_write_text(out / "failures.jsonl", "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))
    st = stats(rows, len(failures))
    atomic_write_text(out / "stats.json", json.dumps(st, indent=2) + "\n")
    if rows:
        plot_histograms(rows, out)
    return st
