"""Colour: the albedo field, point-light shading, the shading schedule, and a coloured export."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import trimesh

from dreamcs.config import load_config
from dreamcs.generate.appearance import pick_shading, sample_lights
from dreamcs.generate.config import GenerateConfig, RenderSettings, resolve_config_path
from dreamcs.generate.dmtet import DMTet, DMTetConfig
from dreamcs.generate.pipeline import GeneratePipeline
from dreamcs.render import Cameras, render, render_views


def _sphere() -> tuple[torch.Tensor, torch.Tensor]:
    m = trimesh.creation.icosphere(2, radius=0.8)
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)


FRONT = Cameras(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([2.6]), torch.tensor([50.0]))


def test_per_vertex_colours_and_world_positions() -> None:
    v, f = _sphere()
    red = torch.tensor([1.0, 0.0, 0.0]).expand_as(v)
    out = render(v, f, FRONT, 32, albedo=red, shading="albedo")
    mask = out["mask"][0, ..., 0] > 0
    alpha = out["alpha"][0]
    img = (out["image"][0] / alpha.clamp(min=1e-6))[alpha[..., 0] > 0.01]  # un-premultiplied over black
    assert torch.allclose(img, torch.tensor([1.0, 0.0, 0.0]).expand_as(img), atol=1e-3)
    r = out["position"][0][mask].norm(dim=-1)  # points on the (flat-faceted) sphere of radius 0.8
    assert r.max() < 0.8 + 1e-4 and r.min() > 0.75
    assert out["position"][0][~mask].abs().max() == 0
    with pytest.raises(ValueError, match="needs colours"):
        render(v, f, FRONT, 16, shading="albedo")


def test_point_light_lights_the_side_it_faces() -> None:
    v, f = _sphere()
    grey = torch.full_like(v, 0.5)
    right = render(v, f, FRONT, 32, albedo=grey, shading="lambertian", ambient=0.0, two_sided=False,
                   light_positions=torch.tensor([[3.0, 0.0, 0.0]]))["image"][0, 16, :, 0]
    assert right[:16].max() == 0 and right[16:].max() > 0.25  # +x is the image's right: lit, the left dark
    textureless = render(v, f, FRONT, 16, albedo=torch.zeros_like(v), shading="textureless")["image"]
    assert textureless.max() > 0.5  # the colours are ignored: grey surface under the light


def test_dmtet_albedo_field_gets_gradients() -> None:
    torch.manual_seed(0)
    field = DMTet(DMTetConfig(grid_resolution=8, appearance="albedo"))
    assert field.has_albedo and not DMTet(DMTetConfig(grid_resolution=4)).has_albedo
    verts, faces = field()
    out = render(verts, faces, FRONT, 24, albedo=field.albedo, shading="lambertian")
    out["image"][..., 0].mean().backward()
    grads = [p.grad for p in field.albedo_net.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    with pytest.raises(ValueError, match="appearance"):
        DMTet(DMTetConfig(grid_resolution=4, appearance="rgb"))


def test_dreamfusion_shading_schedule_and_lights() -> None:
    r = RenderSettings(shading="dreamfusion", ambient_only_steps=5, light="random")
    torch.manual_seed(0)
    assert {pick_shading(r, s) for s in range(5)} == {"albedo"}
    later = [pick_shading(r, 100) for _ in range(400)]
    share = {k: later.count(k) / 400 for k in ("albedo", "textureless", "lambertian")}
    assert abs(share["albedo"] - 0.25) < 0.07 and abs(share["textureless"] - 0.375) < 0.07
    cams = Cameras(torch.zeros(64), torch.zeros(64), torch.full((64,), 2.5), torch.full((64,), 50.0))
    lights = sample_lights(cams, r)
    d = lights.norm(dim=-1)
    assert lights.shape == (64, 3) and d.min() >= 0.8 - 1e-5 and d.max() <= 1.5 + 1e-5
    assert lights[:, 2].mean() > 0.2  # around the camera (at +z)
    assert sample_lights(cams, RenderSettings()) is None


def test_colour_shading_without_albedo_is_a_config_error() -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), ["prompt=a chair", "render.shading=lambertian"])
    with pytest.raises(ValueError, match="appearance=albedo"):
        cfg.validate()


def test_colour_run_exports_a_coloured_glb(tmp_path) -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), [
        "prompt=a red chair", "steps=3", "save_every=3", "mesh_every=0", "geometry.grid_resolution=8",
        "geometry.appearance=albedo", "render.shading=dreamfusion", "render.ambient_only_steps=1",
        "render.light=random", "render.batch_size=1", "render.resolution=32", "guidance.channels=3",
        "render.turntable_views=2", "render.turntable_resolution=32",
        *(["texture_size=64"] if importlib.util.find_spec("xatlas") else [])])
    out = GeneratePipeline(cfg, tmp_path / "run", show_progress=False)()
    assert out.metrics[0]["shading"] == "albedo" and all(np.isfinite(r["loss"]) for r in out.metrics)
    glb = trimesh.load(out.final_glb, force="mesh", process=False)
    assert glb.visual.kind == "vertex"
    rgb = np.asarray(glb.visual.vertex_colors)[:, :3].astype(float)
    assert len(np.unique(rgb, axis=0)) > 10 and rgb.std(0).max() > 2.0  # not one constant colour (0-255)
    obj = (tmp_path / "run" / "final.obj").read_text().splitlines()
    assert len(next(ln for ln in obj if ln.startswith("v ")).split()) == 7  # v x y z r g b
    if cfg.texture_size:
        assert trimesh.load(tmp_path / "run" / "textured.glb", force="mesh").visual.kind == "texture"


def test_turntable_frames_the_whole_mesh() -> None:
    # a wide, off-centre box (a bed): the fitted turntable keeps it off the image border
    box = trimesh.creation.box(extents=(2.0, 0.6, 1.2))
    box.apply_translation((0.3, 0.2, 0.0))
    imgs = render_views(box.vertices, box.faces, n_views=4, resolution=48)
    border = np.concatenate([imgs[:, 0], imgs[:, -1], imgs[:, :, 0], imgs[:, :, -1]], 1)
    assert border.max() == 0 and imgs.max() > 0
    cut = render_views(box.vertices, box.faces, n_views=4, resolution=48, distance=2.0)
    assert np.concatenate([cut[:, :, 0], cut[:, :, -1]], 1).max() > 0  # the old fixed framing cuts it


def test_ray_directions_and_the_learned_background() -> None:
    from dreamcs.generate.background import Background, ray_directions

    cams = Cameras(torch.tensor([20.0]), torch.tensor([30.0]), torch.tensor([2.6]), torch.tensor([50.0]))
    d = ray_directions(cams, 9, 9)
    _, _, up, forward = cams.frames()
    assert torch.allclose(d[0, 4, 4], forward[0], atol=1e-6)  # the centre pixel looks ahead
    assert (d[0, 0, 4] @ up[0]) > 0 > (d[0, 8, 4] @ up[0])  # row 0 is the top
    half = float(torch.rad2deg(torch.acos((d[0, 0, 4] @ forward[0]).clamp(max=1))))
    assert abs(half - 25.0 * 8 / 9) < 0.6  # the top row's centre is (8/9) of fov/2 away from the axis
    bg = Background("mlp", (0.5, 0.5, 0.5))
    rgb = bg(cams, 8, 8)
    assert rgb.shape == (1, 8, 8, 3) and (rgb - 0.5).abs().max() < 0.2  # starts near the solid colour
    rgb.mean().backward()
    assert bg.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="background_model"):
        Background("image")


def test_colour_run_with_learned_background_resumes_exactly(tmp_path) -> None:
    over = ["prompt=a red chair", "steps=4", "save_every=2", "mesh_every=0", "geometry.grid_resolution=8",
            "geometry.appearance=albedo", "render.shading=lambertian", "render.light=random",
            "render.background_model=mlp", "render.batch_size=1", "render.resolution=24", "guidance.channels=3",
            "render.turntable_views=2", "render.turntable_resolution=24"]
    full = GeneratePipeline(load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), over), tmp_path / "a",
                            show_progress=False)()
    half = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), [*over, "steps=2"])
    GeneratePipeline(half, tmp_path / "b", show_progress=False)()
    resumed = GeneratePipeline(load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), over), tmp_path / "b",
                               show_progress=False)(resume=True)
    from safetensors import safe_open

    with safe_open(str(sorted((tmp_path / "b" / "checkpoints").glob("*.safetensors"))[-1]), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("model.background.net") for k in keys)
    assert any(k.startswith("model.field.albedo_net") for k in keys)
    assert [r["loss"] for r in resumed.metrics] == pytest.approx([r["loss"] for r in full.metrics], rel=1e-5)


def test_baked_texture_matches_the_field(tmp_path) -> None:
    pytest.importorskip("xatlas")
    from PIL import Image

    from dreamcs.generate.texture import bake_texture, write_textured

    v, f = _sphere()
    mesh = bake_texture(v, f, lambda p: (p + 1) / 2, size=128)
    paths = write_textured(mesh, tmp_path / "textured")
    assert {"obj", "mtl", "png", "glb"} <= set(paths)
    assert "map_Kd" in paths["mtl"].read_text()
    back = trimesh.load(paths["obj"], force="mesh", process=False)
    img = np.asarray(Image.open(paths["png"])).astype(float) / 255
    uv = back.visual.uv[back.faces].mean(1)  # face centres: inside their chart
    rows, cols = ((1 - uv[:, 1]) * 128).astype(int), (uv[:, 0] * 128).astype(int)
    expect = (back.vertices[back.faces].mean(1) + 1) / 2
    assert np.abs(img[rows, cols] - expect).max() < 0.05  # the texel holds the field at that point
    assert trimesh.load(paths["glb"], force="mesh").visual.kind == "texture"


def test_texture_size_needs_colours() -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), ["prompt=a chair", "texture_size=64"])
    with pytest.raises(ValueError, match="texture_size"):
        cfg.validate()


def test_a_grey_prior_warns_that_colours_learn_only_grey(tmp_path) -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), [
        "prompt=a chair", "steps=1", "save_every=1", "mesh_every=0", "geometry.grid_resolution=6",
        "geometry.appearance=albedo", "render.batch_size=1", "render.resolution=16", "render.turntable_views=1",
        "render.turntable_resolution=16"])  # dmtet-tiny's prior has channels: 1
    with pytest.warns(UserWarning, match="grey level"):
        GeneratePipeline(cfg, tmp_path / "run", show_progress=False)()
