"""2D rewards (ImageReward, DreamReward's Reward3D) on rendered views, and the MVDream / IF recipes
with tiny random stand-ins for every weight they name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamcs.config import load_config
from dreamcs.generate.config import GenerateConfig, resolve_config_path
from dreamcs.generate.guidance.tiny_models import save_tiny_deepfloyd_if, save_tiny_mvdream
from dreamcs.generate.pipeline import GeneratePipeline
from dreamcs.generate.reward2d import Reward2DConfig, build_reward_2d, save_tiny_blip_reward
from dreamcs.generate.reward2d.blip_reward import BlipRewardConfig, load_blip_reward, rename_blip_key

SMALL = ["steps=3", "save_every=3", "mesh_every=0", "device=cpu", "geometry.grid_resolution=8",
         "render.resolution=32", "render.turntable_views=2", "render.turntable_resolution=32",
         "reward.n_patches=8", "reward.every=1", "reward_2d.every=1", "reward.overlap_fusion=false"]


@pytest.fixture(scope="module")
def tiny_rewards(tmp_path_factory):
    root = tmp_path_factory.mktemp("r2d")
    return {h: save_tiny_blip_reward(root / h, head=h) for h in ("imagereward", "reward3d-fusion", "reward3d-scorer")}


@pytest.fixture(scope="module")
def tiny_reward_3d(tmp_path_factory):
    from dreamcs.reward import RewardCS
    from dreamcs.reward.config import preset

    torch.manual_seed(0)
    model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32"))
    return model.save_pretrained(tmp_path_factory.mktemp("reward") / "model")


@pytest.mark.parametrize("head", ["imagereward", "reward3d-fusion", "reward3d-scorer"])
def test_blip_reward_scores_and_differentiates(tiny_rewards, head):
    branch = build_reward_2d(Reward2DConfig(name=head, checkpoint=str(tiny_rewards[head])), "a red chair", "cpu")
    images = torch.rand(8, 40, 40, 3, requires_grad=True)
    r = branch(images, ["front view"] * 8)
    r.backward()
    assert r.ndim == 0 and torch.isfinite(r) and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    with torch.no_grad():
        other = branch(torch.ones(8, 40, 40, 3))
    assert abs(float(other) - float(r.detach())) > 1e-4  # the reward depends on the images
    if head != "imagereward":
        with pytest.raises(ValueError, match="groups of 4 views"):
            branch(torch.rand(3, 40, 40, 3))


def test_reward3d_fusion_mixes_views(tiny_rewards):
    model, tok = load_blip_reward(tiny_rewards["reward3d-fusion"])
    feats = torch.randn(4, 48)
    a = model.cross_view_adapter(feats)
    feats2 = feats.clone()
    feats2[3] += 1.0
    assert a.shape == (1, 48) and not torch.allclose(a, model.cross_view_adapter(feats2))


def test_reward_2d_config_and_loader_errors(tiny_rewards, tmp_path):
    with pytest.raises(ValueError, match="multiple of 4"):
        Reward2DConfig(name="reward3d-fusion", checkpoint="x").validate(batch_size=2)
    with pytest.raises(ValueError, match="not one of"):
        Reward2DConfig(name="clip").validate(batch_size=4)
    with pytest.raises(FileNotFoundError, match="not a 2D reward folder"):
        load_blip_reward(tmp_path)
    with pytest.raises(ValueError, match="holds a 'imagereward' model"):
        build_reward_2d(Reward2DConfig(name="reward3d-scorer", checkpoint=str(tiny_rewards["imagereward"])), "a", "cpu")


def test_original_blip_keys_are_renamed():
    assert rename_blip_key("blip.visual_encoder.blocks.3.attn.qkv.weight") == \
        "visual_encoder.encoder.layers.3.self_attn.qkv.weight"
    assert rename_blip_key("blip.visual_encoder.blocks.0.attn.proj.bias") == \
        "visual_encoder.encoder.layers.0.self_attn.projection.bias"
    assert rename_blip_key("blip.visual_encoder.norm.weight") == "visual_encoder.post_layernorm.weight"
    assert rename_blip_key("blip.visual_encoder.pos_embed") == "visual_encoder.embeddings.position_embedding"
    assert rename_blip_key("blip.text_encoder.encoder.layer.1.crossattention.self.query.weight") == \
        "text_encoder.encoder.layer.1.crossattention.self.query.weight"
    assert rename_blip_key("mlp.layers.0.weight") == "mlp.layers.0.weight"
    assert rename_blip_key("blip.vision_proj.weight") is None
    # the default (real) config builds the right parameter names for those keys
    from dreamcs.generate.reward2d.blip_reward import BlipReward

    small = BlipRewardConfig(vision=dict(hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         image_size=32, patch_size=16),
                             text=dict(vocab_size=50, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, encoder_hidden_size=32))
    names = set(BlipReward(small).state_dict())
    for k in ("visual_encoder.encoder.layers.0.self_attn.qkv.weight", "visual_encoder.embeddings.position_embedding",
              "visual_encoder.embeddings.class_embedding", "visual_encoder.post_layernorm.weight",
              "text_encoder.encoder.layer.1.crossattention.self.query.weight", "mlp.layers.7.weight"):
        assert k in names, k


def test_reward_2d_image_gradient_matches_finite_differences(tiny_rewards):
    """d r_2d / d image (resize, normalise, ViT, BERT cross-attention, head) against central differences."""
    branch = build_reward_2d(Reward2DConfig(name="reward3d-scorer", checkpoint=str(tiny_rewards["reward3d-scorer"])),
                             "a chair", "cpu")
    branch.model.double()
    torch.manual_seed(0)
    images = torch.rand(4, 24, 24, 3, dtype=torch.float64, requires_grad=True)

    def reward(x: torch.Tensor) -> torch.Tensor:
        from dreamcs.generate.reward2d.blip_reward import preprocess

        ids, mask = branch._tokenize(["a chair"] * 4, torch.device("cpu"))
        return branch.model(preprocess(x, 32), ids, mask).mean()

    (g,) = torch.autograd.grad(reward(images), images)
    d = g / g.norm()
    eps = 1e-4
    with torch.no_grad():
        fd = (reward(images + eps * d) - reward(images - eps * d)) / (2 * eps)
    assert float(g.norm()) > 0 and float(fd) == pytest.approx(float(g.norm()), rel=1e-4)


def test_reward_2d_every_k_weighs_k_alpha(tiny_rewards):
    """As the 3D reward's ``every``: scored on every k-th step with k alpha_2d(t), so the mean push holds."""
    grads, recs = {}, {}
    for k in (1, 3):
        branch = build_reward_2d(Reward2DConfig(checkpoint=str(tiny_rewards["imagereward"]), alpha=0.7, every=k),
                                 "a chair", "cpu")
        torch.manual_seed(0)
        img = torch.rand(2, 32, 32, 3, requires_grad=True)
        recs[k] = [{}, {}]
        branch.step(img, ["", ""], 3, recs[k][0])
        grads[k] = img.grad.clone()
        assert branch.step(img, ["", ""], 4, recs[k][1]) == (0.0 if k == 3 else recs[k][1]["loss_reward_2d"])
    assert recs[3][0]["alpha_2d"] == pytest.approx(2.1) and recs[3][1]["reward_2d"] is None
    assert recs[1][1]["reward_2d"] is not None and torch.allclose(grads[3], 3 * grads[1], rtol=1e-4, atol=1e-7)
    assert grads[1].abs().sum() > 0


