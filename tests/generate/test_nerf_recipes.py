"""The DreamFusion and Magic3D recipes run 3 CPU steps with tiny stand-ins for their weights, with
and without a RewardCS; Magic3D's fine stage starts from the coarse field and resumes by stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamcs.config import load_config
from dreamcs.generate.config import GenerateConfig, resolve_config_path
from dreamcs.generate.stages import run_generation, stage_config
from dreamcs.utils import read_jsonl

TINY = ["steps=3", "save_every=3", "mesh_every=0", "device=cpu", "geometry.grid_resolution=8",
        "geometry.hash_levels=2", "geometry.hash_log2_table_size=8", "geometry.hash_max_resolution=16",
        "geometry.init_steps=30", "nerf.n_samples=16", "nerf.occupancy_resolution=16",
        "nerf.iso_threshold=2.5",  # below the initial blob's peak: a mesh from step 0 (the SD recipes' 25 needs training) "render.resolution=32",
        "render.batch_size=1", "render.turntable_views=2", "render.turntable_resolution=32", "guidance.image_size=32"]
STAGES = ["stages.coarse=[steps=3]",
          "stages.fine=[geometry.name=dmtet,geometry.init=stage:coarse,steps=3,render.resolution=32]"]
OUTPUTS = ["config.yaml", "metrics.jsonl", "final.obj", "final.glb", "turntable.png"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Tiny stand-ins: a random tiny Stable Diffusion folder, a tiny embedded prior, a tiny RewardCS."""
    from diffusers import DDPMScheduler

    from dreamcs.generate.guidance import save_prior
    from dreamcs.generate.guidance.pixel import tiny_unet
    from dreamcs.generate.guidance.tiny_sd import save_tiny_stable_diffusion
    from dreamcs.reward import RewardCS, preset

    root = tmp_path_factory.mktemp("nerf-weights")
    torch.manual_seed(0)
    save_prior(root / "prior", tiny_unet(1, 32, [8, 16], 16), DDPMScheduler(), text_encoder="hash:16")
    reward = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32")).save_pretrained(root / "reward")
    return {"sd": save_tiny_stable_diffusion(root / "sd"), "prior": root / "prior", "reward": reward}


def recipe(name: str, weights: dict, reward: bool, *extra: str) -> GenerateConfig:
    ov = ["prompt=a vase", *TINY, f"guidance.pretrained={weights['sd' if name.endswith('-sd') else 'prior']}"]
    if name.startswith("magic3d"):
        ov += STAGES
    if reward:
        # scored every step from step 0
        ov += [f"reward.checkpoint={weights['reward']}", "reward.alpha=[0, 0.5, 1.0, 3]", "reward.every=1",
               "reward.n_patches=8", "reward.overlap_fusion=false"]
    return load_config(GenerateConfig, resolve_config_path(name), [*ov, *extra])


@pytest.mark.parametrize("reward", [False, True], ids=["sds", "sds+reward"])
@pytest.mark.parametrize("name", ["dreamfusion-embedded", "magic3d-embedded", "dreamfusion-sd", "magic3d-sd"])
def test_volume_recipes_run_three_steps(name, reward, weights, tmp_path) -> None:
    cfg = recipe(name, weights, reward)
    run = tmp_path / "run"
    out = run_generation(cfg, run, show_progress=False)
    stages = ["coarse", "fine"] if name.startswith("magic3d") else [""]
    for stage in stages:
        metrics = read_jsonl(run / stage / "metrics.jsonl")
        assert [r["step"] for r in metrics] == [0, 1, 2]
        assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in metrics)
        assert all((run / stage / n).is_file() for n in OUTPUTS)
        scored = [r["reward"] for r in metrics if r["reward"] is not None]
        assert (len(scored) == 3 and all(np.isfinite(scored))) if reward else not scored
    coarse = read_jsonl(run / stages[0] / "metrics.jsonl")
    assert all("loss_orient" in r and 0.0 < r["occupied"] <= 1.0 for r in coarse)  # the volume path ran
    assert out.run_dir == run and out.final_obj == run / "final.obj" and out.final_obj.is_file()
    if name.startswith("magic3d"):  # the fine stage's mesh, copied to the run folder for `evaluate`
        assert out.final_obj.read_bytes() == (run / "fine" / "final.obj").read_bytes()


