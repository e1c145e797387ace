"""The library prior's data: procedural + licensed objects, framing with margin, lights, view
suffixes, the resumable view cache, the held-out prompts that the data must never contain, and the
``library`` preset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamcs.prior.data import ViewDataConfig, build_view_dataset
from dreamcs.prior.sources import HELD_OUT_PROMPTS, view_items
from dreamcs.prior.views import framing_radius, render_object_views


def _cfg(**kw) -> ViewDataConfig:
    base = dict(limit=2, n_views=3, procedural=4, procedural_views=3, image_size=16, supersample=2, margin=0.1,
                light_random_share=0.5)
    return ViewDataConfig(**{**base, **kw})


def _library_cfg() -> ViewDataConfig:
    from dreamcs.config import load_config
    from dreamcs.prior.train import PriorTrainConfig, preset_path

    return load_config(PriorTrainConfig, preset_path("library")).data


def test_items_mix_real_and_procedural_categories():
    items = view_items(_cfg())
    assert [it.source for it in items] == ["real"] * 2 + ["procedural"] * 4
    assert [it.category for it in items[2:]] == ["airplane", "barrel", "bed", "bench"]
    assert items[2].key == "procedural:airplane:0" and items[2].caption is None
    assert all(it.n_views == 3 for it in items)
    with pytest.raises(ValueError, match="no objects"):
        view_items(_cfg(real=False, procedural=0))


def test_framing_keeps_every_view_inside_the_frame_with_margin():
    from dreamcs.data.procedural import make_object

    # a long object (a bench) nearly fills its bounding sphere: the worst case for the border
    mesh = make_object("bench", 0).mesh
    cfg = ViewDataConfig(image_size=32, margin=0.1)
    assert framing_radius(cfg) == pytest.approx(2.6 * np.sin(np.arctan(0.9 * np.tan(np.radians(25.0)))))
    framed = render_object_views(mesh.vertices, mesh.faces, cfg, 24, seed=0)["images"]
    # the sphere of radius R spans at most 90% of the half-frame: the outer 5% ring (1 px of 32) stays black
    ring = np.concatenate([framed[:, :1].reshape(24, -1), framed[:, -1:].reshape(24, -1),
                           framed[:, :, :1].reshape(24, -1), framed[:, :, -1:].reshape(24, -1)], 1)
    assert ring.max() < 0.02
    # the old box normalisation lets the same object reach the frame's edge
    full = render_object_views(mesh.vertices, mesh.faces, replace(cfg, margin=None), 24, seed=0)["images"]
    assert full[:, :, [0, -1]].max() > 0.1 or full[:, [0, -1]].max() > 0.1
    assert (framed > 0.02).mean() < (full > 0.02).mean()


def test_lights_and_view_labels():
    from dreamcs.data.procedural import make_object
    from dreamcs.render import VIEW_NAMES

    mesh = make_object("chair", 0).mesh
    cfg = ViewDataConfig(image_size=16, margin=0.1, light_random_share=0.5, azimuth_range=[0.0, 360.0])
    out = render_object_views(mesh.vertices, mesh.faces, cfg, 64, seed=3)
    assert 16 <= (out["light"] == 1).sum() <= 48 and set(np.unique(out["light"])) <= {0, 1}
    again = render_object_views(mesh.vertices, mesh.faces, replace(cfg, light_random_share=0.0), 64, seed=3)
    assert (again["light"] == 0).all()
    # the same cameras, other lights where a random light was drawn, the same images elsewhere
    rnd = out["light"] == 1
    assert np.allclose(out["azimuth"], again["azimuth"])
    assert np.abs(out["images"][rnd] - again["images"][rnd]).max() > 0.1
    # the suffix is the one SDS appends for that camera: front within 45 degrees of azimuth 0
    a = np.abs((out["azimuth"] + 180.0) % 360.0 - 180.0)
    names = [VIEW_NAMES[v] for v in out["view"]]
    assert all((n == "front") == (x <= 45.0) and (n == "back") == (x >= 135.0) for n, x in zip(names, a, strict=True))
    normal = render_object_views(mesh.vertices, mesh.faces, replace(cfg, normal_share=1.0, light_random_share=0.0),
                                 4, seed=3)
    assert (normal["light"] == 2).all() and normal["images"].max() > 0.3


def test_library_views_cache_and_resume_after_a_kill(tmp_path, monkeypatch):
    import dreamcs.prior.data as data_mod

    cfg = _cfg()
    monkeypatch.setattr(data_mod, "CHUNK", 2)
    calls = []
    real_render = data_mod.render_items

    def dying(c, items, first=0):
        calls.append(first)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while rendering the second part
        return real_render(c, items, first)

    monkeypatch.setattr(data_mod, "render_items", dying)
    with pytest.raises(KeyboardInterrupt):
        build_view_dataset(cfg, tmp_path)
    [parts] = list(tmp_path.glob("views-*.parts"))
    assert [p.name for p in parts.iterdir()] == ["part-00000.npz"]
    calls.clear()
    monkeypatch.setattr(data_mod, "render_items", real_render)
    monkeypatch.setattr(data_mod, "render_items", lambda c, items, first=0: (calls.append(first),
                                                                             real_render(c, items, first))[1])
    data = build_view_dataset(cfg, tmp_path)
    assert calls == [2, 4]  # the first part was not rendered again
    assert not parts.exists() and len(list(tmp_path.glob("views-*.npz"))) == 1
    assert len(data) == 18 and data.sources == ["real"] * 2 + ["procedural"] * 4
    assert all(c for c in data.captions) and data.categories[2:] == ["airplane", "barrel", "bed", "bench"]
    # a fresh, uninterrupted render gives the same arrays
    fresh = build_view_dataset(cfg, tmp_path / "fresh")
    assert np.array_equal(fresh.images, data.images) and np.array_equal(fresh.view, data.view)
    assert fresh.captions == data.captions


def test_held_out_prompts_are_known_categories_of_held_out_meshes():
    from dreamcs.data.procedural import CATEGORIES
    from dreamcs.data.validation import HELD_OUT_OBJECTS

    assert len(HELD_OUT_PROMPTS) >= 8 and len({p.prompt for p in HELD_OUT_PROMPTS}) == len(HELD_OUT_PROMPTS)
    for p in HELD_OUT_PROMPTS:
        assert p.mesh in HELD_OUT_OBJECTS and p.category in CATEGORIES


def test_training_data_never_contains_a_held_out_mesh(tmp_path):
    from dreamcs.data.validation import is_held_out

    items = view_items(_library_cfg())
    assert sum(it.source == "real" for it in items) >= 60 and sum(it.source == "procedural" for it in items) == 3300
    assert not [it.key for it in items if is_held_out(it.id) or is_held_out(it.key)]
    held = {Path(p.mesh).stem for p in HELD_OUT_PROMPTS}
    assert not held & {Path(it.key).stem for it in items if it.source == "real"}
    # a mesh folder holding a held-out object is refused, naming it
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "teapot.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "captions.csv").write_text("teapot,a teapot\n")
    with pytest.raises(ValueError, match="teapot.*held-out"):
        view_items(ViewDataConfig(meshes=str(tmp_path)))


def test_no_training_mesh_is_a_copy_of_a_held_out_ground_truth(shared_data):
    """Geometry, not names: no real training mesh lies within a small Chamfer distance of any
    held-out prompt's ground truth (both normalised, y up)."""
    import trimesh
    from scipy.spatial import cKDTree

    from dreamcs.data.validation import UP_AXIS
    from dreamcs.evaluate.geometry import sample_surface
    from dreamcs.mesh import load_mesh, normalize
    from dreamcs.prior.sources import load_item

    gts = [sample_surface(normalize(load_mesh(shared_data / "meshes" / p.mesh), up=UP_AXIS.get(p.mesh, "y")), 1500,
                          0)[0] for p in HELD_OUT_PROMPTS]
    train = [sample_surface(trimesh.Trimesh(*load_item(it)[:2], process=False), 1500, 0)[0]
             for it in view_items(replace(_library_cfg(), procedural=0))]
    trees = [cKDTree(t) for t in train]
    for p, g in zip(HELD_OUT_PROMPTS, gts, strict=True):
        tg = cKDTree(g)
        closest = min(0.5 * (tr.query(g)[0].mean() + tg.query(t)[0].mean()) for tr, t in zip(trees, train, strict=True))
        assert closest > 0.03, p.prompt
    # the check itself: a training mesh compared with itself is at distance ~0
    assert cKDTree(train[0]).query(train[0])[0].mean() == 0.0