def test_reward_2d_gradient_reaches_the_field(tiny_rewards, tmp_path):
    """The pipeline step gives the field exactly -alpha_2d d r_2d(render(field)) / d theta when SDS
    and the regularisers weigh 0 (render gradients themselves are tested in tests/render)."""
    ckpt = tiny_rewards["imagereward"]
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), [
        "prompt=a chair", "geometry.grid_resolution=8", "render.batch_size=2", "render.shading=diffuse",
        "render.elevation_range=[20,20]", "render.azimuth_range=[30,30]", "render.distance_range=[2.5,2.5]",
        "render.fov_range=[50,50]", "render.resolution=32", f"reward_2d.checkpoint={ckpt}", "reward_2d.alpha=0.7",
        "loss.lambda_sds=0", "loss.lambda_normal_consistency=0", "loss.lambda_sdf=0"])
    pipe = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)
    pipe.prepare()
    pipe.optimizer.step = lambda: None  # keep the gradients, leave the field as it is
    rec = pipe.train_step(0)
    assert rec["alpha_2d"] == pytest.approx(0.7) and np.isfinite(rec["reward_2d"])
    got = {n: p.grad.clone() for n, p in pipe.field.named_parameters()}
    pipe.optimizer.zero_grad()
    verts, faces = pipe.field()
    images, suffixes, _ = pipe.render_batch(verts, faces, 0)
    r = pipe.reward_2d(images, suffixes)
    assert float(r.detach()) == pytest.approx(rec["reward_2d"], rel=1e-5)
    (-0.7 * r).backward()
    for n, p in pipe.field.named_parameters():
        assert p.grad.abs().sum() > 0 and torch.allclose(got[n], p.grad, rtol=1e-4, atol=1e-9), n


