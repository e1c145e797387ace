"""RewardCS: shapes, masks, save/load, gradients to vertex positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_helpers import mesh_core, random_batch, tiny_model

from dreamcs.reward import PRESETS, RewardCS, RewardCSConfig, preset


def test_forward_shapes_and_unit_embedding():
    model = tiny_model()
    f, c = random_batch()
    out = model(f, c, ["a chair", "a table", "a red lamp"])
    assert out.reward.shape == (3,) and out.embedding.shape == (3, 32)
    torch.testing.assert_close(out.embedding.norm(dim=-1), torch.ones(3))
    assert torch.isfinite(out.reward).all()


def test_text_padding_does_not_change_result():
    model = tiny_model().eval()
    f, c = random_batch(2)
    both = model(f, c, ["a", "a much longer prompt with many many words in it"])
    alone = model(f[:1], c[:1], ["a"])
    torch.testing.assert_close(both.reward[0], alone.reward[0], atol=1e-5, rtol=1e-5)


def test_prompt_changes_reward():
    model = tiny_model().eval()
    f, c = random_batch(1)
    r1 = model(f, c, ["a chair"]).reward
    r2 = model(f, c, ["a rocket in space"]).reward
    assert not torch.allclose(r1, r2)


def test_text_encoder_not_in_state_dict():
    model = tiny_model(text_encoder="minilm")
    assert not any("text_encoder" in k for k in model.state_dict())
    assert all(p.requires_grad for p in model.parameters())
    assert model.text_encoder.dim == 384


def test_bad_shapes():
    model = tiny_model()
    f, c = random_batch(2)
    with pytest.raises(ValueError, match=r"features must be \(B, P, 8, 10\)"):
        model(f[..., :5], c, ["a", "b"])
    with pytest.raises(ValueError, match="centers"):
        model(f, c[:, :3], ["a", "b"])
    with pytest.raises(ValueError, match="2 meshes"):
        model(f, c, ["a"])
    with pytest.raises(ValueError, match="divisible"):
        RewardCSConfig(dim=30, heads=4)
    with pytest.raises(KeyError, match="preset"):
        preset("huge")


def test_presets():
    assert PRESETS["small"]["dim"] == 256 and PRESETS["small"]["depth"] == 6 and PRESETS["small"]["heads"] == 8
    assert PRESETS["base"]["dim"] == 768 and PRESETS["base"]["depth"] == 12 and PRESETS["base"]["heads"] == 12


def test_save_load_identical(tmp_path):
    model = tiny_model(seed=3)
    f, c = random_batch(4, seed=1)
    prompts = ["a", "b c", "d", "a chair"]
    model.eval()
    before = model(f, c, prompts)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "config.yaml").is_file()
    loaded = RewardCS.from_pretrained(tmp_path / "m")
    after = loaded(f, c, prompts)
    assert torch.equal(before.reward, after.reward) and torch.equal(before.embedding, after.embedding)
    assert loaded.config == model.config


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        RewardCS.from_pretrained(tmp_path)
    tiny_model().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors"):
        RewardCS.from_pretrained(tmp_path / "m")


def test_gradient_reaches_features():
    model = tiny_model()
    f, c = random_batch(2)
    f.requires_grad_(True)
    c.requires_grad_(True)
    model(f, c, ["a", "b"]).reward.sum().backward()
    assert f.grad.abs().sum() > 0 and c.grad.abs().sum() > 0


def test_gradient_reaches_vertices_and_input_vertices():
    mesh = mesh_core()
    import trimesh

    model = tiny_model()
    src = mesh.normalize(trimesh.creation.icosphere(subdivisions=3))
    pm = mesh.fuse(src, n_patches=16, faces_per_patch=8)
    v = torch.as_tensor(pm.vertices, dtype=torch.float32).requires_grad_(True)
    r = model.reward_from_vertices(v, pm.faces, "a ball")
    assert r.shape == ()
    (g,) = torch.autograd.grad(r, v)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # through the fusion map back to the input mesh's vertices (the generator's path)
    v_in = torch.as_tensor(np.asarray(src.vertices), dtype=torch.float32).requires_grad_(True)
    fused = pm.vertices_from(v_in)
    torch.testing.assert_close(fused.detach(), v.detach(), atol=1e-5, rtol=1e-5)
    r2 = model.reward_from_vertices(fused, pm.faces, "a ball")
    torch.testing.assert_close(r2.detach(), r.detach(), atol=1e-5, rtol=1e-5)
    (g2,) = torch.autograd.grad(r2, v_in)
    assert torch.isfinite(g2).all() and g2.abs().sum() > 0
    # the chain rule through W: grad_in = W^T grad_fused
    w = torch.as_tensor(pm.W.toarray(), dtype=torch.float32)
    torch.testing.assert_close(g2, w.T @ g, atol=1e-5, rtol=1e-4)


def test_score_file_and_patched(sample_dir):
    mesh = mesh_core()
    model = tiny_model(faces_per_patch=64)
    path = sorted(sample_dir.glob("*.obj"))[0]
    s1 = model.score(path, "a chair")
    pm = mesh.fuse(mesh.normalize(mesh.load_mesh(path)))
    s2 = model.score(pm, "a chair")
    assert isinstance(s1, float) and s1 == pytest.approx(s2, abs=1e-5)



def test_cpu_preset_and_its_training_recipe():
    from dreamcs.commands.reward import _preset_overrides
    from dreamcs.config import load_config
    from dreamcs.reward.config import TRAIN_PRESETS
    from dreamcs.reward.train import TrainConfig

    cfg = load_config(TrainConfig, None, _preset_overrides("cpu", training=True))
    assert cfg.model == preset("cpu") and cfg.batch_size == 32 and cfg.steps == TRAIN_PRESETS["cpu"]["steps"]
    assert load_config(TrainConfig, None, _preset_overrides("small", training=True)).steps == TrainConfig().steps


def test_boundary_channel_model_reads_holes_and_keeps_vertex_gradients():
    mesh = mesh_core()
    import trimesh

    from dreamcs.mesh import patch_boundary
    from dreamcs.reward.config import PRESETS as MODEL_PRESETS

    torch.manual_seed(0)
    model = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], boundary_channel=True))
    assert model.mesh_encoder.patch_embed[0].in_features == 64 * 11
    sphere = trimesh.creation.icosphere(subdivisions=3)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] < 0.6])
    for src, is_open in ((sphere, False), (holed, True)):
        pm = mesh.fuse(mesh.normalize(src), n_patches=256, faces_per_patch=64)
        v = torch.as_tensor(pm.vertices, dtype=torch.float32).requires_grad_(True)
        b = patch_boundary(v, torch.as_tensor(pm.faces))
        assert (b.sum() > 0) == is_open
        r = model.reward_from_vertices(v, pm.faces, "a ball")
        (g,) = torch.autograd.grad(r, v)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        # the channel enters the reward: zeroing it changes the result on an open mesh only
        f = mesh.patch_features(v.detach(), torch.as_tensor(pm.faces))[None]
        c = mesh.patch_centers(v.detach(), torch.as_tensor(pm.faces))[None]
        with torch.no_grad():
            r0 = model(f, c, ["a ball"], boundary=torch.zeros_like(b)[None]).reward
            r1 = model(f, c, ["a ball"], boundary=b[None]).reward
        assert bool((r0 - r1).abs().max() > 0) == is_open
    with pytest.raises(ValueError, match="extra channel"):
        model(f, c, ["a ball"])  # the boundary channel is required by such a model


def test_ragged_channel_model_reads_the_second_boundary_channel():
    mesh = mesh_core()
    import trimesh

    from dreamcs.mesh import patch_boundary
    from dreamcs.reward.config import PRESETS as MODEL_PRESETS

    with pytest.raises(ValueError, match="boundary_channel"):
        RewardCSConfig(ragged_channel=True)
    torch.manual_seed(0)
    model = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], boundary_channel=True, ragged_channel=True))
    assert model.mesh_encoder.patch_embed[0].in_features == 64 * 12
    sphere = trimesh.creation.icosphere(subdivisions=3)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] < 0.6])
    pm = mesh.fuse(mesh.normalize(holed), n_patches=256, faces_per_patch=64)
    v = torch.as_tensor(pm.vertices, dtype=torch.float32)
    b = patch_boundary(v, torch.as_tensor(pm.faces), ragged=True)
    f = mesh.patch_features(v, torch.as_tensor(pm.faces))[None]
    c = mesh.patch_centers(v, torch.as_tensor(pm.faces))[None]
    with torch.no_grad():
        r = model(f, c, ["a ball"], boundary=b[None]).reward
        flat = b.clone()
        flat[..., 1] = 0
        assert (model(f, c, ["a ball"], boundary=flat[None]).reward - r).abs().item() > 0  # the turn is read
        # reward_from_vertices computes both channels itself
        torch.testing.assert_close(model.reward_from_vertices(v, pm.faces, "a ball"), r[0])
        # a one-channel model takes the first channel of two-channel data (what datasets now give)
        one = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], boundary_channel=True))
        torch.testing.assert_close(one(f, c, ["a ball"], boundary=b[None]).reward,
                                   one(f, c, ["a ball"], boundary=b[None, ..., :1]).reward)
    with pytest.raises(ValueError, match="extra channel"):
        model(f, c, ["a ball"], boundary=b[None, ..., :1])  # too few channels for this model
    # a third channel (isolation) in order: it needs the ragged one, and reward_from_vertices computes it
    with pytest.raises(ValueError, match="ragged_channel"):
        RewardCSConfig(boundary_channel=True, isolation_channel=True)
    iso = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], boundary_channel=True, ragged_channel=True,
                                  isolation_channel=True))
    assert iso.config.extra_channels == 3 and iso.mesh_encoder.patch_embed[0].in_features == 64 * 13
    with torch.no_grad():
        assert torch.isfinite(iso.reward_from_vertices(v, pm.faces, "a ball"))


def test_sliver_gate_quiets_the_normals_of_near_degenerate_faces():
    from dreamcs.reward.config import PRESETS as MODEL_PRESETS

    torch.manual_seed(0)
    gated = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], sliver_gate=0.1)).mesh_encoder
    f = torch.randn(1, 4, 64, 10)
    f[..., 0] = 1.0  # mean-sized faces
    f[0, 0, :, 0] = 1e-6  # patch 0: slivers
    x = gated.standardise(f)
    assert x[0, 0, :, 1:4].abs().max() < 1e-4 and x[0, 0, :, 7:].abs().max() < 1e-4  # slivers: normals faded
    torch.testing.assert_close(x[0, 1:, :, 1:4], f[0, 1:, :, 1:4] / 1.1, rtol=1e-5, atol=1e-5)  # a/(a+g) = 1/1.1
    torch.testing.assert_close(x[..., 4:7], f[..., 4:7])  # angles untouched
    # a jitter of a sliver's normal no longer reaches the patch tokens
    f2 = f.clone()
    f2[0, 0, :, 1:4] = torch.randn(64, 3)
    torch.testing.assert_close(gated.embed(f2, torch.zeros(1, 4, 3)), gated.embed(f, torch.zeros(1, 4, 3)), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="sliver_gate"):
        RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], sliver_gate=0.1, in_features=7))


def test_models_without_extra_channels_keep_their_state_dict_keys():
    from dreamcs.reward.config import PRESETS as MODEL_PRESETS

    plain = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"])).state_dict()
    assert not any("extra_" in k for k in plain)  # checkpoints written before the boundary channel still load
    with_b = RewardCS(RewardCSConfig(**MODEL_PRESETS["tiny"], boundary_channel=True)).state_dict()
    assert {"mesh_encoder.extra_mean", "mesh_encoder.extra_std"} <= set(with_b)
