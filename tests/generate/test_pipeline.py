"""The generation pipeline end to end on dmtet-tiny: outputs, reward guidance and its gradient,
exact resume, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from dreamcs.config import load_config
from dreamcs.generate.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from dreamcs.generate.config import GenerateConfig, resolve_config_path
from dreamcs.generate.pipeline import GeneratePipeline, RewardBranch
from dreamcs.utils import read_jsonl

OUTPUTS = ["config.yaml", "metrics.jsonl", "final.obj", "final.glb", "turntable.png"]


def tiny_config(*overrides: str) -> GenerateConfig:
    return load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), ["prompt=a wooden chair", *overrides])


@pytest.fixture(scope="module")
def tiny_reward_dir(tmp_path_factory):
    """A randomly initialised tiny RewardCS (hash text encoder: no MiniLM load), saved to disk."""
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(0)
    model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32"))
    return model.save_pretrained(tmp_path_factory.mktemp("reward") / "model")


SMOKE = ["steps=2", "save_every=1", "mesh_every=1", "geometry.grid_resolution=8", "render.batch_size=1",
         "render.resolution=32", "render.turntable_views=2", "render.turntable_resolution=32", "device=cpu"]


@pytest.mark.parametrize("name", ["dmtet-tiny", "dmtet-embedded", "dmtet-sd"])
def test_every_shipped_config_runs_two_cpu_steps(name, tmp_path):
    """Each preset's own guidance backend, on tiny stand-ins for the weights it names."""
    from test_guidance import build_tiny_sd

    from dreamcs.generate.guidance import save_prior
    from dreamcs.generate.guidance.pixel import tiny_unet

    extra = []
    if name == "dmtet-embedded":
        from diffusers import DDPMScheduler

        torch.manual_seed(0)
        save_prior(tmp_path / "prior", tiny_unet(1, 32, [8, 16], 16), DDPMScheduler(), text_encoder="hash:16")
        extra = [f"guidance.pretrained={tmp_path / 'prior'}"]
    elif name == "dmtet-sd":
        extra = [f"guidance.pretrained={build_tiny_sd(tmp_path / 'sd')}", "guidance.image_size=32"]
    cfg = load_config(GenerateConfig, resolve_config_path(name), ["prompt=a chair", *SMOKE, *extra])
    out = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)()
    assert len(out.metrics) == 2 and all(np.isfinite(r["loss"]) for r in out.metrics)
    assert all((tmp_path / "run" / n).is_file() for n in OUTPUTS)


def test_shipped_configs_load_and_validate():
    for name in ("dmtet-tiny", "dmtet-embedded", "dmtet-sd"):
        cfg = load_config(GenerateConfig, resolve_config_path(name), ["prompt=a cat"])
        cfg.validate()
    assert cfg.guidance.name == "stable-diffusion" and cfg.render.resolution == [0, 64, 256, 2000]
    with pytest.raises(FileNotFoundError, match="dmtet-tiny"):
        resolve_config_path("no-such-preset")
    with pytest.raises(ValueError, match="prompt"):
        load_config(GenerateConfig, resolve_config_path("dmtet-tiny")).validate()
    with pytest.raises(ValueError, match="reward.alpha"):
        tiny_config("reward.alpha=[1,2]").validate()


def test_checkpoint_round_trip_restores_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.1)

    def train(model, optim, n):
        for _ in range(n):
            optim.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            optim.step()

    train(m, opt, 3)
    save_checkpoint(tmp_path, 3, {"field": m}, opt)
    after = (torch.rand(3), np.random.rand(2))
    train(m, opt, 2)
    m2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    step, _ = load_checkpoint(list_checkpoints(tmp_path)[-1], {"field": m2}, opt2)
    again = (torch.rand(3), np.random.rand(2))
    train(m2, opt2, 2)
    assert step == 3 and torch.equal(after[0], again[0]) and np.array_equal(after[1], again[1])
    assert torch.equal(m.weight, m2.weight) and opt2.param_groups[0]["lr"] == 0.1
    (tmp_path / "step_000009.safetensors").write_bytes(b"torn")
    with pytest.raises(ValueError, match="step_000009"):
        load_checkpoint(tmp_path / "step_000009.safetensors", {"field": m2}, opt2)


