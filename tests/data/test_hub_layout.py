"""The built folder is a Hugging Face `datasets` dataset: one Parquet file per split, a dataset card,
licence and origin per object, the simplified mesh kept; MeshPrefDataset reads either layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from dreamcs.data.dataset import MeshPrefDataset
from dreamcs.data.hub import hub_data_files
from dreamcs.data.store import load_mesh_arrays, read_table


def test_load_dataset_reads_every_split(built):
    datasets = pytest.importorskip("datasets")
    files = {s: str(built / f) for s, f in hub_data_files(built).items()}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(built.parent / "hf_cache"))
    rows = read_table(built)
    assert set(ds) == {{"train": "train", "val": "validation", "test": "test"}[r["split"]] for r in rows}
    assert sum(len(ds[s]) for s in ds) == len(rows)
    for ours, hub in (("train", "train"), ("val", "validation"), ("test", "test")):
        if hub not in ds:
            assert not any(r["split"] == ours for r in rows)
            continue
        assert sorted(ds[hub]["id"]) == sorted(r["id"] for r in rows if r["split"] == ours)
    # the card's configs say the same: the folder alone loads
    by_card = datasets.load_dataset(str(built), cache_dir=str(built.parent / "hf_cache2"))
    assert {s: len(by_card[s]) for s in by_card} == {s: len(ds[s]) for s in ds}
    one = next(s for s in ds if len(ds[s]))
    for col in ("prompt", "overall", "label", "license", "origin", "mesh_path", "score_source", "shard"):
        assert col in ds[one].column_names


def test_dataset_card_header(built):
    text = (built / "README.md").read_text()
    head = yaml.safe_load(text.split("---\n")[1])
    files = {d["split"]: d["path"] for d in head["configs"][0]["data_files"]}
    assert files == hub_data_files(built) and all((built / p).is_file() for p in files.values())
    assert head["license"] == "other" and "text-to-3d" in head["task_categories"]
    assert "license" in text and "load_dataset" in text


def test_simplified_mesh_and_licence_per_row(built):
    rows = read_table(built)
    assert all(r["license"] for r in rows) and {r["license"] for r in rows} == {"unknown"}  # the manifest gave none
    for r in rows:
        v, f = load_mesh_arrays(built, r)
        assert v.shape[1] == 3 and f.shape[1] == 3 and 0 < len(f) == r["n_faces"] and f.max() < len(v)
        assert np.abs(v).max() <= 1.0 + 1e-5


def test_embedded_items_carry_licence_and_origin():
    from dreamcs.data.embedded import embedded_items

    items = embedded_items()
    assert all(it.license and it.origin for it in items)
    horse = next(it for it in items if it.id == "horse")
    assert "MIT" in horse.license and "text2mesh" in horse.origin


def test_dataset_reads_the_split_files_alone(built, tmp_path):
    """A folder with only the Hub layout (data/, shards/), e.g. downloaded from the Hub."""
    hub = tmp_path / "hub"
    shutil.copytree(built / "shards", hub / "shards")
    for f in hub_data_files(built).values():
        (hub / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built / f, hub / f)
    a, b = MeshPrefDataset(built, split="all"), MeshPrefDataset(hub, split="all")
    assert len(a) == len(b) > 0 and [r["id"] for r in a.rows] == [r["id"] for r in b.rows]
    assert np.allclose(a[0]["features"].numpy(), b[0]["features"].numpy())
