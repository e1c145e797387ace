"""MeshPrefDataset, `data stats`, calibration with human scores, the review page, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.data.calibrate import CalibrationError, calibrate, review
from dreamcs.data.dataset import MeshPrefDataset
from dreamcs.data.store import read_table


def test_dataset_items_follow_the_interface(built):
    ds = MeshPrefDataset(built, split="all")
    rows = [r for r in read_table(built) if r["label"] in (0, 1)]
    assert len(ds) == len(rows) > 0
    item = ds[0]
    assert item["features"].shape == (8, 16, 10) and item["features"].dtype == torch.float32
    assert item["centers"].shape == (8, 3) and item["centers"].dtype == torch.float32
    assert torch.isfinite(item["features"]).all()
    assert isinstance(item["score"], float) and item["label"] in (0, 1)
    for k in ("prompt", "id", "object_id", "source"):
        assert isinstance(item[k], str)
    row = next(r for r in rows if r["id"] == item["id"])
    assert item["score"] == pytest.approx(row["overall"]) and item["label"] == row["label"]
    # the features are those of the stored patched mesh
    from dreamcs.data.store import load_arrays
    from dreamcs.mesh import patch_features

    v, f = load_arrays(built, row)
    assert torch.allclose(item["features"], patch_features(torch.from_numpy(v), torch.from_numpy(f)))
    # splits partition the labelled items
    n = sum(len(MeshPrefDataset(built, split=s)) for s in ("train", "val", "test"))
    assert n == len(ds)
    with pytest.raises(ValueError, match="split must be"):
        MeshPrefDataset(built, split="dev")


def test_concat_reads_each_part_from_its_own_folder(built, built_copy):
    from dreamcs.data import ConcatMeshPref
    from dreamcs.reward.train import dataset_column

    a, b = MeshPrefDataset(built, split="train"), MeshPrefDataset(built_copy, split="val")
    both = ConcatMeshPref([a, b])
    assert len(both) == len(a) + len(b) and list(both.labels) == list(a.labels) + list(b.labels)
    last = both[len(a) + len(b) - 1]
    assert last["id"] == b.rows[-1]["id"] and torch.equal(last["features"], b[len(b) - 1]["features"])
    assert both[0]["id"] == a.rows[0]["id"]
    # the trainer's cheap column reads and domain groups see every part's rows
    assert dataset_column(both, "prompt") == [r["prompt"] for r in a.rows + b.rows]
    assert dataset_column(both, "source") == [r["source"] for r in a.rows + b.rows]
    with pytest.raises(ValueError, match="at least one"):
        ConcatMeshPref([])


def test_middle_band_is_not_served(built_copy):
    calibrate(built_copy, _csv(built_copy, "id,overall\n{a},3.8\n"))
    a = read_table(built_copy)[0]["id"]
    assert a not in {MeshPrefDataset(built_copy, "all").rows[i]["id"] for i in range(len(MeshPrefDataset(built_copy, "all")))}


def _csv(root, text):
    a, b = (r["id"] for r in read_table(root)[:2])
    p = root.parent / "human.csv"
    p.write_text(text.format(a=a, b=b))
    return p


def test_calibrate_components_and_overall(built_copy):
    rows0 = {r["id"]: r for r in read_table(built_copy)}
    csv = _csv(built_copy, "id,alignment,realism,fidelity\n{a},1,2,3\n{b},5,5,4.4\n")
    n, st = calibrate(built_copy, csv)
    rows = {r["id"]: r for r in read_table(built_copy)}
    a, b = list(rows)[:2]
    assert n == 2
    assert (rows[a]["alignment"], rows[a]["realism"], rows[a]["fidelity"], rows[a]["overall"]) == (1, 2, 3, 2)
    assert rows[a]["label"] == 0 and rows[b]["label"] == 1 and rows[b]["overall"] == pytest.approx(14.4 / 3)
    assert rows[a]["provenance"] == rows[b]["provenance"] == "human:human.csv"
    others = [k for k in rows if k not in (a, b)]
    assert all(rows[k] == rows0[k] for k in others)  # untouched rows keep their scores and provenance
    log = [json.loads(x) for x in (built_copy / "calibration.jsonl").read_text().splitlines()]
    assert [x["id"] for x in log] == [a, b] and log[0]["before"]["overall"] == rows0[a]["overall"]
    assert json.loads((built_copy / "stats.json").read_text())["dispreferred"] == st["dispreferred"]
    # id,overall keeps the scorer's component scores and replaces overall only
    calibrate(built_copy, _csv(built_copy, "id,overall\n{a},4.5\n"))
    ra = next(r for r in read_table(built_copy) if r["id"] == a)
    assert ra["overall"] == 4.5 and ra["label"] == 1 and ra["realism"] == 2


@pytest.mark.parametrize(
    "text, reason",
    [
        ("id,score\n{a},3\n", "header must be"),
        ("id,overall\nnope,3\n", ":2: unknown item id 'nope'"),
        ("id,overall\n{a},6\n", ":2: overall = 6.0 is outside"),
        ("id,alignment,realism,fidelity\n{a},1,x,3\n", ":2: realism is not a number"),
    ],
)
def test_calibrate_bad_files(built_copy, text, reason):
    before = (built_copy / "items.parquet").read_bytes()
    with pytest.raises(CalibrationError, match=reason):
        calibrate(built_copy, _csv(built_copy, text))
    assert (built_copy / "items.parquet").read_bytes() == before


def test_review_page(built, tmp_path):
    out = tmp_path / "review.html"
    n = review(built, out, limit=2, n_views=2)
    page = out.read_text()
    assert n == 2 and page.count("<tr class=") == 2
    assert page.count("data:image/png;base64,") == 4
    assert read_table(built)[0]["prompt"] in page and "<small>machine: " in page  # where the scores come from


def test_cli_build_stats_and_errors(tmp_path, manifest):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "build", "--source", f"manifest:{manifest}", "--out", str(tmp_path / "ds"),
                              "n_patches=8", "faces_per_patch=16"])
    assert res.exit_code == 0, res.output
    assert "5 items" in res.output and "1 failures" in res.output
    res = runner.invoke(app, ["data", "stats", str(tmp_path / "ds")])
    assert res.exit_code == 0 and "source manifest" in res.output and "47% preferred" in res.output
    res = runner.invoke(app, ["data", "build", "--source", "nope:x", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown source" in res.output
    res = runner.invoke(app, ["data", "stats", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no items.parquet" in res.output


def test_dataloader_with_forked_workers(built):
    ds = MeshPrefDataset(built, split="all")
    ds[0]  # the parent opens a shard first: workers must not share its file offset
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert sum(len(b["id"]) for b in batches) == len(ds)
    assert batches[0]["features"].shape[1:] == (8, 16, 10)
    assert torch.allclose(batches[0]["features"][0], ds[0]["features"])
