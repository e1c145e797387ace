"""The reward settings of a generation run, through the pipeline: ``reward.every``, the field
path's coarse lattice (``reward.grid``), resume with a carried layout, the gradient log and
``reward.relative``, and the settings that only the field path reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import tiny_config, tiny_reward_dir  # noqa: F401 (fixture; tests/generate is on sys.path)

from dreamcs.generate.pipeline import GeneratePipeline


def test_sublattice_gradient_reaches_the_field(tiny_reward_dir, tmp_path):  # noqa: F811
    cfg = tiny_config(f"reward.checkpoint={tiny_reward_dir}", "reward.alpha=1.0", "loss.lambda_sds=0",
                      "loss.lambda_normal_consistency=0", "loss.lambda_sdf=0", "geometry.grid_resolution=12",
                      "render.batch_size=1", "reward.n_patches=8", "reward.grid=6", "reward.path=field")
    pipe = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)
    pipe.prepare()
    pipe.optimizer.step = lambda: None
    rec = pipe.train_step(0)
    assert rec["reward"] is not None and np.isfinite(rec["reward"])
    grads = [p.grad for p in pipe.field.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_every_k_scores_every_kth_step_with_k_alpha(tiny_reward_dir, tmp_path):  # noqa: F811
    cfg = tiny_config(f"reward.checkpoint={tiny_reward_dir}", "reward.alpha=0.5", "reward.every=3", "steps=4")
    out = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)()
    for r in out.metrics:
        if r["step"] % 3 == 0:
            assert r["alpha"] == pytest.approx(1.5) and r["loss_reward"] == pytest.approx(-1.5 * r["reward"])
        else:
            assert r["reward"] is None


@pytest.mark.parametrize("path", ["field", "surface"])
def test_resume_with_the_reward_equals_an_uninterrupted_run(path, tiny_reward_dir, tmp_path):  # noqa: F811
    """A run guided on either path, killed after a checkpoint and resumed, scores and ends exactly as
    one that ran through: the surface path (the default) fuses afresh on every scored step and holds
    no state; the field path's carried layout is history, and the pipeline fuses afresh on checkpoint
    steps."""
    from dreamcs.utils import read_jsonl

    cfg = tiny_config(f"reward.checkpoint={tiny_reward_dir}", "steps=9", "save_every=4", "reward.max_change=1.0",
                      "reward.alpha=1.0", f"reward.path={path}")
    ref = GeneratePipeline(cfg, tmp_path / "ref", show_progress=False)()
    assert all(r["reward"] is not None for r in ref.metrics)
    if path == "field":
        assert any(r["reward_fused"] is False for r in ref.metrics)  # the layout was carried somewhere

    def kill(step, rec):
        if step == 6:  # the checkpoint after step 3 (4 done) survives; steps 4-6 are lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GeneratePipeline(cfg, tmp_path / "run", show_progress=False)(callback=kill)
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 7
    out = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)(resume=True)
    for a, b in zip(ref.metrics, out.metrics, strict=True):
        assert a["reward"] == b["reward"] and a["loss"] == b["loss"], a["step"]
    assert (tmp_path / "run" / "final.obj").read_bytes() == (tmp_path / "ref" / "final.obj").read_bytes()


@pytest.mark.parametrize("path", ["field", "surface"])
def test_gradient_log_compares_sds_and_reward_on_the_sdf(path, tiny_reward_dir, tmp_path):  # noqa: F811
    """With ``reward.log_gradients`` a scored step logs both gradients on the grid SDF, on either path,
    and logging leaves the step unchanged; with alpha 0 (no reward gradient) it logs nothing."""
    common = ("render.batch_size=1", "geometry.grid_resolution=12", "reward.n_patches=8", "reward.alpha=1.0",
              f"reward.path={path}")

    def step(*more: str):
        pipe = GeneratePipeline(tiny_config(*common, f"reward.checkpoint={tiny_reward_dir}", *more),
                                tmp_path / "_".join(("r", *more)), show_progress=False)
        pipe.prepare()
        pipe.optimizer.step = lambda: None
        return pipe, pipe.train_step(0)

    pipe, rec = step("reward.log_gradients=true")
    assert rec["grad_sds_sdf"] > 0 and rec["grad_reward_sdf"] > 0 and -1 <= rec["grad_cos_sdf"] <= 1
    plain, rec_plain = step()
    assert "grad_cos_sdf" not in rec_plain and rec_plain["loss"] == pytest.approx(rec["loss"], rel=1e-6)
    for p, q in zip(pipe.field.parameters(), plain.field.parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad)
    _, rec_sds = step("reward.log_gradients=true", "reward.alpha=0.0")  # scored, but no reward gradient
    assert "grad_sds_sdf" not in rec_sds and rec_sds["reward"] is not None
    # what each figure measures: SDS weighted 0 -> no SDS gradient; alpha doubled -> the reward's doubles
    _, rec0 = step("reward.log_gradients=true", "loss.lambda_sds=0")
    assert rec0["grad_sds_sdf"] == 0 and np.isnan(rec0["grad_cos_sdf"])
    _, rec2 = step("reward.log_gradients=true", "reward.alpha=2.0")
    assert rec2["grad_reward_sdf"] == pytest.approx(2 * rec["grad_reward_sdf"], rel=1e-4)
    assert rec2["grad_sds_sdf"] == pytest.approx(rec["grad_sds_sdf"], rel=1e-4)


@pytest.mark.parametrize("path", ["field", "surface"])
def test_relative_alpha_sets_the_reward_gradient_to_a_share_of_the_sds_gradient(path, tiny_reward_dir, tmp_path):  # noqa: F811
    """``reward.relative``: the reward's gradient on the SDF is rescaled to alpha x the SDS one
    (the logged norms show it), whatever r's own scale, on either path; a geometry without a grid
    SDF refuses it."""
    common = ("render.batch_size=1", "geometry.grid_resolution=12", "reward.n_patches=8",
              f"reward.checkpoint={tiny_reward_dir}", "reward.log_gradients=true", "reward.relative=true",
              f"reward.path={path}")
    weights = []
    for alpha in (0.1, 0.5):
        pipe = GeneratePipeline(tiny_config(*common, f"reward.alpha={alpha}"), tmp_path / f"a{alpha}",
                                show_progress=False)
        pipe.prepare()
        rec = pipe.train_step(0)
        assert rec["grad_reward_sdf"] == pytest.approx(alpha * rec["grad_sds_sdf"], rel=1e-5)
        assert rec["reward_weight"] > 0 and rec["loss_reward"] == pytest.approx(-rec["reward_weight"] * rec["reward"])
        weights.append(rec["reward_weight"])
    assert weights[1] == pytest.approx(5 * weights[0], rel=1e-5)
    with pytest.raises(ValueError, match="reward.relative needs a dmtet geometry"):
        tiny_config(*common, "geometry.name=nerf").validate()


def test_the_coarse_reward_lattice_is_refused_on_the_surface_path():
    """``reward.grid`` coarsens the field path's carried layout; the surface path (the default) reads
    the extracted mesh, so there it is an error, not silently ignored."""
    cfg = tiny_config("geometry.grid_resolution=12", "reward.grid=6")
    assert cfg.reward.path == "surface"
    with pytest.raises(ValueError, match="reward.grid needs the field path"):
        cfg.validate()
    tiny_config("geometry.grid_resolution=12", "reward.grid=6", "reward.path=field").validate()
