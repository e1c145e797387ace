"""`dreamcs mesh inspect` and `dreamcs mesh prepare` through Typer's CliRunner."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.utils import read_jsonl

runner = CliRunner()


def test_inspect_prints_quality_table(sample_dir):
    path = sample_dir / "blockmesh_test__s_chair_modern.obj"
    result = runner.invoke(app, ["mesh", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    for word in ("n_faces", "n_components", "boundary_edges", "watertight", "1176"):
        assert word in result.output


def test_inspect_json_matches_quality(tmp_path):
    box = trimesh.util.concatenate([trimesh.creation.box(), trimesh.creation.box(extents=(2, 2, 2)).apply_translation([4, 0, 0])])
    path = tmp_path / "boxes.ply"
    path.write_bytes(box.export(file_type="ply"))
    result = runner.invoke(app, ["mesh", "inspect", "--json", str(path)])
    assert result.exit_code == 0, result.output
    q = json.loads(result.output)
    assert q["n_faces"] == 24 and q["n_components"] == 2 and q["watertight"]
    assert q["area_outside_largest"] == pytest.approx(0.2)
    assert q["faces_after_simplify"] == 24


def test_inspect_bad_file_exits_with_reason(tmp_path):
    path = tmp_path / "broken.obj"
    path.write_text("v 0 0 0\nv nan 1 0\nv 1 1 0\nf 1 2 3\n")
    result = runner.invoke(app, ["mesh", "inspect", str(path)])
    assert result.exit_code == 1
    assert "broken.obj" in result.output and "NaN" in result.output


# ------------------------------------------------------------------ prepare


def _mixed_folder(tmp_path, sample_dir):
    """Three good samples (two with the same stem in different folders) and four broken files."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("blockmesh_test__s_primitive_sphere.obj", "demo_mesh__high_chair.obj"):
        shutil.copy(sample_dir / name, src / name)
    # Same stem as the chair, another format: the output names must not collide.
    chair = trimesh.load_mesh(sample_dir / "demo_mesh__high_chair.obj")
    (src / "sub" / "demo_mesh__high_chair.glb").write_bytes(chair.export(file_type="glb"))
    (src / "empty.obj").write_bytes(b"")
    (src / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 1 1 0\nf 1 2 3\n")
    (src / "garbage.ply").write_bytes(np.random.default_rng(0).integers(0, 256, 999, dtype=np.uint8).tobytes())
    (src / "sub" / "faces_only.off").write_text("OFF\n0 1 0\n3 0 1 2\n")
    (src / "notes.txt").write_text("not a mesh, and not collected from a folder")
    return src


def test_prepare_mixed_folder_and_resume(tmp_path, sample_dir):
    pytest.importorskip("dreamcs.mesh.fusion")
    from dreamcs.mesh.fusion import PatchedMesh

    src = _mixed_folder(tmp_path, sample_dir)
    out = tmp_path / "out"
    result = runner.invoke(app, ["mesh", "prepare", str(src), "--out", str(out), "--n-patches", "16", "--faces-per-patch", "8"])
    assert result.exit_code == 0, result.output
    report = read_jsonl(out / "report.jsonl")
    assert len(report) == 8  # one line per mesh file found, and notes.txt listed as skipped
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in report}
    assert by_name["notes.txt"]["status"] == "skipped" and "unknown file type ('.txt')" in by_name["notes.txt"]["reason"]
    assert "skipped" in result.output and "notes.txt" in result.output and "1 skipped" in result.output
    for bad in ("empty.obj", "nan.obj", "garbage.ply", "faces_only.off"):
        assert by_name[bad]["status"] == "error"
        assert bad in by_name[bad]["error"] and by_name[bad]["error_type"] == "MeshError"
    good = [r for r in report if r["status"] == "ok"]
    assert len(good) == 3
    assert len({r["output"] for r in good}) == 3
    for r in good:
        assert r["faces_out"] == 16 * 8
        assert r["quality"]["n_faces"] == r["faces_in"]
        pm = PatchedMesh.load(out / r["output"])
        assert pm.faces.shape == (16, 8, 3)
    assert "7 inputs: 3 ok (0 resumed), 4 failed" in result.output

    # Resume: the good ones are skipped (their npz untouched), the broken ones are tried again.
    stamps = {r["output"]: (out / r["output"]).stat().st_mtime_ns for r in good}
    result = runner.invoke(app, ["mesh", "prepare", str(src), "--out", str(out), "--n-patches", "16", "--faces-per-patch", "8"])
    assert result.exit_code == 0, result.output
    assert "3 ok (3 resumed), 4 failed" in result.output
    assert {r["output"]: (out / r["output"]).stat().st_mtime_ns for r in good} == stamps
    assert len(read_jsonl(out / "report.jsonl")) == 8  # still one line per input

    # A deleted npz is prepared again.
    (out / good[0]["output"]).unlink()
    result = runner.invoke(app, ["mesh", "prepare", str(src), "--out", str(out), "--n-patches", "16", "--faces-per-patch", "8"])
    assert "3 ok (2 resumed), 4 failed" in result.output
    assert (out / good[0]["output"]).is_file()
    assert not list(out.glob(".*tmp*"))  # no temporary files left


@pytest.mark.slow
def test_prepare_process_pool_matches_serial(tmp_path, sample_dir):
    pytest.importorskip("dreamcs.mesh.fusion")
    from dreamcs.mesh.prepare import PrepareConfig, prepare_many

    src = _mixed_folder(tmp_path, sample_dir)
    cfg = PrepareConfig(n_patches=16, faces_per_patch=8)
    serial = prepare_many([src], tmp_path / "a", cfg, workers=1)
    pooled = prepare_many([src], tmp_path / "b", cfg, workers=2)
    assert [r["status"] for r in serial] == [r["status"] for r in pooled]
    for r in serial:
        if r["status"] == "ok":
            a = np.load(tmp_path / "a" / r["output"])
            b = np.load(tmp_path / "b" / r["output"])
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_prepare_names_explicit_missing_and_unknown_files(tmp_path):
    from dreamcs.mesh.prepare import collect_inputs, output_names

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "chair.obj").write_text("")
    (tmp_path / "a" / "readme.md").write_text("")
    files = collect_inputs([tmp_path, tmp_path / "missing.obj", tmp_path / "a" / "readme.md", tmp_path / "a" / "chair.obj"])
    names = [f.name for f in files]
    assert names == ["chair.obj", "chair.obj", "missing.obj", "readme.md"]  # explicit files kept, no repeats
    out = output_names(files)
    assert len(set(out.values())) == 4
    assert out[files[0]] == "chair.npz" and out[files[1]].startswith("chair-")
    assert output_names(files) == out  # the same on a rerun


def test_output_names_respect_earlier_outputs(tmp_path):
    from dreamcs.mesh.prepare import output_names

    a, b = tmp_path / "a" / "chair.obj", tmp_path / "b" / "chair.obj"
    # An earlier run prepared only b, as chair.npz: b keeps it, a (first now) must not take it.
    names = output_names([a, b], reserved={"chair.npz": str(b.resolve())})
    assert names[b] == "chair.npz"
    assert names[a].startswith("chair-") and names[a] != names[b]