def test_heldout_command_writes_a_ground_truth_map_janus_reads(shared_data, tmp_path):
    from typer.testing import CliRunner

    from dreamcs.cli import app
    from dreamcs.evaluate.janus import load_gt_map
    from dreamcs.mesh import load_mesh

    res = CliRunner().invoke(app, ["prior", "heldout", "--out", str(tmp_path / "gt"), "--meshes", str(shared_data / "meshes")])
    assert res.exit_code == 0, res.output
    gt = load_gt_map(tmp_path / "gt" / "gt.json")
    assert list(gt) == [p.prompt for p in HELD_OUT_PROMPTS]
    assert (tmp_path / "gt" / "prompts.txt").read_text().splitlines() == list(gt)
    from dreamcs.mesh import normalize

    teapot = load_mesh(gt["a teapot"])  # z-up on disk, y-up here: its height is the file's z extent
    raw = normalize(load_mesh(shared_data / "meshes" / "greg_turk_ply/teapot.ply"))
    ext, raw_ext = teapot.bounds[1] - teapot.bounds[0], raw.bounds[1] - raw.bounds[0]
    assert np.abs(teapot.vertices).max() <= 1.0 + 1e-6
    assert ext[1] == pytest.approx(raw_ext[2], abs=1e-4) and abs(ext[1] - raw_ext[1]) > 0.1
    res = CliRunner().invoke(app, ["prior", "heldout", "--out", str(tmp_path / "x"), "--meshes", str(tmp_path)])
    assert res.exit_code == 2 and "not found" in res.output