def _check_run(run_dir, cfg, metrics):
    for name in OUTPUTS:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    meshes = sorted(p.name for p in (run_dir / "meshes").glob("step_*.obj"))
    assert meshes == [f"step_{s:06d}.obj" for s in range(0, cfg.steps, cfg.mesh_every)]
    assert list_checkpoints(run_dir / "checkpoints")[-1].name == f"step_{cfg.steps:06d}.safetensors"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["prompt"] == cfg.prompt and saved["steps"] == cfg.steps
    assert [r["step"] for r in metrics] == list(range(cfg.steps))
    for r in metrics:
        assert np.isfinite(r["loss"]) and np.isfinite(r["loss_sds"]) and r["n_faces"] > 0
        assert all(r[f"time_{k}"] >= 0 for k in ("render", "guidance", "reward", "other"))
    import trimesh

    mesh = trimesh.load(run_dir / "final.obj", process=False)
    assert len(mesh.faces) > 0 and np.isfinite(mesh.vertices).all()


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    cfg = tiny_config()
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    out = GeneratePipeline(cfg, run_dir, show_progress=False)()
    return cfg, run_dir, out


@pytest.mark.slow
def test_tiny_run_writes_every_output(plain_run):
    cfg, run_dir, out = plain_run
    _check_run(run_dir, cfg, out.metrics)
    assert all(r["reward"] is None for r in out.metrics)
    # the field moved: the final mesh differs from the initial sphere
    first = (run_dir / "meshes" / "step_000000.obj").read_bytes()
    assert first != (run_dir / "final.obj").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        GeneratePipeline(cfg, run_dir, show_progress=False)()


@pytest.mark.slow
def test_tiny_run_with_reward_guidance(tmp_path, tiny_reward_dir):
    # fusion in a worker thread: the same numbers as in place (checked on the first steps below)
    cfg = tiny_config(f"reward.checkpoint={tiny_reward_dir}", "reward.overlap_fusion=true")
    out = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)()
    _check_run(tmp_path / "run", cfg, out.metrics)
    for r in out.metrics:
        if r["step"] % cfg.reward.every == 0:
            assert np.isfinite(r["reward"]) and r["loss_reward"] == pytest.approx(-r["alpha"] * r["reward"])
        else:
            assert r["reward"] is None
    alphas = [r["alpha"] for r in out.metrics]
    assert alphas[0] == pytest.approx(0.1) and alphas == sorted(alphas) and alphas[-1] > alphas[0]
    serial = GeneratePipeline(tiny_config(f"reward.checkpoint={tiny_reward_dir}", "steps=3"), tmp_path / "serial",
                              show_progress=False)()
    for a, b in zip(out.metrics[:3], serial.metrics, strict=True):
        assert a["reward"] == b["reward"] and a["loss"] == b["loss"]


@pytest.mark.slow
def test_resume_after_a_kill_equals_an_uninterrupted_run(plain_run, tmp_path):
    cfg, ref_dir, ref = plain_run
    run_dir = tmp_path / "run"

    def kill(step, rec):
        if step == 13:  # checkpoints were written after steps 10; step 11-13 are lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GeneratePipeline(cfg, run_dir, show_progress=False)(callback=kill)
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 14
    with pytest.raises(ValueError, match="lr"):
        GeneratePipeline(tiny_config("lr=0.5"), run_dir, show_progress=False)(resume=True)
    out = GeneratePipeline(cfg, run_dir, show_progress=False)(resume=True)
    assert [r["step"] for r in out.metrics] == list(range(cfg.steps))
    # steps 0-9 come from the killed run (a fresh run with the same seed: repeatability),
    # steps 10-19 from the resumed one (exact resume)
    for a, b in zip(ref.metrics, out.metrics, strict=False):
        assert a["loss"] == b["loss"] and a["loss_sds"] == b["loss_sds"], a["step"]
    assert (run_dir / "final.obj").read_bytes() == (ref_dir / "final.obj").read_bytes()


