"""``dreamcs data harvest``: kept steps, the manifest, resume after a kill, Chamfer labels, and
``data build`` consuming the harvest. The generator is ``dmtet-tiny`` (a random prior, seconds a run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.config import load_config
from dreamcs.data.chamfer_labels import CD_FREE, ChamferLabeler, chamfer_to_score, ground_truth_meshes
from dreamcs.data.harvest import HarvestConfig, read_run_records, run_harvest

# "a pyramid" is an embedded caption (its mesh is the ground truth); the other prompt has none
PROMPTS = ["a pyramid", "a shapeless test blob"]
# threads pinned: float sums (and so the meshes) depend on torch's thread count
SETTINGS = ["config=dmtet-tiny", "keep_steps=[3,8]", "chamfer_points=256", "overrides=[save_every=2]", "threads=1"]


def _cfg(*extra: str) -> HarvestConfig:
    return load_config(HarvestConfig, None, [*SETTINGS, *extra])


@pytest.fixture(scope="module")
def harvest_dir(tmp_path_factory) -> Path:
    """One uninterrupted harvest, made through the CLI (2 prompts x 1 seed)."""
    root = tmp_path_factory.mktemp("harvest")
    prompts = root / "prompts.txt"
    prompts.write_text("# two prompts\n" + "\n".join(PROMPTS) + "\n")
    res = CliRunner().invoke(app, ["data", "harvest", "--out", str(root / "h"), "--prompts", str(prompts),
                                   "--seeds", "0", *SETTINGS])
    assert res.exit_code == 0, res.output
    assert "4 meshes" in res.output
    return root / "h"


def _manifest(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "harvest.jsonl").read_text().splitlines() if line.strip()]


def test_harvest_keeps_requested_steps_and_writes_manifest(harvest_dir):
    recs = _manifest(harvest_dir)
    assert [(r["prompt"], r["step"]) for r in sorted(recs, key=lambda r: (PROMPTS.index(r["prompt"]), r["step"]))] == [
        ("a pyramid", 3), ("a pyramid", 8), ("a shapeless test blob", 3), ("a shapeless test blob", 8)]
    for r in recs:
        mesh = trimesh.load(harvest_dir / r["path"], force="mesh")
        assert len(mesh.faces) > 0
        assert r["source"] == "sds_intermediate" and r["seed"] == 0
        assert r["id"] == f"{r['object_id']}/step_{r['step']:06d}"
        run = harvest_dir / "runs" / r["object_id"]
        assert (run / "final.obj").is_file() and not (run / "checkpoints").exists()
        assert not (run / "meshes" / "step_000005.obj").exists()  # only the kept steps
        if r["prompt"] == "a pyramid":
            assert 0.0 <= r["scores"]["overall"] <= 5.0 and r["chamfer"] > 0
            assert r["scores"]["overall"] == pytest.approx(chamfer_to_score(r["chamfer"], r["chamfer_floor"]), abs=1e-3)
        else:
            assert "scores" not in r and "chamfer" not in r
    # the mesh after 3 steps differs from the one after 8: the steps are really different states
    a, b = (trimesh.load(harvest_dir / r["path"], force="mesh") for r in recs[:2])
    assert a.vertices.shape != b.vertices.shape or not np.allclose(a.vertices, b.vertices)


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so the harvest does not record it as a failed run."""


def test_killed_harvest_resumes_to_the_same_manifest(harvest_dir, tmp_path):
    out = tmp_path / "h"
    seen: list[tuple[str, int]] = []

    def kill_in_second_run(job, step):
        seen.append((job.prompt, step))
        if job.prompt == PROMPTS[1] and step == 4:  # after the checkpoint of step 4, before mesh 8
            raise Killed

    with pytest.raises(Killed):
        run_harvest(out, _cfg(), prompts=PROMPTS, on_step=kill_in_second_run)
    assert len(read_run_records(out)) == 2  # the first run finished, the second did not
    assert {r["prompt"] for r in _manifest(out)} == {PROMPTS[0]}  # the manifest grew by that run
    assert seen[-1] == (PROMPTS[1], 4)
    seen.clear()
    counts = run_harvest(out, _cfg(), prompts=PROMPTS, on_step=lambda job, step: seen.append((job.prompt, step)))
    assert counts.pop("cpu_seconds") > 0
    assert counts == {"done": 1, "skipped": 1, "failed": 0, "meshes": 4}
    assert seen[0] == (PROMPTS[1], 4)  # resumed from its checkpoint, not from step 0
    assert (out / "harvest.jsonl").read_text() == (harvest_dir / "harvest.jsonl").read_text()
    for r in _manifest(out):
        assert (out / r["path"]).read_bytes() == (harvest_dir / r["path"]).read_bytes()
    # a third call has nothing to do
    assert run_harvest(out, _cfg(), prompts=PROMPTS)["skipped"] == 2


