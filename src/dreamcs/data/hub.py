"""A built 3D-MeshPref folder as a Hugging Face ``datasets`` dataset.

    DATASET/README.md                 the dataset card: a YAML header (``configs`` with the
                                      ``data_files`` of each split, licence, task and tags), then
                                      what the columns mean, the counts and how to load it
    DATASET/data/train.parquet        the rows of each split (the columns of ``store.COLUMNS``),
    DATASET/data/validation.parquet   middle-band rows (label -1) included; ``mesh_path`` points at
    DATASET/data/test.parquet         the simplified mesh, ``shard``/``shard_index`` at the fused one

    from datasets import load_dataset
    ds = load_dataset("parquet", data_files={s: f"DATASET/{f}" for s, f in hub_data_files("DATASET").items()})
    ds = load_dataset("DATASET")   # the card's configs say the same (a local folder or a Hub repo)

Written by ``store.write_table`` whenever ``items.parquet`` is (build, merge, calibrate), so the
two never disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from dreamcs.utils import atomic_write_bytes, atomic_write_text

#: our split name -> its file; Hugging Face names the middle split "validation"
SPLIT_FILES = {"train": "data/train.parquet", "val": "data/validation.parquet", "test": "data/test.parquet"}
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def hub_data_files(root: str | Path | None = None) -> dict[str, str]:
    """``{hub split name: path relative to the dataset folder}``, as the card's ``data_files``;
    with ``root``, only the splits that have a file there (an empty split has none: ``datasets``
    cannot read a Parquet file without rows)."""
    out = {HUB_SPLITS[s]: f for s, f in SPLIT_FILES.items()}
    return out if root is None else {s: f for s, f in out.items() if (Path(root) / f).is_file()}


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def dataset_card(rows: list[dict[str, Any]], files: dict[str, str] | None = None) -> str:
    """The README.md of the dataset folder (YAML header + a short description)."""
    import yaml

    licenses = Counter(r.get("license") or "unknown" for r in rows)
    header = {
        "pretty_name": "3D-MeshPref (dreamcs build)",
        "license": "other",  # per object: the ``license`` column
        "task_categories": ["text-to-3d"],
        "tags": ["3d", "mesh", "preference", "reward-model", "dreamcs", "meshpref"],
        "size_categories": [_size_category(len(rows))],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f} for s, f in (files or hub_data_files()).items()]}],
    }
    per_split = Counter(r.get("split") for r in rows)
    labels = Counter(r.get("label") for r in rows)
    lic_lines = "\n".join(f"- {n} item(s): {lic}" for lic, n in licenses.most_common())
    return (
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
        "# 3D-MeshPref\n\n"
        "Unpaired mesh preference data built with `dreamcs data build` (DreamCS, ICLR 2026): meshes with a\n"
        "prompt, scored 0-5 on prompt alignment, structural realism and visual fidelity, labelled preferred\n"
        "(`label` 1, overall >= the build's threshold) or dispreferred (0); the middle band (-1) is kept for\n"
        "calibration and left out of training.\n\n"
        f"Rows: {len(rows)} (train {per_split.get('train', 0)}, validation {per_split.get('val', 0)}, "
        f"test {per_split.get('test', 0)}); {labels.get(1, 0)} preferred, {labels.get(0, 0)} dispreferred, "
        f"{labels.get(-1, 0)} middle band. Splits are by object: every item of an object is on one side.\n\n"
        "## Columns\n\n"
        "- `prompt`, `caption`, `source` (how the item entered the build), `origin` (where the object comes\n"
        "  from), `license` (the object's licence), `object_id`, `defect` (a synthetic defect, if any)\n"
        "- `alignment`, `realism`, `fidelity`, `overall`, `label`; `score_source` (machine / human /\n"
        "  calibrated), `provenance` (which scorer or review file), `machine_overall` (the scorer's overall,\n"
        "  kept when a human review replaced it)\n"
        "- `mesh_path`: the simplified mesh (PLY, y up, in [-1, 1]^3, CCW) under `shards/meshes/`, to train\n"
        "  any encoder; `shard`, `shard_index`: the fused 256 x 64 patch layout in `shards/*.npz`\n"
        "  (`v{j}` vertices, `f{j}` patch faces), what `dreamcs.data.MeshPrefDataset` serves\n\n"
        "## Licences\n\nEach object keeps its own licence (the `license` column):\n\n" + lic_lines + "\n\n"
        "## Loading\n\n```python\nfrom datasets import load_dataset\n"
        f"ds = load_dataset(\"parquet\", data_files={json.dumps(files or hub_data_files())})\n"
        "# or: load_dataset(\"path/to/this/folder\")\n```\n"
    )


def write_hub_layout(root: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``data/<split>.parquet`` for every split with rows (an earlier file of a now empty
    split is removed) and ``README.md`` into ``root``."""
    from dreamcs.data.store import table_bytes

    root = Path(root)
    rows = sorted(rows, key=lambda r: r["id"])
    for split, rel in SPLIT_FILES.items():
        part = [r for r in rows if r.get("split") == split]
        if part:
            atomic_write_bytes(root / rel, table_bytes(part))
        elif (root / rel).is_file():
            (root / rel).unlink()
    atomic_write_text(root / "README.md", dataset_card(rows, hub_data_files(root)))
