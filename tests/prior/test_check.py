"""`dreamcs prior check`: the judge learns the categories from unseen objects, a prior that draws
the right objects scores high and one that draws nothing scores at chance, and the table reaches
check.json and the model card."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dreamcs.prior.check import CheckConfig, check_prior, judge_items
from dreamcs.prior.data import ViewDataConfig
from dreamcs.prior.train import PriorTrainConfig, PriorTrainer

CATS = ["bed", "lamp", "mug"]


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    """A 16 px prior trained for 2 steps on framed library views, with its card."""
    out = tmp_path_factory.mktemp("prior") / "run"
    data = ViewDataConfig(real=False, procedural=3, procedural_views=2, image_size=16, margin=0.1)
    cfg = PriorTrainConfig(data=data, text_encoder="hash:32", block_out_channels=[8, 16], steps=2, batch_size=4,
                           warmup_steps=1, cache_dir=str(out.parent / "cache"), card_prompts=["a bed"],
                           card_samples=1, card_steps=2)
    PriorTrainer(cfg, out, show_progress=False).run()
    return out


def _check_cfg(**kw) -> CheckConfig:
    return CheckConfig(**{**dict(categories=CATS, samples=4, steps=2, procedural=8, views=4, real_views=8, epochs=40),
                          **kw})


def test_judge_items_come_from_another_library_seed_than_the_prior():
    from dreamcs.data.procedural import library_keys

    items = judge_items(_check_cfg(), CATS, None)
    assert [it.category for it in items] == CATS * 8 and all(it.source == "procedural" for it in items)
    trained = {f"procedural:{c}:{s}" for c, s in library_keys(3300, 0)}
    assert not trained & {it.key for it in items}


def test_a_faithful_prior_is_recognised_and_a_blank_one_is_not(prior, monkeypatch):
    """Stand-ins for the prior's samples: renders of unseen objects of the prompted category
    (a perfect prior) score high; black images (a prior that draws nothing) score at chance."""
    import dreamcs.prior.check as check_mod
    import dreamcs.prior.sample as sample_mod
    from dreamcs.prior.data import render_items

    cfg = _check_cfg()
    view_cfg = replace(check_mod.prior_view_config(prior), seed=123)
    unseen = judge_items(replace(cfg, procedural_seed=11, procedural=1), CATS, None)  # one more object per category
    renders = torch.from_numpy(render_items(replace(view_cfg), [replace(it, n_views=cfg.samples) for it in unseen])
                               ["images"].astype("float32")).view(len(CATS), cfg.samples, 1, 16, 16)
    monkeypatch.setattr(sample_mod, "sample_prior", lambda *a, **k: renders)
    good = check_prior(prior, cfg, log=lambda *_: None)
    assert good["judge_accuracy"] >= 0.75
    assert good["mean_recognised"] >= 0.6
    (prior / "check_samples.safetensors").unlink()  # cached for these weights and settings
    monkeypatch.setattr(sample_mod, "sample_prior", lambda *a, **k: torch.zeros_like(renders))
    blank = check_prior(prior, cfg, log=lambda *_: None)
    shares = sorted(v["recognised"] for v in blank["categories"].values())
    assert shares == [0.0, 0.0, 1.0]  # every black image gets the same verdict
    assert blank["mean_recognised"] == pytest.approx(1 / 3)
    assert good["mean_recognised_calibrated"] >= 0.6
    assert blank["mean_recognised_calibrated"] == 0.0  # the same image for every prompt tells nothing


def test_calibrated_verdicts_see_through_a_sink_class():
    """Every sample goes to class 0 by plain argmax, yet each is relatively most like its own class."""
    from dreamcs.prior.check import calibrated_verdicts

    k, s = 4, 3
    logp = torch.full((k, s, k), -3.0)
    logp[..., 0] = -0.1  # the sink
    for i in range(k):
        logp[i, :, i] += 1.0 if i else 0.5
    assert (logp.argmax(-1) == 0).all()
    assert torch.equal(calibrated_verdicts(logp), torch.arange(k).view(k, 1).expand(k, s))
    assert (calibrated_verdicts(torch.zeros(k, s, k) - 1.5) == -1).all()


def test_gaussian_blur_keeps_mass_and_sigma_zero_is_the_identity():
    from dreamcs.prior.check import gaussian_blur

    x = torch.zeros(2, 1, 15, 15)
    x[:, :, 7, 7] = 1
    y = gaussian_blur(x, torch.tensor([0.0, 1.0]))
    assert torch.equal(y[0], x[0])
    assert y[1].sum() == pytest.approx(1.0, abs=1e-5) and y[1, 0, 7, 7] == pytest.approx(1 / (2 * torch.pi), rel=0.02)


def test_bad_augmentation_settings_are_named(prior):
    with pytest.raises(ValueError, match="zoom"):
        check_prior(prior, _check_cfg(zoom=[1.2, 0.9]), log=lambda *_: None)
    with pytest.raises(ValueError, match="roundtrip"):
        check_prior(prior, _check_cfg(roundtrip=[0.5, 1.5]), log=lambda *_: None)


def test_check_writes_json_grid_and_card_table(prior, shared_data):
    from typer.testing import CliRunner

    from dreamcs.cli import app

    res = CliRunner().invoke(app, ["prior", "check", "--prior", str(prior), "categories=[bed,lamp,mug]", "samples=2",
                                   "steps=2", "procedural=4", "views=2", "real_views=4", "epochs=1"])
    assert res.exit_code == 0, res.output
    result = json.loads((prior / "check.json").read_text())
    assert set(result["categories"]) == set(CATS)
    assert all(v["recognised"] in (0.0, 0.5, 1.0) for v in result["categories"].values())
    # the held-out real meshes of ../shared/data join the judge's data where a category has one
    assert result["categories"]["mug"]["judge_real_meshes"] == 1 and result["categories"]["bed"]["judge_real_meshes"] == 0
    assert (prior / "check.png").read_bytes()[:4] == b"\x89PNG"
    card = (prior / "MODEL_CARD.md").read_text()
    assert card.count("<!-- prior-check -->") == 1 and "| mug |" in card and card.index("| mug |") < card.index("## Limits")
    # a second check replaces the table instead of adding one
    res = CliRunner().invoke(app, ["prior", "check", "--prior", str(prior), "categories=[bed,mug]", "samples=1",
                                   "steps=1", "procedural=2", "views=1", "real_views=1", "epochs=1"])
    assert res.exit_code == 0, res.output
    card = (prior / "MODEL_CARD.md").read_text()
    assert card.count("## Recognition check") == 1 and "| lamp |" not in card
    res = CliRunner().invoke(app, ["prior", "check", "--prior", str(prior), "categories=[dragon]"])
    assert res.exit_code == 2 and "dragon" in res.output


def test_roundtrip_keeps_an_image_at_a_low_noise_level_and_remakes_it_at_a_high_one(prior):
    from dreamcs.prior.sample import roundtrip_prior

    x = torch.zeros(3, 1, 16, 16)
    x[:, :, 4:12, 4:12] = 0.8
    low = roundtrip_prior(prior, x, (1e-3, 1e-3), steps=20)
    high = roundtrip_prior(prior, x, (0.9, 0.9), steps=20)
    assert low.shape == x.shape and 0 <= float(high.min()) and float(high.max()) <= 1
    assert (low - x).abs().max() < 0.05  # the last DDIM step only: the render survives
    assert (high - x).abs().mean() > 0.1  # a 2-step prior's remake of 90% noise is not the render
    assert torch.equal(high, roundtrip_prior(prior, x, (0.9, 0.9), steps=20))  # seeded
    with pytest.raises(ValueError, match="round trip"):
        roundtrip_prior(prior, x, (0.6, 0.3))


def test_samples_are_reused_only_for_the_same_weights_and_settings(prior, monkeypatch, tmp_path):
    import dreamcs.prior.sample as sample_mod
    from dreamcs.prior.check import cached_samples

    calls = []

    def fake(prior, prompts, n, **kw):
        calls.append(kw)
        return torch.rand(len(prompts), n, 1, 16, 16)

    monkeypatch.setattr(sample_mod, "sample_prior", fake)
    (prior / "check_samples.safetensors").unlink(missing_ok=True)
    cfg = _check_cfg()
    first = cached_samples(prior, ["a bed"], cfg)
    assert torch.equal(cached_samples(prior, ["a bed"], cfg), first) and len(calls) == 1
    cached_samples(prior, ["a bed"], replace(cfg, guidance=2.0))
    cached_samples(prior, ["a mug"], replace(cfg, guidance=2.0))
    assert len(calls) == 3
    # other weights (a further-trained prior in the same folder) are sampled afresh
    import shutil

    other = tmp_path / "other"
    shutil.copytree(prior, other)
    weights = next((other / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b" ")
    cached_samples(other, ["a mug"], replace(cfg, guidance=2.0))
    assert len(calls) == 4