def test_volume_reward_every_k_weighs_k_alpha_and_overlap_changes_nothing(weights, tmp_path) -> None:
    """On the volume path as on DMTet (RewardConfig.every): scored every 2nd step with weight 2 alpha(t),
    unscored in between; fusing in a worker thread gives the same numbers as in line."""
    extra = ("steps=4", "save_every=4", "reward.every=2")
    runs = {ov: run_generation(recipe("dreamfusion-embedded", weights, True, *extra, f"reward.overlap_fusion={ov}"),
                               tmp_path / ov, show_progress=False).metrics for ov in ("false", "true")}
    cfg = recipe("dreamfusion-embedded", weights, True, *extra)
    from dreamcs.schedule import C

    for r in runs["false"]:
        if r["step"] % 2 == 0:
            assert r["alpha"] == pytest.approx(2 * C(cfg.reward.alpha, r["step"], "reward.alpha"))
            assert np.isfinite(r["reward"]) and r["loss_reward"] == pytest.approx(-r["alpha"] * r["reward"])
        else:
            assert r["reward"] is None
    for a, b in zip(runs["false"], runs["true"], strict=True):
        assert a["reward"] == b["reward"] and a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"]
    assert all(r["time_reward"] > 0 for r in runs["true"] if r["reward"] is not None)


def test_magic3d_fine_stage_starts_from_the_coarse_surface(weights, tmp_path) -> None:
    """An explicit DMTet on the coarse grid takes iso - density exactly: the same surface."""
    from dreamcs.generate.geometry import build_geometry, load_volume_run

    cfg = recipe("magic3d-embedded", weights, False, "stages.fine=[geometry.name=dmtet,geometry.init=stage:coarse,"
                 "geometry.parameterization=explicit,steps=1]", "stages.coarse=[steps=2]")
    run = tmp_path / "run"
    run_generation(cfg, run, show_progress=False)
    coarse = load_volume_run(run / "coarse")
    fine = build_geometry(stage_config(cfg, "fine", run))
    with torch.no_grad():
        (cv, cf), (fv, ff) = coarse(), fine()
    assert cf.shape[0] > 50 and torch.equal(cf, ff) and torch.allclose(cv, fv, atol=1e-4)


def test_magic3d_resumes_the_unfinished_stage(weights, tmp_path) -> None:
    cfg = recipe("magic3d-embedded", weights, False, "save_every=1")
    run = tmp_path / "run"

    def kill(stage: str, step: int, rec: dict) -> None:
        if stage == "fine" and step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_generation(cfg, run, show_progress=False, callback=kill)
    coarse_obj = (run / "coarse" / "final.obj").stat().st_mtime_ns
    assert not (run / "fine" / "final.obj").exists()
    seen: list[tuple[str, int]] = []
    out = run_generation(cfg, run, resume=True, show_progress=False, callback=lambda s, i, r: seen.append((s, i)))
    assert seen == [("fine", 2)]  # the coarse stage is skipped, the fine one resumes after its checkpoint at 2 steps
    assert (run / "coarse" / "final.obj").stat().st_mtime_ns == coarse_obj
    assert [r["step"] for r in read_jsonl(run / "fine" / "metrics.jsonl")] == [0, 1, 2] and out.final_obj.is_file()
    with pytest.raises(FileExistsError):  # without resume, a finished run is not overwritten
        run_generation(cfg, run, show_progress=False)


def test_bad_stage_reference_and_geometry_are_named() -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dreamfusion-embedded"), ["prompt=a vase"])
    cfg.validate()
    cfg.geometry.name = "voxels"
    with pytest.raises(ValueError, match="geometry.name"):
        cfg.validate()
    cfg = load_config(GenerateConfig, resolve_config_path("magic3d-embedded"),
                      ["prompt=a vase", "stages.coarse=[geometry.init=stage:fine]"])
    with pytest.raises(ValueError, match="earlier stage"):
        stage_config(cfg, "coarse", __import__("pathlib").Path("/tmp/x"))
    with pytest.raises(ValueError, match="latent"):
        load_config(GenerateConfig, resolve_config_path("dreamfusion-sd"),
                    ["prompt=a vase", "render.latent_steps=2"]).validate()


