"""MVDream and DeepFloyd IF guidance with tiny random models of the real architectures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamcs.generate.config import RenderSettings
from dreamcs.generate.guidance import GuidanceConfig, build_guidance
from dreamcs.generate.guidance.mvdream import camera_embedding, orthogonal_cameras
from dreamcs.generate.guidance.tiny_models import save_tiny_deepfloyd_if, save_tiny_mvdream
from dreamcs.render.cameras import Cameras


def kiui_orbit_camera(elevation: float, azimuth: float, radius: float = 1.0) -> np.ndarray:
    """kiui.cam.orbit_camera (OpenGL look-at, y up) as MVDream's get_camera calls it, written out."""
    el, az = math.radians(elevation), math.radians(azimuth)
    campos = np.array([radius * math.cos(el) * math.sin(az), -radius * math.sin(el), radius * math.cos(el) * math.cos(az)])
    z = campos / np.linalg.norm(campos)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = campos
    return pose


def mvdream_get_camera(elevation: float, azimuth: float) -> np.ndarray:
    """MVDream's get_camera for one view: kiui's elevation is negated, then OpenGL -> Blender."""
    pose = kiui_orbit_camera(-elevation, azimuth)
    pose[2] *= -1
    pose[[1, 2]] = pose[[2, 1]]
    return pose.flatten()


def test_camera_embedding_follows_mvdream_convention():
    front = camera_embedding(Cameras(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([2.5]), torch.tensor([50.0])))
    assert torch.allclose(front[0], torch.tensor([1.0, 0, 0, 0, 0, 0, -1, -1, 0, 1, 0, 0, 0, 0, 0, 1]), atol=1e-6)
    el, az = [15.0, 15.0, 30.0, -5.0], [0.0, 90.0, 180.0, 270.0]
    cams = Cameras(torch.tensor(el), torch.tensor(az), torch.tensor([1.7, 2.0, 3.0, 2.2]), torch.tensor(40.0))
    ours = camera_embedding(cams).numpy()
    ref = np.stack([mvdream_get_camera(e, a) for e, a in zip(el, az, strict=True)])
    np.testing.assert_allclose(ours, ref, atol=1e-5)  # distance normalised away: radius 1 in MVDream


def test_orthogonal_cameras_share_all_but_azimuth():
    torch.manual_seed(0)
    cams = orthogonal_cameras(2, 4, [0, 30], [-180, 180], [2, 3], [40, 50])
    az = cams.azimuth.view(2, 4)
    steps = (az.diff(dim=1) % 360.0)
    assert torch.allclose(steps, torch.full_like(steps, 90.0), atol=1e-4)
    for f in (cams.elevation, cams.distance, cams.fov):
        g = f.view(2, 4)
        assert torch.equal(g, g[:, :1].expand(-1, 4)) and g[0, 0] != g[1, 0]


@pytest.fixture(scope="module")
def tiny_mv(tmp_path_factory):
    return save_tiny_mvdream(tmp_path_factory.mktemp("mv") / "tiny-mvdream")


@pytest.fixture(scope="module")
def tiny_if(tmp_path_factory):
    return save_tiny_deepfloyd_if(tmp_path_factory.mktemp("if") / "tiny-if")


def test_mvdream_unet_loads_every_weight(tiny_mv):
    from safetensors.torch import load_file

    from dreamcs.generate.guidance.mvdream_unet import MultiViewUNet

    unet = MultiViewUNet.from_pretrained(str(tiny_mv), subfolder="unet")
    saved = load_file(str(tiny_mv / "unet" / "diffusion_pytorch_model.safetensors"))
    assert set(saved) == set(unet.state_dict()) and "camera_embed.0.weight" in saved
    # the views of a sample see each other: changing view 1 changes the prediction of view 0
    x = torch.randn(4, 4, 8, 8)
    t, ctx, cam = torch.full((4,), 300), torch.randn(4, 3, 32), torch.randn(4, 16)
    with torch.no_grad():
        a = unet(x, t, ctx, camera=cam, num_frames=4)
        x2 = x.clone()
        x2[1] += 1.0
        b = unet(x2, t, ctx, camera=cam, num_frames=4)
        c = unet(x2, t, ctx, camera=cam, num_frames=1)  # views independent
        d = unet(x, t, ctx, camera=cam + 1.0, num_frames=4)
    assert not torch.allclose(a[0], b[0]) and torch.allclose(c[0], unet(x, t, ctx, camera=cam, num_frames=1)[0])
    assert not torch.allclose(a, d)


def test_mvdream_sds_step_gives_finite_image_gradient(tiny_mv):
    g = build_guidance(GuidanceConfig(name="mvdream", pretrained=str(tiny_mv), image_size=32, guidance_scale=50.0))
    with pytest.raises(ValueError, match="multiple of n_views=4"):
        g.sample_cameras(RenderSettings(batch_size=6), 0)
    torch.manual_seed(0)
    cams = g.sample_cameras(RenderSettings(batch_size=8), 0)
    assert len(cams) == 8
    images = torch.rand(8, 24, 24, 3, requires_grad=True)
    text = g.encode_prompts("a chair", ["front view"] * 8)
    assert torch.equal(text.cond[0], text.cond[5])  # no view suffixes: the camera tells the view
    out = g.sds_loss(images, text, step=0)
    out["loss_sds"].backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert out["t"][:4].unique().numel() == 1 and out["t"][4:].unique().numel() == 1  # one t per sample
    assert out["grad"].shape == (8, 4, 16, 16)


def test_deepfloyd_if_sds_step_and_precomputed_embeddings(tiny_if, tmp_path):
    from dreamcs.generate.guidance.deepfloyd_if import save_text_embeddings

    g = build_guidance(GuidanceConfig(name="deepfloyd-if", pretrained=str(tiny_if), image_size=16, guidance_scale=20.0))
    assert g.latent_shape() == (3, 16)
    text = g.encode_prompts("a chair", ["front view", "side view"])
    assert text.cond.shape == (2, 77, 32) and text.uncond_mask is None
    images = torch.rand(2, 24, 24, 3, requires_grad=True)
    torch.manual_seed(0)
    out = g.sds_loss(images, text, step=0)
    out["loss_sds"].backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert out["grad"].shape == (2, 3, 16, 16)  # learned variance channels dropped
    # the same embeddings from a file, without loading T5
    f = save_text_embeddings(tiny_if, ["a chair, front view", "a chair, side view", ""], tmp_path / "emb.safetensors")
    g2 = build_guidance(GuidanceConfig(name="deepfloyd-if", pretrained=str(tiny_if), image_size=16,
                                       text_embeddings=str(f)))
    assert g2._t5 is None
    t2 = g2.encode_prompts("a chair", ["front view", "side view"])
    assert torch.allclose(t2.cond, text.cond, atol=1e-2)
    with pytest.raises(KeyError, match="no embedding for 'a dog, front view'"):
        g2.encode_prompts("a dog", ["front view"])
