"""Each source format, and bad input that must name the file and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dreamcs.data.sources import SourceError, collect_items, parse_source


def _meshes(sample_dir: Path, dst: Path, n: int = 3) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(sample_dir.glob("*.obj"))[:n]:
        out.append(Path(shutil.copy(p, dst / p.name)))
    return out


def test_cap3d_folder_and_csv(tmp_path, sample_dir):
    meshes = _meshes(sample_dir, tmp_path / "m")
    csv = tmp_path / "cap.csv"
    # no header; a caption with an unquoted comma; one row without a mesh (ignored)
    csv.write_text(f"{meshes[0].stem},a chair, modern\n{meshes[1].stem},\"a door, framed\"\nzzz,nothing\n")
    items = parse_source(f"cap3d:{tmp_path / 'm'}:{csv}")
    assert [i.id for i in items] == [meshes[0].stem, meshes[1].stem]
    assert items[0].prompt == "a chair, modern" and items[0].caption == items[0].prompt
    assert items[1].prompt == "a door, framed" and items[1].object_id == meshes[1].stem


def test_cap3d_bad_row_names_line(tmp_path, sample_dir):
    _meshes(sample_dir, tmp_path / "m")
    csv = tmp_path / "cap.csv"
    csv.write_text("a,fine\nonly_an_id\n")
    with pytest.raises(SourceError, match=r"cap\.csv:2: expected 'id,caption'"):
        parse_source(f"cap3d:{tmp_path / 'm'}:{csv}")


def test_manifest(tmp_path, sample_dir):
    meshes = _meshes(sample_dir, tmp_path / "m", 2)
    man = tmp_path / "man.jsonl"
    lines = [
        {"path": f"m/{meshes[0].name}", "prompt": "a chair", "source": "mine", "scores": {"overall": 4.5}},
        {"path": str(meshes[1]), "prompt": "a door", "id": "door1", "object_id": "door"},
    ]
    man.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    items = parse_source(f"manifest:{man}")
    assert items[0].path == str(tmp_path / "m" / meshes[0].name)
    assert items[0].source == "mine" and items[0].scores == {"overall": 4.5}
    assert items[1].id == "door1" and items[1].object_id == "door" and items[1].source == "manifest"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "not valid JSON"),
        ('{"path": "a.obj"}', "missing or empty string field 'prompt'"),
        ('{"path": "a.obj", "prompt": "x", "scores": {"overall": 7}}', r"must be a number in \[0, 5\]"),
        ('{"path": "a.obj", "prompt": "x", "scores": {"realism": 3}}', "needs alignment"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_manifest_bad_lines(tmp_path, line, reason):
    man = tmp_path / "man.jsonl"
    man.write_text('{"path": "a.obj", "prompt": "ok"}\n' + line + "\n")
    with pytest.raises(SourceError, match=rf"man\.jsonl:2: .*{reason}"):
        parse_source(f"manifest:{man}")


def test_run_folder(tmp_path, sample_dir):
    run = tmp_path / "run_a"
    _meshes(sample_dir, run / "meshes", 2)
    for i, p in enumerate(sorted((run / "meshes").glob("*.obj"))):
        p.rename(run / "meshes" / f"step_{i:05d}.obj")
    (run / "config.yaml").write_text("prompt: a hamburger\nseed: 0\n")
    items = parse_source(f"run:{run}")
    assert [i.id for i in items] == ["run_a/step_00000", "run_a/step_00001"]
    assert {i.source for i in items} == {"sds_intermediate"} and {i.object_id for i in items} == {"run_a"}
    assert items[0].prompt == "a hamburger" and items[0].caption is None


def test_run_folder_errors(tmp_path):
    run = tmp_path / "r"
    (run / "meshes").mkdir(parents=True)
    with pytest.raises(SourceError, match="config.yaml: run config not found"):
        parse_source(f"run:{run}")
    (run / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(SourceError, match="no 'prompt'"):
        parse_source(f"run:{run}")
    (run / "config.yaml").write_text("prompt: x\n")
    with pytest.raises(SourceError, match="no step_"):
        parse_source(f"run:{run}")


def test_bad_specs_and_duplicates(tmp_path, sample_dir):
    with pytest.raises(SourceError, match="unknown source"):
        parse_source("objaverse:foo")
    with pytest.raises(SourceError, match="expected cap3d:MESH_DIR:CAPTIONS.csv"):
        parse_source("cap3d:onlydir")
    meshes = _meshes(sample_dir, tmp_path / "m", 1)
    man = tmp_path / "man.jsonl"
    man.write_text(json.dumps({"path": str(meshes[0]), "prompt": "x"}) + "\n")
    with pytest.raises(SourceError, match="already used"):
        collect_items([f"manifest:{man}", f"manifest:{man}"])


def test_real_cap3d_csv_parses(shared_data, tmp_path, sample_dir):
    """The real Cap3D CSV (no header, quoted captions with commas) as a format fixture."""
    from dreamcs.data.sources import _read_cap3d_csv

    caps = _read_cap3d_csv(shared_data / "captions" / "cap3d_automated_ABO.csv")
    assert len(caps) > 6000 and all(k and v for k, v in list(caps.items())[:50])
    # meshes named after the first two ids pick up exactly those captions
    ids = list(caps)[:2]
    (tmp_path / "m").mkdir()
    for i, p in zip(ids, sorted(sample_dir.glob("*.obj")), strict=False):
        shutil.copy(p, tmp_path / "m" / f"{i}.obj")
    items = parse_source(f"cap3d:{tmp_path / 'm'}:{shared_data / 'captions' / 'cap3d_automated_ABO.csv'}")
    assert [(it.id, it.prompt) for it in items] == sorted((i, caps[i]) for i in ids)
