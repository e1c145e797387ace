"""The reward's extra per-face channels: isolation reads floating parts and not touching ones;
``patch_extra_channels`` gives the first n in order; datasets give what a model asks for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from dreamcs.mesh import fuse, normalize, patch_boundary
from dreamcs.mesh.channels import N_EXTRA, patch_extra_channels, patch_isolation


def _layout(*parts: trimesh.Trimesh):
    m = normalize(trimesh.util.concatenate(list(parts)))
    pm = fuse(m, 64, 64)
    return torch.as_tensor(pm.vertices, dtype=torch.float32), torch.as_tensor(np.asarray(pm.faces))


def _blob_share(v: torch.Tensor, f: torch.Tensor, iso: torch.Tensor, centre: np.ndarray) -> tuple[float, float]:
    """Mean isolation of the faces near ``centre`` and of the others."""
    c = v[f.reshape(-1, 3)].mean(1).numpy()
    near = np.linalg.norm(c - centre, axis=1) < 0.2
    iso = iso.reshape(-1).numpy()
    return float(iso[near].mean()), float(iso[~near].mean())


def test_isolation_reads_a_floating_part_and_not_a_touching_one():
    body = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    far = trimesh.creation.icosphere(subdivisions=1, radius=0.12)
    far.apply_translation([0, 0, 1.6])  # hovers 0.48 above the body
    v, f = _layout(body, far)
    iso = patch_isolation(v, f)
    assert iso.shape == (*f.shape[:2], 1) and ((iso >= 0) & (iso <= 1)).all()
    centre = v[f.reshape(-1, 3)].mean(1)[:, 2].argmax()  # the blob is the top of the layout
    blob, rest = _blob_share(v, f, iso, v[f.reshape(-1, 3)].mean(1)[centre].numpy())
    assert blob == pytest.approx(1.0) and rest == 0.0
    touching = trimesh.creation.icosphere(subdivisions=1, radius=0.12)
    touching.apply_translation([0, 0, 1.05])  # half sunk into the body: a part, not a floater
    v2, f2 = _layout(body, touching)
    assert patch_isolation(v2, f2).max() == 0.0


def test_extra_channels_come_in_order():
    body = trimesh.creation.icosphere(subdivisions=3)
    holed = trimesh.Trimesh(body.vertices, body.faces[body.triangles_center[:, 1] < 0.6])
    v, f = _layout(holed)
    three = patch_extra_channels(v, f)
    assert three.shape == (*f.shape[:2], N_EXTRA)
    torch.testing.assert_close(three[..., :2], patch_boundary(v, f, ragged=True))
    torch.testing.assert_close(three[..., 2:], patch_isolation(v, f))
    assert patch_extra_channels(v, f, 1).shape[-1] == 1 and patch_extra_channels(v, f, 0).shape[-1] == 0
    with pytest.raises(ValueError, match="extra channels"):
        patch_extra_channels(v, f, N_EXTRA + 1)


def test_datasets_give_what_a_model_asks_for(tmp_path):
    from dreamcs.data.dataset import ConcatMeshPref, ask_extra_channels

    class Part:
        extra_channels = 2

    a, b = Part(), Part()
    both = ConcatMeshPref.__new__(ConcatMeshPref)
    both.parts = [a, b]
    ask_extra_channels(both, 3)
    assert a.extra_channels == b.extra_channels == 3
    ask_extra_channels(a, 1)  # never lowered: other readers may need more
    assert a.extra_channels == 3