def test_reward_gradient_reaches_the_field(tiny_reward_dir):
    """d r / d theta through marching tets -> fuse -> RewardCS: non-zero, finite, = finite differences."""
    from dreamcs.generate import dmtet
    from dreamcs.generate.outputs import to_trimesh
    from dreamcs.generate.pipeline import normalize_vertices
    from dreamcs.mesh import fuse
    from dreamcs.reward import RewardCS

    torch.manual_seed(0)
    cfg = tiny_config("geometry.grid_resolution=8")
    field = dmtet.build_field(cfg.geometry, device="cpu")
    branch = RewardBranch(RewardCS.from_pretrained(tiny_reward_dir), cfg.prompt, n_patches=8)
    verts, faces = field()
    pm = fuse(to_trimesh(verts, faces), n_patches=8, faces_per_patch=branch.faces_per_patch)

    def reward_of_field() -> torch.Tensor:
        v, f = field()
        assert torch.equal(f, faces)  # the perturbation must not change the topology
        return branch.model.reward_from_vertices(normalize_vertices(pm.vertices_from(v)), pm.faces, cfg.prompt)

    names, params = zip(*[(n, p) for n, p in field.named_parameters() if p.requires_grad], strict=False)
    r = reward_of_field()
    v0, f0 = field()
    assert float(branch(v0, f0).detach()) == pytest.approx(float(r.detach()), abs=1e-6)  # the pipeline's branch: same value
    grads = torch.autograd.grad(r, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=False)]
    flat = torch.cat([g.flatten() for g in grads])
    assert torch.isfinite(flat).all() and flat.abs().sum() > 0
    assert any(n == "sdf" and g.abs().sum() > 0 for n, g in zip(names, grads, strict=False))
    assert any(n == "deform" and g.abs().sum() > 0 for n, g in zip(names, grads, strict=False))
    # central differences along the gradient, leaving out SDF values a step could flip in sign
    # (that would change the topology, where the mesh is not differentiable)
    eps = 1e-2
    keep = [(p.detach().abs() > 2 * eps) if n == "sdf" else torch.ones_like(p, dtype=torch.bool)
            for n, p in zip(names, params, strict=False)]
    grads = [g * k for g, k in zip(grads, keep, strict=False)]
    flat = torch.cat([g.flatten() for g in grads])
    direction = [g / flat.norm() for g in grads]
    with torch.no_grad():
        for p, d in zip(params, direction, strict=False):
            p.add_(eps * d)
        r_plus = float(reward_of_field())
        for p, d in zip(params, direction, strict=False):
            p.sub_(2 * eps * d)
        r_minus = float(reward_of_field())
        for p, d in zip(params, direction, strict=False):
            p.add_(eps * d)
    fd = (r_plus - r_minus) / (2 * eps)
    analytic = float(flat.norm())
    assert fd == pytest.approx(analytic, rel=0.05), (fd, analytic)


def test_step_gradient_is_minus_alpha_grad_r(tiny_reward_dir, tmp_path):
    """The split per-branch backward of ``train_step`` gives the field exactly -alpha * d r / d theta
    when SDS and the regularisers are weighted 0 (the sign and the plumbing of reward guidance)."""
    cfg = tiny_config(f"reward.checkpoint={tiny_reward_dir}", "reward.alpha=0.7", "loss.lambda_sds=0",
                      "loss.lambda_normal_consistency=0", "loss.lambda_sdf=0", "geometry.grid_resolution=8",
                      "render.batch_size=1", "reward.n_patches=8", "reward.path=surface")
    pipe = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)
    pipe.prepare()
    pipe.optimizer.step = lambda: None  # keep the gradients, leave the field as it is
    rec = pipe.train_step(0)
    assert rec["alpha"] == pytest.approx(0.7) and rec["reward"] is not None
    got = {n: p.grad.clone() for n, p in pipe.field.named_parameters()}
    pipe.optimizer.zero_grad()
    verts, faces = pipe.field()
    (-0.7 * pipe.reward(verts, faces)).backward()
    for n, p in pipe.field.named_parameters():
        assert p.grad.abs().sum() > 0 and torch.allclose(got[n], p.grad, rtol=1e-4, atol=1e-9), n


