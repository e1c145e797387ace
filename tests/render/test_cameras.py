"""Cameras: look-at geometry, sampling, DreamFusion view suffixes."""

from __future__ import annotations

import pytest
import torch

from dreamcs.render import Cameras, sample_cameras, turntable, view_directions, view_prompts, view_suffixes


def test_frames_look_at_origin_y_up() -> None:
    cams = Cameras(torch.tensor([0.0, 30.0, 90.0]), torch.tensor([0.0, 90.0, 45.0]), 2.6, 50.0)
    eye, right, up, forward = cams.frames()
    assert torch.allclose(eye[0], torch.tensor([0.0, 0.0, 2.6]), atol=1e-6)
    assert torch.allclose(eye.norm(dim=1), torch.full((3,), 2.6))
    assert torch.allclose(forward, -eye / 2.6, atol=1e-6)
    rot = torch.stack([right, up, forward], 1)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(
        torch.linalg.det(rot), torch.full((3,), -1.0), atol=1e-5
    )  # x right, y up, z into the view
    assert (up[:2, 1] > 0).all()  # world y is up on screen
    # the origin projects to the centre; +x appears right and +y up from the front
    ndc = cams[0].project(torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))[0]
    assert torch.allclose(ndc[0, :2], torch.zeros(2), atol=1e-6) and ndc[0, 2] == pytest.approx(2.6)
    assert ndc[1, 0] > 0 and ndc[2, 1] > 0


def test_sample_cameras_ranges_and_seed() -> None:
    a = sample_cameras(64, (0, 30), (-90, 90), (2, 3), (40, 60), torch.Generator().manual_seed(3))
    b = sample_cameras(64, (0, 30), (-90, 90), (2, 3), (40, 60), torch.Generator().manual_seed(3))
    assert len(a) == 64 and torch.equal(a.azimuth, b.azimuth)
    assert a.elevation.min() >= 0 and a.elevation.max() <= 30 and a.distance.min() >= 2
    assert a.fov.max() <= 60
    with pytest.raises(ValueError, match="empty"):
        sample_cameras(2, elevation_range=(10, 0))


def test_turntable_and_view_suffixes() -> None:
    t = turntable(8)
    assert t.azimuth.tolist() == [0, 45, 90, 135, 180, 225, 270, 315]
    assert view_directions(t) == ["front", "front", "side", "back", "back", "back", "side", "front"]
    over = Cameras(torch.tensor([70.0, -20.0]), torch.tensor([180.0, -100.0]), 2.6, 50.0)
    assert view_prompts("a chair", over) == ["a chair, overhead view", "a chair, side view"]
    assert view_suffixes(over) == ["overhead view", "side view"]


def test_bad_cameras() -> None:
    with pytest.raises(ValueError, match="distance"):
        Cameras(0.0, 0.0, -1.0, 50.0)
    with pytest.raises(ValueError, match="batch size"):
        Cameras(torch.zeros(2), torch.zeros(3), 2.6, 50.0)