def test_a_failing_run_is_recorded_and_retried(tmp_path):
    def fail_first(job, step):
        if job.prompt == PROMPTS[0]:
            raise RuntimeError("injected failure")

    cfg = _cfg("keep_steps=[2]")
    counts = run_harvest(tmp_path / "h", cfg, prompts=PROMPTS, on_step=fail_first, log=lambda _: None)
    assert (counts["done"], counts["failed"], counts["meshes"]) == (1, 1, 1)
    fail = json.loads((tmp_path / "h" / "failures.jsonl").read_text())
    assert fail["prompt"] == PROMPTS[0] and "RuntimeError: injected failure" in fail["error"]
    counts = run_harvest(tmp_path / "h", cfg, prompts=PROMPTS, log=lambda _: None)
    assert (counts["done"], counts["skipped"], counts["failed"], counts["meshes"]) == (1, 1, 0, 2)


def test_parallel_workers_give_the_same_manifest(harvest_dir, tmp_path):
    counts = run_harvest(tmp_path / "h", _cfg("workers=2"), prompts=PROMPTS, log=lambda _: None)
    assert counts["done"] == 2
    assert (tmp_path / "h" / "harvest.jsonl").read_text() == (harvest_dir / "harvest.jsonl").read_text()


def test_shards_split_the_jobs_and_settings_are_pinned(tmp_path):
    a = run_harvest(tmp_path / "h", _cfg("shard=0/2", "keep_steps=[2]"), prompts=PROMPTS, log=lambda _: None)
    assert {k: a[k] for k in ("done", "skipped", "failed", "meshes")} == {"done": 1, "skipped": 0, "failed": 0, "meshes": 1}
    assert _manifest(tmp_path / "h")[0]["prompt"] == PROMPTS[0]
    with pytest.raises(ValueError, match="keep_steps"):
        run_harvest(tmp_path / "h", _cfg("keep_steps=[3]"), prompts=PROMPTS)


def test_chamfer_label_maps_ground_truth_to_5_and_far_shapes_lower():
    ref = ground_truth_meshes()["a pyramid"]
    lab = ChamferLabeler(ref, points=512)
    own = lab.label(trimesh.load(ref, force="mesh"))
    assert own["overall"] == 5.0 and own["chamfer"] - lab.floor <= CD_FREE
    sphere = lab.label(trimesh.creation.icosphere(subdivisions=3))
    box = lab.label(trimesh.creation.box())
    assert sphere["overall"] < 3.5 and box["overall"] < 5.0
    assert sphere["chamfer"] > own["chamfer"]
    cds = np.linspace(0.0, 1.0, 50)
    scores = [chamfer_to_score(c) for c in cds]
    assert all(x >= y for x, y in zip(scores, scores[1:], strict=False)) and scores[-1] < 0.2
    assert chamfer_to_score(float("inf")) == 0.0


def test_procedural_objects_are_harvested_with_their_mesh_as_ground_truth(tmp_path):
    pytest.importorskip("dreamcs.data.procedural")
    out = tmp_path / "h"
    counts = run_harvest(out, _cfg("procedural=2", "keep_steps=[2]"), prompts=[], log=lambda _: None)
    assert (counts["done"], counts["meshes"]) == (2, 2)
    for r in _manifest(out):
        ref = out / r["reference"]
        assert r["reference"].startswith("references/") and ref.is_file()
        assert json.loads(ref.with_suffix(".json").read_text())["caption"] == r["prompt"]
        assert 0.0 <= r["scores"]["overall"] < 5.0  # two steps from a sphere is not the object


def test_references_file_adds_ground_truths_and_names_bad_input(tmp_path, sample_dir):
    mesh = sorted(sample_dir.glob("*.obj"))[0]
    good = tmp_path / "refs.json"
    good.write_text(json.dumps({"a  special   thing": str(mesh)}))
    assert ground_truth_meshes(good)["a special thing"] == mesh
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": "missing.obj"}))
    with pytest.raises(ValueError, match=r"bad\.json: the mesh for 'x' does not exist"):
        ground_truth_meshes(bad)


def test_data_build_consumes_the_harvest(harvest_dir, tmp_path):
    from dreamcs.data.build import BuildConfig, build
    from dreamcs.data.sources import SourceError, parse_source
    from dreamcs.data.store import read_table

    assert [i.id for i in parse_source(f"harvest:{harvest_dir}")] == \
        sorted(i.id for i in parse_source(f"manifest:{harvest_dir / 'harvest.jsonl'}"))
    build(BuildConfig(sources=[f"harvest:{harvest_dir}"], n_patches=8, faces_per_patch=16, shard_size=2),
          tmp_path / "ds", progress=False)
    rows = {r["id"]: r for r in read_table(tmp_path / "ds")}
    recs = {r["id"]: r for r in _manifest(harvest_dir)}
    assert set(rows) == set(recs)
    for rid, r in rows.items():
        assert r["source"] == "sds_intermediate" and r["object_id"] == recs[rid]["object_id"]
        if "scores" in recs[rid]:  # the Chamfer score is taken as given, not re-scored
            assert r["provenance"] == "given:sds_intermediate"
            assert r["overall"] == pytest.approx(recs[rid]["scores"]["overall"], abs=1e-6)
        else:
            assert r["provenance"] == "geometric"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty: not a harvest folder"):
        parse_source(f"harvest:{tmp_path / 'empty'}")
