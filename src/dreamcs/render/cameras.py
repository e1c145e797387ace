"""Cameras on a sphere around the origin: elevation, azimuth, distance, field of view.

Conventions: y is up; azimuth 0 looks at the object's front from +z, azimuth 90 from +x;
elevation 90 looks straight down. Angles are in degrees, ``fov`` is the vertical field of view.
Camera space: x right, y up, z the depth in front of the camera (positive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: The offline prior's training renders (see ../shared/notes/offline-prior.md).
DEFAULT_DISTANCE = 2.6
DEFAULT_FOV = 50.0


@dataclass
class Cameras:
    """A batch of B look-at-origin cameras; every field is (B,) float, angles in degrees."""

    elevation: torch.Tensor
    azimuth: torch.Tensor
    distance: torch.Tensor
    fov: torch.Tensor

    def __post_init__(self) -> None:
        fields = [torch.as_tensor(x, dtype=torch.float32) for x in self._fields()]
        fields = [f.reshape(-1) for f in fields]
        b = max(f.shape[0] for f in fields)
        for f in fields:
            if f.shape[0] not in (1, b):
                raise ValueError(f"camera fields must share one batch size, got {f.shape[0]} and {b}")
        self.elevation, self.azimuth, self.distance, self.fov = (f.expand(b).clone() for f in fields)
        if (self.distance <= 0).any() or ((self.fov <= 0) | (self.fov >= 180)).any():
            raise ValueError("camera distance must be > 0 and fov in (0, 180) degrees")

    def _fields(self) -> tuple:
        return (self.elevation, self.azimuth, self.distance, self.fov)

    def __len__(self) -> int:
        return self.elevation.shape[0]

    def __getitem__(self, idx: int | slice | torch.Tensor) -> Cameras:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(*(f[idx] for f in self._fields()))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Cameras:
        out = Cameras.__new__(Cameras)
        out.elevation, out.azimuth, out.distance, out.fov = (
            f.to(device=device, dtype=dtype or f.dtype) for f in self._fields()
        )
        return out

    def frames(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """eye (B, 3), right (B, 3), up (B, 3), forward (B, 3); orthonormal, right-handed."""
        el, az = torch.deg2rad(self.elevation), torch.deg2rad(self.azimuth)
        ce, se, ca, sa = el.cos(), el.sin(), az.cos(), az.sin()
        eye = self.distance.unsqueeze(1) * torch.stack([ce * sa, se, ce * ca], 1)
        forward = -torch.stack([ce * sa, se, ce * ca], 1)
        # right from the azimuth alone, so looking straight down is still well defined
        right = torch.stack([ca, torch.zeros_like(ca), -sa], 1)
        up = torch.cross(right, forward, dim=1)
        return eye, right, up, forward

    def focal(self) -> torch.Tensor:
        """(B,) focal length in NDC units: 1 / tan(fov / 2)."""
        return 1.0 / torch.tan(torch.deg2rad(self.fov) / 2)

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points (V, 3) or (B, V, 3) -> camera space (B, V, 3): x right, y up, z depth."""
        eye, right, up, forward = (t.to(points.dtype) for t in self.frames())
        if points.ndim == 2:
            points = points.unsqueeze(0)
        rel = points - eye.unsqueeze(1)
        rot = torch.stack([right, up, forward], 1)  # (B, 3, 3), rows are the camera axes
        return rel @ rot.transpose(1, 2)

    def project(self, points: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
        """World points -> (B, V, 3): NDC x, y in [-1, 1] across the image and the depth z."""
        cam = self.to_camera(points)
        f = self.focal().to(points.dtype).view(-1, 1)
        z = cam[..., 2]
        safe = z.clamp(min=1e-6)
        return torch.stack([f / aspect * cam[..., 0] / safe, f * cam[..., 1] / safe, z], -1)


def sample_cameras(
    batch: int,
    elevation_range: tuple[float, float] = (-10.0, 40.0),
    azimuth_range: tuple[float, float] = (-180.0, 180.0),
    distance_range: tuple[float, float] = (DEFAULT_DISTANCE, DEFAULT_DISTANCE),
    fov_range: tuple[float, float] = (DEFAULT_FOV, DEFAULT_FOV),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Cameras:
    """B cameras, each field uniform in its range; the same generator seed gives the same cameras.

    Drawn on the CPU (from ``generator`` or the global seed), then moved to ``device``.
    """

    def u(lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = float(lo_hi[0]), float(lo_hi[1])
        if hi < lo:
            raise ValueError(f"camera range ({lo}, {hi}) is empty")
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    cams = Cameras(u(elevation_range), u(azimuth_range), u(distance_range), u(fov_range))
    return cams if device is None else cams.to(device)


def turntable(
    n: int, elevation: float = 20.0, distance: float = DEFAULT_DISTANCE, fov: float = DEFAULT_FOV
) -> Cameras:
    """n cameras evenly spaced in azimuth, starting at the front (azimuth 0)."""
    az = torch.arange(n, dtype=torch.float32) * (360.0 / n)
    return Cameras(torch.full((n,), float(elevation)), az, torch.tensor(distance), torch.tensor(fov))


VIEW_NAMES = ("front", "side", "back", "overhead")


def view_directions(
    cameras: Cameras, front_half_width: float = 45.0, overhead_elevation: float = 60.0
) -> list[str]:
    """DreamFusion's view names per camera: overhead above 60 degrees, else front/side/back."""
    out = []
    for el, az in zip(cameras.elevation.tolist(), cameras.azimuth.tolist(), strict=True):
        a = abs((az + 180.0) % 360.0 - 180.0)  # angular distance from the front, in [0, 180]
        if el > overhead_elevation:
            out.append("overhead")
        elif a <= front_half_width:
            out.append("front")
        elif a >= 180.0 - front_half_width:
            out.append("back")
        else:
            out.append("side")
    return out


def view_suffixes(cameras: Cameras) -> list[str]:
    """``"front view"`` / ``"side view"`` / ``"back view"`` / ``"overhead view"`` per camera."""
    return [f"{d} view" for d in view_directions(cameras)]


def view_prompts(prompt: str, cameras: Cameras) -> list[str]:
    """``"<prompt>, <front|side|back|overhead> view"`` per camera (DreamFusion's suffixes)."""
    return [f"{prompt}, {d} view" for d in view_directions(cameras)]


def fov_for_extent(extent: float, distance: float = DEFAULT_DISTANCE) -> float:
    """The vertical fov (degrees) at which a sphere of radius ``extent`` just fills the view."""
    return 2.0 * math.degrees(math.asin(min(extent / distance, 1.0)))