def test_cli_generate(tmp_path):
    from typer.testing import CliRunner

    from dreamcs.cli import app

    run = tmp_path / "cli"
    args = ["generate", "a small table", "--config", "dmtet-tiny", "--out", str(run), "--quiet",
            "steps=3", "save_every=2", "mesh_every=2", "geometry.grid_resolution=8"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert all((run / n).is_file() for n in OUTPUTS)
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    # resume from the saved config and extend the run by two steps
    more = CliRunner().invoke(app, ["generate", "a small table", "--out", str(run), "--resume", "-q", "steps=5"])
    assert more.exit_code == 0, more.output
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    other = CliRunner().invoke(app, ["generate", "a chair", "--out", str(run), "--resume", "-q"])
    assert other.exit_code == 2 and "prompt" in other.output
    bad = CliRunner().invoke(app, ["generate", "x", "--config", "nope", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "no such config" in bad.output


def test_a_step_on_an_erased_surface_revives_it(tmp_path):
    """An empty surface renders nothing, so SDS gives no gradient: the step's revive loss must."""
    pipe = GeneratePipeline(tiny_config("steps=1", "geometry.parameterization=explicit"), tmp_path / "run",
                            show_progress=False)
    pipe.prepare()
    with torch.no_grad():
        pipe.field.sdf.fill_(0.05)
    for step in range(100):
        rec = pipe.train_step(step)
        if rec["n_faces"] > 0:
            break
        assert rec["loss_revive"] > 0
    assert rec["n_faces"] > 0 and step > 0


def test_an_empty_final_mesh_reads_back_as_a_clear_error(tmp_path):
    from dreamcs.generate.outputs import write_mesh
    from dreamcs.mesh import MeshError, load_mesh

    p = write_mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), tmp_path / "final.obj")
    with pytest.raises(MeshError, match="final.obj: no faces"):
        load_mesh(p)


@pytest.mark.parametrize("path", ["field", "surface"])
def test_a_floater_lowers_the_step_reward_with_exact_figures(tmp_path, path):
    """A reward that reads floaters off the surface (exact_figures) scores a body with a floater lower
    than the same model reading its figure head, on both reward paths; the term pushes the floater."""
    from dreamcs.generate.dmtet import sphere_sdf
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(0)
    model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32", teacher_figures=12, figure_weight=0.5))
    with torch.no_grad():  # a figure head that reads no penalty: only the exact figure can lower the score
        model.figure_head[-1].weight.zero_()
        model.figure_head[-1].bias.fill_(-50.0)
    rewards, grads, logs = {}, {}, {}
    for exact in ([], ["parts_far_small"]):
        model.config.exact_figures = exact
        d = model.save_pretrained(tmp_path / f"m{len(exact)}")
        cfg = tiny_config(f"reward.checkpoint={d}", f"reward.path={path}", "geometry.grid_resolution=16",
                          "reward.alpha=1.0", "steps=1", f"reward.log_gradients={path == 'field'}")
        pipe = GeneratePipeline(cfg, tmp_path / f"run{len(exact)}", show_progress=False)
        pipe.prepare()
        with torch.no_grad():  # a ball and a small ball away from it
            p = pipe.field.base_vertices
            far = torch.tensor([0.75, 0.75, 0.0], device=p.device)
            pipe.field.sdf.copy_(torch.minimum(sphere_sdf(p, 0.55), sphere_sdf(p - far, 0.17)))  # 7.6% of the area
        rec = pipe.train_step(0)
        rewards[len(exact)] = rec["reward"]
        grads[len(exact)] = pipe.field.sdf.grad.clone()
        logs[len(exact)] = rec
        near = (p - far).norm(dim=-1) < 0.35
        if exact:
            # the exact term's own gradient: it lifts the floater's SDF (a descent step shrinks it) and
            # acts there more than anywhere else
            diff = grads[1] - grads[0]
            assert float(diff[near].sum()) < 0
            assert float(diff[near].abs().mean()) > 3 * float(diff[~near].abs().mean())
            if path == "field":  # the logged SDS gradient stays SDS's own; the reward's takes the floater term in
                assert logs[1]["grad_sds_sdf"] == logs[0]["grad_sds_sdf"]
                assert logs[1]["grad_reward_sdf"] != logs[0]["grad_reward_sdf"]  # the floater's share is past the ramp's top: realism 5 -> ln 2 / 2, the reward a quarter of that lower
            assert rewards[0] - rewards[1] == pytest.approx(0.25 * (5.0 - math.log(2) / 2), abs=0.02)
