"""Aggregation (mean +/- std per variant), the Markdown/CSV/JSON writers, the contact sheet."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from dreamcs.evaluate.tables import aggregate, contact_sheet, markdown_table, write_tables

RECORDS = [
    {"variant": "baseline", "clip_score": 20.0, "janus_score": 0.8, "holes": 4},
    {"variant": "baseline", "clip_score": 24.0, "janus_score": float("nan"), "holes": 0},
    {"variant": "+RewardCS", "clip_score": 25.0, "janus_score": 0.2, "holes": 0, "custom": 1.5},
    {"variant": "+RewardCS", "clip_score": None, "janus_score": 0.4, "holes": 2, "error": "x"},
]


def test_aggregate_mean_std_and_missing_values():
    agg = aggregate(RECORDS)
    assert list(agg) == ["baseline", "+RewardCS"]
    assert agg["baseline"]["clip_score"] == {"mean": 22.0, "std": 2.0, "n": 2}
    assert agg["baseline"]["janus_score"]["n"] == 1  # nan left out
    assert agg["+RewardCS"]["clip_score"]["n"] == 1  # None left out
    assert agg["+RewardCS"]["janus_score"]["mean"] == pytest.approx(0.3)
    assert "custom" not in agg["+RewardCS"]  # only the known metrics unless asked
    assert aggregate(RECORDS, metrics=["custom"])["+RewardCS"]["custom"]["mean"] == 1.5


def test_markdown_layout():
    md = markdown_table(aggregate(RECORDS), digits=2)
    lines = md.strip().splitlines()
    assert lines[0] == "| Method | CP ↑ | Janus score ↓ | Holes ↓ |"
    assert lines[2] == "| baseline | 22.00 ± 2.00 | 0.80 ± 0.00 | 2.00 ± 2.00 |"
    assert lines[3].startswith("| +RewardCS | 25.00 ± 0.00 | 0.30 ± 0.10 |")


def test_writers_round_trip(tmp_path):
    agg = aggregate(RECORDS)
    paths = write_tables(tmp_path, agg, "table", extra={"n_assets": 4})
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["variant"] for r in rows] == ["baseline", "+RewardCS"]
    assert float(rows[0]["clip_score_mean"]) == 22.0 and float(rows[1]["janus_score_std"]) == pytest.approx(0.1)
    data = json.loads(paths["json"].read_text())
    assert data["n_assets"] == 4 and math.isclose(data["table"]["baseline"]["clip_score"]["std"], 2.0)
    assert paths["md"].read_text() == markdown_table(agg)


def _color(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def test_contact_sheet(tmp_path):
    from PIL import Image

    red, blue, green = (200, 10, 50), (10, 100, 200), (20, 180, 20)  # not grey: text antialiasing is
    cells = {("a chair", 0): {"baseline": _color(16, 64, red), "+RewardCS": _color(16, 128, green)},
             ("a car", 1): {"+RewardCS": _color(8, 64, blue)}}
    p = contact_sheet(cells, ["baseline", "+RewardCS"], tmp_path / "sheet.png", cell_width=64)
    im = np.asarray(Image.open(p)).astype(int)

    def count(rgb, cols=slice(None)):
        return int((im[:, cols] == rgb).all(axis=2).sum())

    assert im.shape[1] == 480  # at least wide enough for the labels
    assert count(red) == 16 * 64  # baseline cell pasted at its size
    assert count(green) == 8 * 64  # the 128-wide strip scaled to the 64-wide cell
    assert count(blue) == 8 * 64 and count(blue, slice(0, 68)) == 0  # the car: second column only
    with pytest.raises(ValueError):
        contact_sheet({}, [], tmp_path / "empty.png")
