"""The build: outputs, labels, splits, failures, resume after a kill, shard + merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dreamcs.data.build import BuildConfig, build, merge
from dreamcs.data.store import label_for, load_arrays, read_table, split_for

TINY = dict(n_patches=8, faces_per_patch=16, shard_size=2)  # as in conftest.py


def _snapshot(root: Path) -> list[tuple]:
    """Every row and its patched mesh, in order: what 'the same dataset' means."""
    out = []
    for r in read_table(root):
        v, f = load_arrays(root, r)
        out.append((tuple(sorted(r.items())), v.tobytes(), f.tobytes()))
    return out


def test_build_writes_the_dataset_folder(built):
    root = built
    st = json.loads((root / "stats.json").read_text())
    rows = read_table(root)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 5
    for f in ("items.parquet", "stats.json", "failures.jsonl", "config.yaml", "plots/scores_manifest.png"):
        assert (root / f).is_file(), f
    # the bad mesh is a failure with its reason, and did not stop the build
    fails = [json.loads(x) for x in (root / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in fails] == ["broken"] and "broken.obj" in fails[0]["reason"]
    assert st["failures"] == 1 and st["items"] == 5
    for r in rows:
        v, f = load_arrays(root, r)
        assert v.dtype == np.float32 and f.shape == (8, 16, 3) and f.max() < len(v)
        assert r["label"] == label_for(r["overall"]) and r["split"] == split_for(r["object_id"])
        assert 0 <= r["overall"] <= 5 and r["n_faces"] > 0 and len(r["mesh_hash"]) == 40
    given = next(r for r in rows if r["provenance"].startswith("given:"))
    assert given["overall"] == pytest.approx(2.0) and given["label"] == 0
    scored = [r for r in rows if r["provenance"] == "geometric"]
    assert len(scored) == 4 and all(r["alignment"] is None for r in scored)  # no caption: unknown
    assert all(r["overall"] == pytest.approx((r["realism"] + r["fidelity"]) / 2, abs=1e-5) for r in scored)
    assert json.loads((root / "stats.json").read_text())["items"] == 5


def test_label_thresholds():
    assert [label_for(x) for x in (4.0, 3.99, 3.5, 3.51, 0.0, 5.0)] == [1, -1, 0, -1, 0, 1]
    assert label_for(4.2, preferred_min=4.5, dispreferred_max=4.3) == 0
    with pytest.raises(ValueError):
        label_for(3.0, preferred_min=3.0, dispreferred_max=3.5)


def test_thresholds_from_config(tmp_path, sample_dir):
    lines = [{"path": str(sample_dir / "blockmesh_test__s_primitive_sphere.obj"), "prompt": "p", "id": f"i{k}",
              "scores": {"overall": x}} for k, x in enumerate((1.0, 2.0, 3.0))]
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = BuildConfig(sources=[f"manifest:{man}"], preferred_min=2.5, dispreferred_max=1.5, **TINY)
    build(cfg, tmp_path / "ds", progress=False)
    assert [r["label"] for r in read_table(tmp_path / "ds")] == [0, -1, 1]


def test_split_has_no_object_on_two_sides():
    ids = [f"obj{i}" for i in range(400)]
    splits = {o: split_for(o) for o in ids}
    counts = {s: sum(v == s for v in splits.values()) for s in ("train", "val", "test")}
    assert counts["train"] > 280 and counts["val"] > 20 and counts["test"] > 20
    # a deterministic function of the object id alone: items of one object share it
    assert all(split_for(o) == s for o, s in splits.items())


def test_split_leakage_in_a_built_dataset(built):
    by_obj: dict[str, set] = {}
    for r in read_table(built):
        by_obj.setdefault(r["object_id"], set()).add(r["split"])
    assert by_obj and all(len(s) == 1 for s in by_obj.values())


def test_resume_after_kill_equals_uninterrupted(tmp_path, tiny_cfg):
    ref = tmp_path / "ref"
    build(tiny_cfg, ref, progress=False)
    out = tmp_path / "killed"
    src = tiny_cfg.sources[0]
    cmd = [sys.executable, "-m", "dreamcs.cli", "data", "build", "--source", src, "--out", str(out)]
    cmd += [f"{k}={v}" for k, v in TINY.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / ".work" / "journal.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert 2 <= done_before < 6 and not (out / "items.parquet").exists()
    st = build(tiny_cfg, out, workers=2, progress=False)  # resumed with a pool: same result
    assert st["computed_now"] == 6 - done_before  # nothing finished was recomputed
    ids = [json.loads(x).get("id") or json.loads(x)["row"]["id"] for x in journal.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 6  # nothing lost, nothing duplicated
    assert _snapshot(out) == _snapshot(ref)
    assert (out / "failures.jsonl").read_text() == (ref / "failures.jsonl").read_text()
    # a finished build re-run computes nothing and changes nothing
    assert build(tiny_cfg, out, progress=False)["computed_now"] == 0
    assert _snapshot(out) == _snapshot(ref)


def test_changed_settings_are_refused(built_copy):
    from dreamcs.config import load_config

    cfg = load_config(BuildConfig, built_copy / "config.yaml")
    cfg.max_faces = 1000
    with pytest.raises(ValueError, match="different settings .*max_faces"):
        build(cfg, built_copy, progress=False)


def test_two_shards_merged_equal_unsharded(tmp_path, tiny_cfg):
    build(tiny_cfg, tmp_path / "full", progress=False)
    parts = []
    for i in range(2):
        tiny_cfg.shard = f"{i}/2"
        build(tiny_cfg, tmp_path / f"part{i}", progress=False)
        parts.append(tmp_path / f"part{i}")
    n0, n1 = (len(read_table(p)) + len((p / "failures.jsonl").read_text().splitlines()) for p in parts)
    assert n0 > 0 and n1 > 0 and n0 + n1 == 6
    merge(parts, tmp_path / "merged")
    assert _snapshot(tmp_path / "merged") == _snapshot(tmp_path / "full")
    for r in read_table(tmp_path / "full"):  # the simplified meshes travel with the merge
        assert (tmp_path / "merged" / r["mesh_path"]).read_bytes() == (tmp_path / "full" / r["mesh_path"]).read_bytes()
    assert (tmp_path / "merged" / "failures.jsonl").read_text() == (tmp_path / "full" / "failures.jsonl").read_text()
    assert json.loads((tmp_path / "merged" / "stats.json").read_text()) == json.loads((tmp_path / "full" / "stats.json").read_text())
    with pytest.raises(ValueError, match="overlapping"):
        merge([parts[0], parts[0]], tmp_path / "bad")


def test_bad_shard_spec(tmp_path, tiny_cfg):
    tiny_cfg.shard = "2/2"
    with pytest.raises(ValueError, match="0 <= i < n"):
        build(tiny_cfg, tmp_path / "x", progress=False)


@pytest.mark.slow
def test_embedded_preset_build_separates_clean_from_defects(tmp_path):
    """The whole offline set (about 2 minutes with 2 workers on a shared 2-core machine): labels must mean something."""
    from dreamcs.data.sources import parse_source

    cfg = BuildConfig(sources=["embedded"])
    st = build(cfg, tmp_path / "emb", workers=2, progress=False)
    rows = read_table(tmp_path / "emb")
    n_items = len(parse_source("embedded"))
    assert st["failures"] == 0 and len(rows) == n_items
    clean = [r for r in rows if r["defect"] is None and r["label"] != -1]
    bad = [r for r in rows if r["defect"] is not None and r["label"] != -1]
    assert sum(r["label"] == 1 for r in clean) >= 0.8 * len(clean)
    assert sum(r["label"] == 0 for r in bad) >= 0.7 * len(bad)
    assert 0.2 <= st["preferred_share"] <= 0.6
    assert set(st["per_source"]) == {"embedded_clean", "embedded_defect"}