@pytest.fixture(scope="module")
def tiny_priors(tmp_path_factory):
    root = tmp_path_factory.mktemp("priors")
    tiny_if = save_tiny_deepfloyd_if(root / "if")
    tiny_mv = save_tiny_mvdream(root / "mv")
    return {"mvdream-sd21": tiny_mv, "mvdream-sd21-dmtet": tiny_mv, "dmtet-if": tiny_if, "dreamfusion-if": tiny_if}


# the implicit volume at toy size, with a mesh from step 0 for the RewardCS
NERF_SMALL = ["geometry.hash_levels=2", "geometry.hash_log2_table_size=8", "geometry.hash_max_resolution=16",
              "nerf.n_samples=16", "nerf.occupancy_resolution=16", "nerf.iso_threshold=2.5"]


@pytest.mark.parametrize("recipe", ["mvdream-sd21", "mvdream-sd21-dmtet", "dmtet-if", "dreamfusion-if"])
@pytest.mark.parametrize("with_rewards", [False, True])
def test_recipe_runs_three_steps(recipe, with_rewards, tiny_priors, tiny_rewards, tiny_reward_3d, tmp_path):
    mv = recipe.startswith("mvdream")
    extra = [f"guidance.pretrained={tiny_priors[recipe]}", f"guidance.image_size={32 if mv else 16}"]
    extra += NERF_SMALL if recipe in ("dreamfusion-if", "mvdream-sd21") else []
    if with_rewards:
        head = "reward3d-scorer" if mv else "imagereward"
        extra += [f"reward.checkpoint={tiny_reward_3d}", f"reward_2d.checkpoint={tiny_rewards[head]}",
                  "reward.alpha=0.5", "reward_2d.alpha=0.5"]
    cfg = load_config(GenerateConfig, resolve_config_path(recipe), ["prompt=a chair", *SMALL, *extra])
    pipe = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)
    out = pipe()
    assert len(out.metrics) == 3 and all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in out.metrics)
    if mv:
        cams = pipe.guidance._cameras  # the last step's views: 4 orthogonal azimuths of one orbit
        assert len(cams) == 4 and torch.allclose(cams.azimuth.diff() % 360, torch.full((3,), 90.0), atol=1e-3)
    if with_rewards:
        for r in out.metrics:
            assert np.isfinite(r["reward"]) and np.isfinite(r["reward_2d"])
            assert r["loss_reward_2d"] == pytest.approx(-0.5 * r["reward_2d"])
    else:
        assert "reward_2d" not in out.metrics[0] and out.metrics[0]["reward"] is None