def test_library_preset_loads_and_unknown_presets_are_named(tmp_path):
    from typer.testing import CliRunner

    from dreamcs.cli import app
    from dreamcs.prior.train import preset_path

    d = _library_cfg()
    assert d.procedural == 3300 and d.margin == 0.1 and d.distance_range == [2.6, 2.6]
    assert preset_path("embedded") is None
    with pytest.raises(FileNotFoundError, match="library"):
        preset_path("nope")
    res = CliRunner().invoke(app, ["prior", "train", "--out", str(tmp_path / "r"), "--preset", "nope"])
    assert res.exit_code == 2 and "nope" in res.output


def test_training_on_library_data_with_view_suffixes(tmp_path):
    from dreamcs.prior.train import PriorTrainConfig, PriorTrainer

    cfg = PriorTrainConfig(data=_cfg(), text_encoder="hash:32", block_out_channels=[8, 16], steps=3, batch_size=8,
                           save_every=3, log_every=1, warmup_steps=1, cache_dir=str(tmp_path / "cache"), card=False,
                           p_view=0.5)
    trainer = PriorTrainer(cfg, tmp_path / "run", show_progress=False)
    result = trainer.run()
    assert result.step == 3 and np.isfinite(result.final_loss)
    suffixed = [t for t in trainer._text_cache if t.endswith(" view")]
    assert suffixed and all(t.rsplit(", ", 1)[1] in ("front view", "side view", "back view") for t in suffixed)
    # a text's tokens do not depend on the batch it was encoded with
    tokens, mask = trainer.encode(["a chair", ""])
    alone, _ = trainer.encode(["a chair"])
    assert torch.equal(tokens[0], alone[0]) and mask.shape == (2, cfg.max_tokens)
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
