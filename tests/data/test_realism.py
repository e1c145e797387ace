"""Realism variants: clean meshes that look like real ones. Each keeps the shape (same surface, no
face moved off it), opens the mesh the way its name says (straight boundaries, not ragged ones), is
deterministic per seed; the ``offline-realism`` preset labels them preferred and splits every object
as the ``offline`` preset does."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from dreamcs.data.presets import construction_scores, offline_items, realism_items
from dreamcs.data.realism import REALISM, apply_realism
from dreamcs.data.store import split_for
from dreamcs.mesh import load_mesh, normalize


@pytest.fixture(scope="module")
def chair(sample_dir):
    return normalize(load_mesh(sample_dir / "blockmesh_test__s_chair_modern.obj"))


def _boundary_edges(m: trimesh.Trimesh) -> int:
    """Edges used by one face, after merging exact duplicate vertices (as the fusion does)."""
    m = m.copy()
    m.merge_vertices(digits_vertex=10)
    return int((np.unique(m.edges_sorted, axis=0, return_counts=True)[1] == 1).sum())


@pytest.mark.parametrize("name", sorted(REALISM.names()))
def test_variant_keeps_the_surface_and_is_deterministic(chair, name):
    out = apply_realism(chair, name, seed=3)
    assert np.isfinite(out.vertices).all() and len(out.faces) >= 0.5 * len(chair.faces)
    # the variant's surface is part of the clean one: nothing moved off it, nothing added
    dense = trimesh.sample.sample_surface_even(chair, 200_000, seed=0)[0]
    pts = trimesh.sample.sample_surface(out, 2000, seed=1)[0]
    assert cKDTree(dense).query(pts)[0].max() < 0.02
    assert 0.85 * chair.area < out.area < chair.area * (1 + 1e-6)
    again = apply_realism(chair, name, seed=3)
    assert np.array_equal(out.vertices, again.vertices) and np.array_equal(out.faces, again.faces)
    assert _boundary_edges(out) > _boundary_edges(chair)  # it opens the mesh


def test_open_base_cuts_along_one_straight_plane(chair):
    import torch

    from dreamcs.mesh import fuse, patch_boundary

    out = apply_realism(chair, "open_base", seed=0)
    lo, hi = chair.bounds[:, 1]
    cut = out.bounds[0, 1]
    assert lo < cut <= lo + 0.06 * (hi - lo) + 1e-9  # only a thin bottom slice went
    m = out.copy()
    m.merge_vertices()
    edges, counts = np.unique(m.edges_sorted, axis=0, return_counts=True)
    ends = m.vertices[edges[counts == 1]]
    assert len(ends) and np.abs(ends[..., 1] - cut).max() < 1e-9  # every new boundary edge lies in the cut plane
    # the cut runs straight: the boundary barely turns, where a torn-out region zig-zags
    pm = fuse(out, 256, 64)
    b = patch_boundary(torch.as_tensor(pm.vertices, dtype=torch.float32), torch.as_tensor(pm.faces), ragged=True)
    b = b.reshape(-1, 2).numpy()
    assert b[b[:, 0] > 0, 1].mean() < 0.15


def test_unweld_splits_along_creases_not_smooth_surfaces(chair):
    sphere = normalize(trimesh.creation.icosphere(3))
    out = apply_realism(sphere, "unweld", seed=0)
    assert _boundary_edges(out) == 0  # no crease on a sphere: nothing to split
    box = normalize(trimesh.creation.box().subdivide().subdivide())
    out = apply_realism(box, "unweld", seed=0)
    # the six sides come apart: every edge on the 12 crease lines is now a boundary on both sides
    assert len(trimesh.graph.connected_components(out.face_adjacency, nodes=np.arange(len(out.faces)))) == 6
    assert len(out.vertices) > len(box.vertices)
    nudge = cKDTree(box.vertices).query(out.vertices)[0]
    assert 0 < nudge.max() < 1e-3  # parts moved apart by a hair only, so no exact duplicate is merged back


def test_offline_realism_items_are_labelled_and_split_like_offline():
    items = realism_items(n_procedural=40)
    base = {it.object_id for it in offline_items(n_procedural=40)}
    assert items and {it.object_id for it in items} <= base
    for it in items:
        assert it.extra.get("realism") in REALISM.names()
        s = construction_scores(it.defect, it.extra.get("severity"))["overall"]
        assert (s >= 4.0) == (it.defect is None)
    # a procedural object: one clean variant and one damaged copy of it; a licensed one: both variants
    proc = [it for it in items if it.source.startswith("procedural")]
    assert len(proc) == 80 and sum(it.defect is None for it in proc) == 40
    # one rule splits both presets: an object's realism items land where its offline items do
    assert all(split_for(it.object_id) in ("train", "val", "test") for it in items)
    licensed = {it.extra["realism"] for it in items if it.source == "licensed_clean"}
    assert licensed == set(REALISM.names())


def test_the_build_applies_the_variant(sample_dir):
    from dreamcs.data.build import BuildConfig, prepare_mesh
    from dreamcs.data.sources import SourceItem

    path = str(sample_dir / "blockmesh_test__s_chair_modern.obj")
    cfg = BuildConfig()
    item = SourceItem(id="chair", path=path, prompt="a chair", source="licensed_clean", object_id="chair")
    clean = prepare_mesh(item, cfg)
    item.id, item.extra = "chair~unweld", {"realism": "unweld"}
    variant = prepare_mesh(item, cfg)
    assert _boundary_edges(variant) > _boundary_edges(clean) + 50
