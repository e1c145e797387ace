"""The representation floor: a recipe's field fitted to a known mesh, on closed and open shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.evaluate.floor import floor_table, representation_floor
from dreamcs.generate.dmtet import DMTetConfig


def _geometry(resolution: int, **kw) -> DMTetConfig:
    return DMTetConfig(grid_resolution=resolution, grid_scale=1.15, parameterization="explicit", **kw)


def test_a_closed_box_floor_is_small_and_falls_with_the_grid():
    box = trimesh.creation.box(extents=(2.0, 1.2, 0.8))
    coarse = representation_floor(_geometry(4), box)
    fine = representation_floor(_geometry(16), box)
    assert fine["chamfer"] < 0.03
    assert fine["chamfer"] < coarse["chamfer"]
    assert fine["target"] in ("signed", "shell") and fine["faces"] > 0


def _half_cylinder() -> trimesh.Trimesh:
    """An open half-cylinder shell (radius 1, length 2): no inside."""
    theta, zs = np.linspace(0.0, np.pi, 17), np.linspace(-1.0, 1.0, 9)
    verts = np.array([[np.cos(t), np.sin(t), z] for z in zs for t in theta])
    n, faces = len(theta), []
    for j in range(len(zs) - 1):
        for i in range(n - 1):
            a, b, c, d = j * n + i, j * n + i + 1, (j + 1) * n + i, (j + 1) * n + i + 1
            faces += [[a, b, d], [a, d, c]]
    return trimesh.Trimesh(verts, faces, process=False)


def test_an_open_shell_needs_the_shell_target():
    # the closest-point sign has no inside to find: beyond the open edges it continues the surface
    # to the grid's walls; the shell target hugs the sheet
    r = representation_floor(_geometry(12), _half_cylinder())
    assert r["target"] == "shell"
    assert r["chamfer_shell"] < 0.75 * r["chamfer_signed"]


def test_the_mlp_field_and_a_smaller_placement():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    geo = DMTetConfig(grid_resolution=12, grid_scale=1.15, parameterization="mlp", n_frequencies=3, sphere_bias=1.0)
    r = representation_floor(geo, sphere, steps=60, size=0.6)
    assert np.isfinite(r["chamfer"]) and r["chamfer"] < 0.15
    with pytest.raises(ValueError, match="size"):
        representation_floor(geo, sphere, size=1.5)


def test_a_nerf_recipe_is_refused_by_name():
    with pytest.raises(ValueError, match="not a DMTet field"):
        representation_floor({"name": "nerf"}, trimesh.creation.box())


def test_floor_table_names_a_broken_ground_truth(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("this is no mesh\n")
    with pytest.raises(ValueError, match="a box.*bad.obj"):
        floor_table(_geometry(6), {"a box": bad}, log=lambda s: None)


def test_cli_writes_the_table(tmp_path):
    trimesh.creation.box(extents=(1.0, 2.0, 1.0)).export(tmp_path / "box.ply")
    (tmp_path / "gt.json").write_text(json.dumps({"a box": "box.ply"}))
    res = CliRunner().invoke(app, ["evaluate", "floor", "--gt", str(tmp_path / "gt.json"), "-o", str(tmp_path / "out"),
                                   "geometry.grid_resolution=8", "geometry.parameterization=explicit"])
    assert res.exit_code == 0, res.output
    assert "| a box |" in res.output
    saved = json.loads((tmp_path / "out" / "floor.json").read_text())
    assert saved["grid_resolution"] == 8 and saved["per_prompt"]["a box"]["chamfer"] < 0.1
