"""Every tensor of a guidance, field or reward module follows ``.to(device)``, checked without a GPU
by moving modules to the ``meta`` device and auditing what stayed behind."""

from __future__ import annotations

import pytest
import torch

from dreamcs.device_audit import misplaced_tensors
from dreamcs.generate.dmtet import DMTet, DMTetConfig
from dreamcs.generate.guidance import GuidanceConfig, build_guidance
from dreamcs.generate.guidance.tiny_sd import save_tiny_stable_diffusion as build_tiny_sd


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-device"))


def test_the_audit_finds_a_plain_tensor_attribute() -> None:
    m = torch.nn.Linear(2, 2)
    m.table = torch.zeros(3)  # a plain attribute: .to() leaves it behind
    m.to("meta")
    assert misplaced_tensors(m, "meta") == ["table on cpu"]


def test_stable_diffusion_schedule_is_built_on_the_asked_device(tiny_sd) -> None:
    # today's bug: the schedule buffer was registered after .to(device) and stayed on the CPU
    g = build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=str(tiny_sd), image_size=32), device="meta")
    assert g.alphas_cumprod.device.type == "meta"
    assert misplaced_tensors(g, "meta") == []


def test_stable_diffusion_follows_to(tiny_sd) -> None:
    g = build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=str(tiny_sd), image_size=32))
    assert misplaced_tensors(g.to("meta"), "meta") == []


@pytest.mark.parametrize("name", ["tiny"])
def test_pixel_guidance_follows_to(name: str) -> None:
    g = build_guidance(GuidanceConfig(name=name, image_size=16, block_out_channels=[8, 16], cross_attention_dim=8))
    assert misplaced_tensors(g.to("meta"), "meta") == []


@pytest.mark.parametrize(
    "cfg",
    [
        DMTetConfig(grid_resolution=4),
        DMTetConfig(grid_resolution=4, parameterization="mlp", encoding="fourier", init_steps=2),
        DMTetConfig(grid_resolution=4, parameterization="mlp", encoding="hashgrid", init_steps=2,
                    hash_levels=2, hash_log2_table_size=8),
    ],
    ids=["explicit", "fourier", "hashgrid"],
)
def test_dmtet_field_follows_to(cfg: DMTetConfig) -> None:
    field = DMTet(cfg)
    field.to("meta")
    assert misplaced_tensors(field, "meta") == []
    assert field.grid.tets.device.type == "meta"  # the grid marching tets reads moved too


def test_reward_model_follows_to() -> None:
    from dreamcs.reward import RewardCS
    from dreamcs.reward.config import RewardCSConfig

    model = RewardCS(RewardCSConfig(text_encoder="hash:16", dim=16, depth=1, heads=2, cross_depth=1, pos_hidden=8, head_hidden=8))
    assert misplaced_tensors(model.to("meta"), "meta") == []
