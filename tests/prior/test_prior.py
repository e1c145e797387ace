"""The offline prior: rendered views, a tiny training run end to end (outputs, loading by the
``embedded`` guidance, SDS), resume = uninterrupted, and DDIM sampling."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamcs.prior.data import ViewDataConfig, article, build_view_dataset, category_of, draw_captions
from dreamcs.prior.train import PriorTrainConfig, PriorTrainer


def _data_cfg(**kw) -> ViewDataConfig:
    return ViewDataConfig(**{"limit": 3, "n_views": 4, "image_size": 16, "supersample": 2, **kw})


def _train_cfg(cache: Path, **kw) -> PriorTrainConfig:
    base = dict(data=_data_cfg(), text_encoder="hash:32", block_out_channels=[8, 16], steps=4, batch_size=4,
                save_every=2, log_every=1, warmup_steps=2, cache_dir=str(cache), card_prompts=["a chair", "a sphere"],
                card_samples=2, card_steps=3)
    return PriorTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("views")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache) -> tuple[Path, PriorTrainConfig]:
    out = tmp_path_factory.mktemp("prior") / "run"
    cfg = _train_cfg(cache)
    result = PriorTrainer(cfg, out, show_progress=False).run()
    assert result.step == 4 and not result.stopped_early
    return out, cfg


def test_category_of_takes_the_head_noun():
    assert category_of("a round bar table") == "table"
    assert category_of("a designer chair with a sloped back") == "chair"
    assert category_of("a flight of six stairs") == "staircase"
    with pytest.raises(ValueError):
        category_of("  ")


def test_views_show_objects_on_black_and_are_cached(cache):
    cfg = _data_cfg()
    data = build_view_dataset(cfg, cache)
    assert data.images.shape == (12, 16, 16) and data.images.dtype == np.float32
    assert data.mesh_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(data.ids) == len(data.captions) == len(data.categories) == 3
    assert 0.0 <= data.images.min() and data.images.max() <= 0.81  # albedo 0.8 lit head-on
    # every view shows its object (a fair share of lit pixels) on a black border
    lit = (data.images > 0.05).mean(axis=(1, 2))
    assert (lit > 0.03).all() and (lit < 0.95).all()
    border = np.concatenate([data.images[:, 0], data.images[:, -1], data.images[:, :, 0], data.images[:, :, -1]], 1)
    assert np.median(border) == 0.0
    assert ((-10 <= data.elevation) & (data.elevation <= 40)).all()
    # views differ between cameras, and a second call reads the same arrays from the cache
    assert np.abs(data.images[0] - data.images[1]).max() > 0.05
    [npz] = cache.glob("views-*.npz")
    stamp = npz.stat().st_mtime_ns
    again = build_view_dataset(cfg, cache)
    assert npz.stat().st_mtime_ns == stamp  # read back, not rendered and written again
    assert np.array_equal(again.images, data.images) and np.array_equal(again.azimuth, data.azimuth)
    # other settings get another cache file
    build_view_dataset(replace(cfg, n_views=2), cache)
    assert len(list(cache.glob("views-*.npz"))) == 2


def test_bad_mesh_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="captions.csv"):
        build_view_dataset(ViewDataConfig(meshes=str(tmp_path)), tmp_path)
    (tmp_path / "captions.csv").write_text("chair,a chair\n")
    with pytest.raises(FileNotFoundError, match="chair.obj"):
        build_view_dataset(ViewDataConfig(meshes=str(tmp_path)), tmp_path)


def test_caption_mix(cache):
    from dreamcs.render import VIEW_NAMES

    data = build_view_dataset(_data_cfg(), cache)
    g = torch.Generator().manual_seed(0)
    caps = draw_captions(data, torch.zeros(4000, dtype=torch.long), g, p_blank=0.1, p_category=0.25)
    share = {c: caps.count(c) / len(caps) for c in set(caps)}
    assert set(share) == {"", article(data.categories[0]), data.captions[0]}
    assert article("armchair") == "an armchair" and article("chair") == "a chair"
    assert share[""] == pytest.approx(0.1, abs=0.02) and share[data.captions[0]] == pytest.approx(0.65, abs=0.03)
    # with p_view, the view's suffix exactly as SDS composes it, taken from that view's camera
    for i in range(len(data)):
        caps = draw_captions(data, torch.full((400,), i, dtype=torch.long), g, p_blank=0.1, p_view=0.5)
        suffix = f", {VIEW_NAMES[int(data.view[i])]} view"
        with_view = [c for c in caps if c.endswith(" view")]
        assert all(c.endswith(suffix) for c in with_view)
        assert len(with_view) / 400 == pytest.approx(0.45, abs=0.08)


def test_training_writes_a_prior_that_guidance_loads(trained):
    from dreamcs.generate.guidance import GuidanceConfig, build_guidance

    out, cfg = trained
    for name in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json",
                 "prior.yaml", "MODEL_CARD.md", "loss.png", "samples.png", "views.png", "config.yaml",
                 "metrics.jsonl"):
        assert (out / name).is_file(), name
    assert [p.name for p in sorted((out / "checkpoints").glob("*.safetensors"))] == [
        "step_0000002.safetensors", "step_0000004.safetensors"]
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4] and all(np.isfinite(m["loss"]) for m in metrics)
    card = (out / "MODEL_CARD.md").read_text()
    assert "4 steps of batch 4" in card and "samples.png" in card
    assert not list(out.glob(".prior-staging*"))

    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(out), guidance_scale=4.0))
    assert (g.channels, g.image_size) == (1, 16) and g.text_kind == "hash:32"
    img = torch.rand(2, 32, 32, 3, requires_grad=True)
    torch.manual_seed(0)
    res = g.sds_loss(img, g.encode_prompts("a chair", [None, None]), step=0)
    res["loss_sds"].backward()
    assert torch.isfinite(res["loss_sds"]) and img.grad.abs().sum() > 0

    # the shipped weights are the EMA, not the raw model of the last checkpoint
    from safetensors.torch import load_file

    ckpt = load_file(str(out / "checkpoints" / "step_0000004.safetensors"))
    shipped = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    key = "conv_in.weight"
    assert torch.equal(shipped[key], ckpt[f"ema.{key}"]) and not torch.equal(shipped[key], ckpt[f"model.{key}"])


def test_text_embeddings_match_the_guidance(trained):
    from dreamcs.generate.guidance import GuidanceConfig, build_guidance
    from dreamcs.prior.train import encode_texts

    out, cfg = trained
    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(out)))
    text = g.encode_prompts(["a chair"])
    tokens, mask = encode_texts(cfg.text_encoder, ["a chair", ""], cfg.max_tokens)
    assert torch.equal(text.cond[0], tokens[0]) and torch.equal(text.cond_mask[0], mask[0])
    assert torch.equal(text.uncond[0], tokens[1]) and torch.equal(text.uncond_mask[0], mask[1])


def test_resume_equals_uninterrupted(trained, tmp_path):
    import shutil

    from safetensors.torch import load_file

    out, cfg = trained
    # a run killed after logging step 3: checkpoints up to step 2, metrics up to step 3, no prior yet
    part = tmp_path / "part"
    shutil.copytree(out, part)
    (part / "checkpoints" / "step_0000004.safetensors").unlink()
    for name in ("unet", "scheduler"):
        shutil.rmtree(part / name)
    lines = (part / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    cfg = replace(cfg, card=False)  # the card is tested above; here only the weights matter
    with pytest.raises(FileExistsError):
        PriorTrainer(cfg, part, show_progress=False).run()
    result = PriorTrainer(cfg, part, show_progress=False).run(resume=True)
    assert result.step == 4
    a = load_file(str(out / "checkpoints" / "step_0000004.safetensors"))
    b = load_file(str(part / "checkpoints" / "step_0000004.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # step 3 logged again after the checkpoint, not twice
    assert torch.equal(load_file(str(part / "unet" / "diffusion_pytorch_model.safetensors"))["conv_in.weight"],
                       a["ema.conv_in.weight"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        PriorTrainer(cfg, tmp_path / "empty", show_progress=False).run(resume=True)
    assert not (tmp_path / "empty").exists()


def test_cooldown_anneals_a_resumed_constant_rate_run(trained, tmp_path):
    import shutil

    out, cfg = trained
    run = tmp_path / "cool"
    shutil.copytree(out, run)
    cool = replace(cfg, steps=8, cooldown_steps=4, cooldown_floor=0.1, card=False)
    assert PriorTrainer(cool, run, show_progress=False).run(resume=True).step == 8
    lr = {r["step"]: r["lr"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert lr[3] == lr[4] == pytest.approx(cfg.lr)  # the constant part is untouched
    assert [lr[k] / cfg.lr for k in (5, 6, 7, 8)] == pytest.approx([0.775, 0.55, 0.325, 0.1])
    with pytest.raises(ValueError, match="cooldown"):
        replace(cfg, cooldown_floor=1.5).validate()


def test_sampling_returns_images_in_range(trained):
    from dreamcs.prior.sample import sample_prior, save_grid

    out, _ = trained
    images = sample_prior(out, ["a chair", "a sphere", "a box"], n=2, steps=3, seed=1)
    assert images.shape == (3, 2, 1, 16, 16)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0
    again = sample_prior(out, ["a chair", "a sphere", "a box"], n=2, steps=3, seed=1)
    assert torch.equal(images, again)
    png = save_grid(images, ["a chair", "a sphere", "a box"], out / "extra.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _flat(text: str) -> str:
    """Rich wraps long messages: compare without the line breaks."""
    return " ".join(text.split())


def test_cli_sample_and_train_errors(trained, tmp_path):
    from typer.testing import CliRunner

    from dreamcs.cli import app

    out, _ = trained
    png = tmp_path / "grid.png"
    res = CliRunner().invoke(app, ["prior", "sample", "a chair", "a bed", "--prior", str(out), "--n", "1",
                                   "--steps", "2", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    # an existing run without --resume, and a bad override, fail with a message and exit code 2
    res = CliRunner().invoke(app, ["prior", "train", "--out", str(out), "--steps", "1"])
    assert res.exit_code == 2 and "--resume" in _flat(res.output)
    res = CliRunner().invoke(app, ["prior", "train", "--out", str(tmp_path / "x"), "no_such_key=1"])
    assert res.exit_code == 2 and "no_such_key" in _flat(res.output)
    # export copies what ships, without checkpoints, and the copy loads as a prior
    res = CliRunner().invoke(app, ["prior", "export", str(out), "--to", str(tmp_path / "ship")])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "ship").iterdir()} == {
        "unet", "scheduler", "prior.yaml", "MODEL_CARD.md", "loss.png", "samples.png", "views.png", "config.yaml"}
    from dreamcs.prior.sample import sample_prior

    assert sample_prior(tmp_path / "ship", ["a chair"], n=1, steps=2).shape == (1, 1, 1, 16, 16)
    # the training machine's view cache does not ship
    assert "cache_dir:" in (out / "config.yaml").read_text() and "cache_dir: null" not in (out / "config.yaml").read_text()
    assert "cache_dir: null" in (tmp_path / "ship" / "config.yaml").read_text()
    res = CliRunner().invoke(app, ["prior", "export", str(tmp_path / "x"), "--to", str(tmp_path / "y")])
    assert res.exit_code == 2 and "not a finished prior run" in _flat(res.output)


def test_time_budget_stops_early_and_still_writes_the_prior(trained, tmp_path):
    _, cfg = trained
    result = PriorTrainer(replace(cfg, minutes=0.0, card=False), tmp_path / "run", show_progress=False).run()
    assert result.stopped_early and result.step == 0 and result.final_loss is None
    assert (tmp_path / "run" / "prior.yaml").is_file()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_0000000.safetensors"]


@pytest.mark.slow
def test_real_settings_with_minilm(tmp_path, cache):
    """The default configuration (MiniLM text, 32 px, (24, 48, 96) UNet) for two steps, and SDS with it."""
    from dreamcs.generate.guidance import GuidanceConfig, build_guidance

    cfg = PriorTrainConfig(data=ViewDataConfig(limit=2, n_views=4), steps=2, batch_size=4, cache_dir=str(cache),
                           card=False)
    PriorTrainer(cfg, tmp_path / "run", show_progress=False).run()
    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(tmp_path / "run"), guidance_scale=7.5))
    assert g.unet.config.cross_attention_dim == 384 and g.image_size == 32 and g.channels == 1
    img = torch.rand(1, 64, 64, 3, requires_grad=True)
    g.sds_loss(img, g.encode_prompts("a chair"), step=0)["loss_sds"].backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


def test_init_from_starts_at_another_priors_weights(trained, tmp_path):
    """``init_from``: a run starts from the UNet of a prior folder (its step-0 checkpoint holds those
    weights, not the seeded fresh ones); a folder of other widths is refused, naming it."""
    from safetensors.torch import load_file

    src, cfg = trained
    run = tmp_path / "run"
    PriorTrainer(replace(cfg, init_from=str(src), minutes=0.0, card=False), run, show_progress=False).run()
    start = load_file(str(run / "checkpoints" / "step_0000000.safetensors"))
    shipped = {k: v for f in (src / "unet").glob("*.safetensors") for k, v in load_file(str(f)).items()}
    key = next(k for k in shipped if k.endswith("conv_in.weight"))
    assert any(torch.equal(v, shipped[key]) for k, v in start.items() if k.endswith("conv_in.weight"))
    fresh = tmp_path / "fresh"
    PriorTrainer(replace(cfg, minutes=0.0, card=False), fresh, show_progress=False).run()
    other = load_file(str(fresh / "checkpoints" / "step_0000000.safetensors"))
    assert not any(torch.equal(v, shipped[key]) for k, v in other.items() if k.endswith("conv_in.weight"))
    with pytest.raises(ValueError, match="does not match block_out_channels"):
        PriorTrainer(replace(cfg, init_from=str(src), block_out_channels=[8, 24], minutes=0.0, card=False),
                     tmp_path / "wide", show_progress=False).run()


def test_device_is_checked_and_a_run_moves_between_devices(trained, tmp_path):
    """``device``: a bad name or a missing GPU is a clear error (CLI: exit 2); on a machine with a
    GPU, two steps on cuda then two on the CPU after a resume land where four CPU steps do (the draws
    are the CPU generator's, so only rounding differs)."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from dreamcs.cli import app

    out, cfg = trained
    cfg = replace(cfg, card=False)
    with pytest.raises(ValueError, match="device must be"):
        replace(cfg, device="tpu").validate()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            PriorTrainer(replace(cfg, device="cuda"), tmp_path / "gpu", show_progress=False)
        res = CliRunner().invoke(app, ["prior", "train", "--out", str(tmp_path / "cli"), "--device", "cuda", "--steps", "1"])
        assert res.exit_code == 2 and "no CUDA GPU" in _flat(res.output)
        assert not (tmp_path / "gpu").exists()
        return
    run = tmp_path / "moved"
    PriorTrainer(replace(cfg, device="cuda", steps=2), run, show_progress=False).run()
    PriorTrainer(replace(cfg, device="cpu"), run, show_progress=False).run(resume=True)
    a = load_file(str(out / "checkpoints" / "step_0000004.safetensors"))
    b = load_file(str(run / "checkpoints" / "step_0000004.safetensors"))
    for k in a:
        if k != "rng":
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3), k
    assert torch.equal(a["rng"], b["rng"])


def test_render_first_then_resume_without_the_budget(tmp_path):
    """``--minutes 0`` renders the views and stops at step 0 (e.g. before moving the run to a GPU
    machine); ``--resume`` then trains to the end: the budget belonged to the first invocation."""
    from typer.testing import CliRunner

    from dreamcs.cli import app

    out = tmp_path / "run"
    args = ["prior", "train", "--out", str(out), "-q"]
    cfg = [f"cache_dir={tmp_path / 'views'}", "card=false", "text_encoder=hash:32", "block_out_channels=[8,16]",
           "data.limit=3", "data.n_views=4", "data.image_size=16", "steps=3", "batch_size=4"]
    res = CliRunner().invoke(app, [*args, "--minutes", "0", *cfg])
    assert res.exit_code == 0 and "step 0" in res.output, res.output
    assert any((tmp_path / "views").iterdir())
    res = CliRunner().invoke(app, [*args, "--resume"])
    assert res.exit_code == 0 and "step 3" in res.output, res.output
    assert "no card" in res.output and not (out / "MODEL_CARD.md").exists()  # card=false stays with the run
