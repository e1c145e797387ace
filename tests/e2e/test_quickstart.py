"""A reduced quickstart end to end: data build -> RewardCS training and eval -> guided and unguided
generation -> report.html. Small sources and the tiny generation preset keep it to about a minute."""

from __future__ import annotations

import json

import pytest

from dreamcs.quickstart import QuickstartConfig, quickstart
from dreamcs.utils import read_jsonl

SAMPLES = ["blockmesh_test__s_chair_modern", "demo_mesh__high_chair", "blockmesh_test__s_table_sit_circle",
           "blockmesh_test__s_tree_bushy", "blockmesh_test__s_primitive_sphere", "blockmesh_test__s_door_single_frame"]


@pytest.mark.slow
def test_reduced_quickstart_writes_report(tmp_path, sample_dir):
    # Twelve items over six objects: each sample once "good" and once "bad" (given scores), so
    # both classes exist without the embedded set's 256-item build.
    manifest = tmp_path / "manifest.jsonl"
    lines = []
    for name in SAMPLES:
        for tag, s in (("good", 4.6), ("bad", 1.5)):
            lines.append(json.dumps({"id": f"{name}-{tag}", "object_id": name, "path": str(sample_dir / f"{name}.obj"),
                                     "prompt": name.split("__s_")[-1].replace("_", " "),
                                     "scores": {"alignment": s, "realism": s, "fidelity": s}}))
    manifest.write_text("\n".join(lines) + "\n")
    cfg = QuickstartConfig(
        out=str(tmp_path / "demo"), sources=[f"manifest:{manifest}"], workers=1, reward_preset="tiny",
        reward_steps=3, reward_batch_size=4, generate_config="dmtet-tiny", generate_steps=3, prompts=["a chair"], seeds=[0],
    )
    report = quickstart(cfg)
    text = report.read_text()
    for heading in ("1. Mesh core", "2. 3D-MeshPref dataset", "3. RewardCS", "4. Generation"):
        assert heading in text
    assert (tmp_path / "demo" / "reward" / "model.safetensors").exists()
    gen = tmp_path / "demo" / "generate"
    guided = read_jsonl(next((gen / "reward" / "runs").glob("*-s0")) / "metrics.jsonl")
    plain = read_jsonl(next((gen / "baseline" / "runs").glob("*-s0")) / "metrics.jsonl")
    assert len(guided) == len(plain) == 3
    assert any(r.get("reward") is not None for r in guided)
    assert all(r.get("reward") is None for r in plain)
    # both variants' final meshes are measured the same way, the reward column included
    table = json.loads((gen / "eval" / "janus.json").read_text())
    assert set(table["table"]) == {"baseline", "+RewardCS"}
    for variant in ("baseline", "+RewardCS"):
        assert "reward" in table["table"][variant]
    # and compared pair by pair (one prompt, one seed: no interval, but the difference is there)
    paired = json.loads((gen / "eval" / "compare.json").read_text())
    assert (paired["a"], paired["b"]) == ("baseline", "+RewardCS") and "holes" in paired["metrics"]
    assert paired["metrics"]["holes"]["pooled"]["pairs"] == 1 and "Paired difference: +RewardCS - baseline" in text
    assert "Turntables" in text and text.count("data:image/png;base64,") >= 2
    # A second call reuses everything it finds instead of recomputing.
    mtime = (tmp_path / "demo" / "reward" / "model.safetensors").stat().st_mtime
    quickstart(cfg)
    assert (tmp_path / "demo" / "reward" / "model.safetensors").stat().st_mtime == mtime