def test_fine_stage_from_an_empty_coarse_field_says_why(weights, tmp_path) -> None:
    cfg = recipe("magic3d-embedded", weights, False, "stages.coarse=[steps=1]", "nerf.iso_threshold=50")
    with pytest.raises(ValueError, match="no surface at nerf.iso_threshold=50"):
        run_generation(cfg, tmp_path / "run", show_progress=False)


def test_cli_runs_both_magic3d_stages_and_resumes(weights, tmp_path) -> None:
    from typer.testing import CliRunner

    from dreamcs.cli import app

    run = tmp_path / "cli"
    args = ["generate", "a vase", "--config", "magic3d-embedded", "--out", str(run), "-q",
            *[a for a in TINY if not a.startswith("steps=")], f"guidance.pretrained={weights['prior']}",
            "stages.coarse=[steps=2]", "stages.fine=[geometry.name=dmtet,geometry.init=stage:coarse,steps=2]"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert all((run / s / "final.obj").is_file() for s in ("coarse", "fine")) and (run / "config.yaml").is_file()
    # --resume without --config reads RUN/config.yaml: both stages are finished, nothing reruns
    before = (run / "fine" / "final.obj").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["generate", "a vase", "--out", str(run), "--resume", "-q"])
    assert again.exit_code == 0, again.output
    assert (run / "fine" / "final.obj").stat().st_mtime_ns == before


def test_volume_run_resumes_exactly(weights, tmp_path) -> None:
    """Field, optimizer, RNG and the occupancy grid come back from the checkpoint: the same losses."""
    extra = ("steps=5", "save_every=2", "nerf.occupancy_update_every=2")
    whole = run_generation(recipe("dreamfusion-embedded", weights, False, *extra), tmp_path / "a", show_progress=False)

    def kill(stage: str, step: int, rec: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    cfg = recipe("dreamfusion-embedded", weights, False, *extra)
    with pytest.raises(KeyboardInterrupt):
        run_generation(cfg, tmp_path / "b", show_progress=False, callback=kill)
    resumed = run_generation(cfg, tmp_path / "b", resume=True, show_progress=False)
    assert [r["step"] for r in resumed.metrics] == list(range(5))
    for a, b in zip(whole.metrics, resumed.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["occupied"] == b["occupied"]


@pytest.mark.parametrize("name", ["dreamfusion-embedded", "magic3d-embedded", "dreamfusion-sd", "magic3d-sd"])
def test_shipped_stage_configs_validate(name, tmp_path) -> None:
    """The shipped stage overrides parse and each stage validates (the runs above replace them)."""
    cfg = load_config(GenerateConfig, resolve_config_path(name), ["prompt=a vase"])
    cfg.validate()
    for stage in cfg.stages:
        c = stage_config(cfg, stage, tmp_path)
        c.validate()
        assert not c.stages
    if name == "magic3d-sd":
        fine = stage_config(cfg, "fine", tmp_path)
        assert (fine.geometry.name, fine.geometry.init, fine.render.resolution) == ("dmtet", str(tmp_path / "coarse"), 512)
        assert fine.steps == 5000 and fine.render.distance_range == [2.0, 2.6] and fine.guidance.max_step_percent == 0.5


def test_magic3d_sd_fine_stage_starts_from_the_coarse_albedo(weights, tmp_path) -> None:
    """magic3d-sd's stages share encoding and MLP: the DMTet's colours are the coarse NeRF's, copied."""
    from dreamcs.generate.geometry import build_geometry, load_volume_run

    cfg = recipe("magic3d-sd", weights, False, "stages.coarse=[steps=2]",
                 "stages.fine=[geometry.name=dmtet,geometry.init=stage:coarse,geometry.parameterization=explicit,steps=1]")
    run = tmp_path / "run"
    run_generation(cfg, run, show_progress=False)
    coarse = load_volume_run(run / "coarse")
    fine = build_geometry(stage_config(cfg, "fine", run))
    assert coarse.has_albedo and fine.has_albedo
    with torch.no_grad():
        verts, faces = fine()
        pts = torch.cat([verts, torch.rand(512, 3) * 2 - 1])
        assert faces.shape[0] > 50 and torch.allclose(fine.albedo(pts), coarse.albedo(pts), atol=1e-6)
