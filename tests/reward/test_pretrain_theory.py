"""MeshMAE pre-training and the Theorem 1 check."""

from __future__ import annotations

import math

import pytest
import torch
from reward_helpers import SyntheticPrefDataset

from dreamcs.reward import RewardCS, preset
from dreamcs.reward.cs_divergence import cs_divergence
from dreamcs.reward.pretrain import MeshMAE, PretrainConfig, pretrain
from dreamcs.reward.theory import TheoryConfig, plot_theory, population_cs, run_theory
from dreamcs.reward.train import load_init
from dreamcs.utils import read_jsonl


def _cfg(**kw):
    base = dict(model=preset("tiny", faces_per_patch=8, text_encoder="hash:16"), steps=12, batch_size=4,
                decoder_dim=32, decoder_heads=4, decoder_depth=1, warmup_steps=3, lr=3e-3, log_every=3,
                checkpoint_every=12, progress=False)
    base.update(kw)
    return PretrainConfig(**base)


def test_encoder_never_sees_masked_patches():
    torch.manual_seed(0)
    mae = MeshMAE(_cfg())
    f = torch.randn(2, 12, 8, 10, requires_grad=True)
    c = torch.rand(2, 12, 3)
    mae(f, c, generator=torch.Generator().manual_seed(5)).backward()
    order = torch.rand(2, 12, generator=torch.Generator().manual_seed(5)).argsort(1)
    hidden = order[:, 6:]  # mask ratio 0.5 of 12 patches
    for b in range(2):
        assert f.grad[b, hidden[b]].abs().sum() == 0
        assert f.grad[b, order[b, :6]].abs().sum() > 0


def test_pretrain_learns_and_inits_reward(tmp_path):
    data = SyntheticPrefDataset(n_pos=6, n_neg=6)
    pretrain(_cfg(), data, tmp_path / "pre")
    recs = read_jsonl(tmp_path / "pre" / "metrics.jsonl")
    assert recs[-1]["loss_mae"] < recs[0]["loss_mae"]
    model = RewardCS(preset("tiny", faces_per_patch=8, text_encoder="hash:16"))
    assert load_init(model, tmp_path / "pre") > 0
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "pre" / "model.safetensors"))
    for k, v in saved.items():
        assert torch.equal(model.state_dict()[k], v)
    with pytest.raises(ValueError, match="do not fit"):
        load_init(RewardCS(preset("tiny", dim=64, faces_per_patch=8, text_encoder="hash:16")), tmp_path / "pre")


def test_population_cs_matches_large_sample():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 2, generator=g, dtype=torch.float64)
    y = torch.randn(1500, 2, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    est = float(cs_divergence(x, y, sigma=2.0))
    assert est == pytest.approx(population_cs(2, 1.0, 2.0), abs=0.02)


def test_theory_gap_shrinks(tmp_path):
    r = run_theory(TheoryConfig(sizes=[16, 64, 256], trials=8))
    gaps = [row["unpaired_gap"] for row in r["rows"]]
    assert gaps[0] > gaps[-1] and -1.2 < r["slope_unpaired"] < -0.2
    assert math.isfinite(r["population_d_cs"]) and r["population_d_cs"] > 0
    p = plot_theory(r, tmp_path / "theory.png")
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_pretrain_on_a_built_dataset_folder(tmp_path):
    from reward_helpers import mesh_core, write_tiny_dataset

    from dreamcs.reward.pretrain import DatasetMeshes

    mesh_core()
    root = write_tiny_dataset(tmp_path / "ds")
    train_meshes = DatasetMeshes(root)  # train split, labelled and unlabelled alike
    assert len(train_meshes) == 12 and any(r["label"] == -1 for r in train_meshes.rows)
    assert len(DatasetMeshes(root, ("all",))) == 18
    item = train_meshes[0]
    assert item["features"].shape == (8, 8, 10) and item["centers"].shape == (8, 3)
    pretrain(_cfg(steps=4, checkpoint_every=4), train_meshes, tmp_path / "pre")
    from safetensors.torch import load_file

    enc = load_file(str(tmp_path / "pre" / "model.safetensors"))
    from dreamcs.reward.augment import feature_stats

    mean, std, area_scale = feature_stats(train_meshes, 512, 0)[:3]  # the standardisation was set from the data
    assert torch.equal(enc["mesh_encoder.feature_mean"], mean) and torch.equal(enc["mesh_encoder.feature_std"], std)
    assert torch.equal(enc["mesh_encoder.area_scale"], area_scale.reshape(1))
    assert not torch.allclose(std, torch.ones(10))
    with pytest.raises(ValueError, match="no meshes"):
        DatasetMeshes(root, ("test",))


def test_pretrain_reads_the_boundary_channels_of_the_trained_presets(tmp_path):
    """The shipped presets read two extra channels (open share, ragged turn); pre-training must feed
    them (and set their standardisation) so that ``reward train --init`` starts from a fitting encoder."""
    import numpy as np
    import trimesh
    from reward_helpers import mesh_core, write_tiny_dataset

    from dreamcs.mesh.channels import patch_extra_channels
    from dreamcs.reward.augment import feature_stats
    from dreamcs.reward.pretrain import DatasetMeshes, MeshFolderDataset

    mesh_core()
    model_cfg = preset("tiny", faces_per_patch=8, text_encoder="hash:16", boundary_channel=True, ragged_channel=True)
    root = write_tiny_dataset(tmp_path / "ds")
    data = DatasetMeshes(root)
    assert "boundary" not in data[0]  # the channels come once a model asks for them
    pretrain(_cfg(model=model_cfg, steps=2, checkpoint_every=2), data, tmp_path / "pre0")
    z = np.load(root / "shards" / data.rows[0]["shard"])
    j = data.rows[0]["shard_index"]
    want = patch_extra_channels(torch.from_numpy(z[f"v{j}"]).float(), torch.from_numpy(z[f"f{j}"]).long(), 2)
    assert data[0]["boundary"].shape == (8, 8, 2) and torch.allclose(data[0]["boundary"], want)

    folder = tmp_path / "open"  # open meshes, so the channels vary and their stats are not the defaults
    folder.mkdir()
    for i, cut in enumerate((0.0, 0.3, -0.2)):
        m = trimesh.creation.icosphere(subdivisions=3)
        m.update_faces(m.triangles_center[:, 1] < cut)
        m.export(folder / f"open{i}.obj")
    meshes = MeshFolderDataset(folder, faces_per_patch=8, n_patches=8)
    pretrain(_cfg(model=model_cfg, steps=4, checkpoint_every=4), meshes, tmp_path / "pre")
    stats = feature_stats(meshes, 512, 0, extra_key="boundary")
    assert stats.extra_mean[0] > 0  # open boundaries seen
    model = RewardCS(model_cfg)
    assert load_init(model, tmp_path / "pre") > 0  # the encoder fits the model that reads the channels
    assert torch.equal(model.mesh_encoder.extra_mean, stats.extra_mean)
    assert torch.equal(model.mesh_encoder.extra_std, stats.extra_std)
    item = meshes[0]
    with pytest.raises(ValueError, match="extra channel"):  # features without the channels are refused
        MeshMAE(_cfg(model=model_cfg))(item["features"][None], item["centers"][None])