def test_cli_generate_with_reward_2d(tiny_rewards, tmp_path):
    from typer.testing import CliRunner

    from dreamcs.cli import app
    from dreamcs.utils import read_jsonl

    run = tmp_path / "cli"
    args = ["generate", "a small table", "--config", "dmtet-tiny", "--out", str(run), "-q", "--reward-2d",
            str(tiny_rewards["reward3d-fusion"]), "steps=2", "mesh_every=0", "geometry.grid_resolution=8",
            "render.batch_size=4", "reward_2d.alpha=0.3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = read_jsonl(run / "metrics.jsonl")
    assert all(np.isfinite(r["reward_2d"]) and r["alpha_2d"] == pytest.approx(0.3) for r in recs)
    bad = CliRunner().invoke(app, ["generate", "x", "--config", "dmtet-tiny", "--out", str(tmp_path / "b"),
                                   "--reward-2d", str(tmp_path)])
    assert bad.exit_code == 2 and "not a 2D reward folder" in " ".join(bad.output.split())
    odd = CliRunner().invoke(app, ["generate", "x", "--config", "dmtet-tiny", "--out", str(tmp_path / "c"),
                                   "--reward-2d", str(tiny_rewards["reward3d-fusion"]), "render.batch_size=2"])
    assert odd.exit_code == 2 and "multiple of 4" in " ".join(odd.output.split())


def _original_name(key: str) -> str:
    """Our key -> the original BLIP / ImageReward name (the inverse of rename_blip_key, for the test)."""
    import re

    if key.startswith("text_encoder."):
        return "blip." + key
    if not key.startswith("visual_encoder."):
        return key
    for ours, orig in [(r"\.encoder\.layers\.", ".blocks."), (r"\.self_attn\.projection\.", ".attn.proj."),
                       (r"\.self_attn\.qkv\.", ".attn.qkv."), (r"\.layer_norm1\.", ".norm1."),
                       (r"\.layer_norm2\.", ".norm2."), (r"\.post_layernorm\.", ".norm."),
                       (r"\.embeddings\.patch_embedding\.", ".patch_embed.proj."),
                       (r"\.embeddings\.position_embedding$", ".pos_embed"),
                       (r"\.embeddings\.class_embedding$", ".cls_token")]:
        key = re.sub(ours, orig, key)
    return "blip." + key


def test_convert_a_checkpoint_in_the_original_layout(tiny_rewards, tmp_path):
    from dreamcs.generate.reward2d import convert_blip_reward_checkpoint

    model, tok = load_blip_reward(tiny_rewards["reward3d-scorer"])
    state = {_original_name(k): v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    state["blip.vision_proj.weight"] = torch.zeros(2, 2)  # BLIP's other heads are left out
    torch.save(state, tmp_path / "Reward3D_Scorer.pt")
    vocab = tmp_path / "bert"
    vocab.mkdir()
    words = [w for w, _ in sorted(tok.vocab.items(), key=lambda kv: kv[1])]  # without [DEC] / [ENC]
    (vocab / "vocab.txt").write_text("\n".join(words) + "\n")
    out = convert_blip_reward_checkpoint(tmp_path / "Reward3D_Scorer.pt", vocab, tmp_path / "conv", model.config)
    conv, conv_tok = load_blip_reward(out)
    assert len(conv_tok) == len(tok) and conv_tok.bos_token == "[DEC]"
    images = torch.rand(4, 3, 32, 32)
    ids = conv_tok(["a chair"] * 4, padding="max_length", max_length=24, return_tensors="pt")
    with torch.no_grad():
        a = model(images, ids.input_ids, ids.attention_mask)
        b = conv(images, ids.input_ids, ids.attention_mask)
    assert torch.equal(a, b)
    state.pop("Scorer.fc1.weight")
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="does not fit head"):
        convert_blip_reward_checkpoint(tmp_path / "broken.pt", vocab, tmp_path / "conv2", model.config)
