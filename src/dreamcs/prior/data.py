"""The prior's training views: every captioned mesh rendered from random cameras the way the SDS
renderer of the ``dmtet-embedded`` preset renders (flat grey Lambertian lit from the camera, black
background, distance 2.6, fov 50, y up), supersampled and shrunk to ``image_size`` the way
guidance shrinks SDS renders.

A mesh folder holds ``captions.csv`` (``id,caption``, no header) and ``meshes/<id>.obj`` (the
embedded 3D-MeshPref set by default). Renders are cached in an ``.npz`` named by a hash of the
settings and the mesh files, written atomically, so a rerun (or a resumed training) reuses them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamcs.utils import atomic_write_bytes

#: bump when the rendering changes, so old caches are not reused
CACHE_VERSION = 1

#: head nouns that make a poor "a {category}" caption, mapped to a better one
_CATEGORY_FIX = {"frame": "door", "stairs": "staircase", "bear": "teddy bear"}


def category_of(caption: str) -> str:
    """A coarse category from a caption: its head noun (the last word before "with ..."),
    e.g. "a round bar table" -> "table", "a designer chair with a sloped back" -> "chair"."""
    head = re.split(r"\s+(?:with|for|on|in)\s+", caption.strip().lower())[0]
    words = re.findall(r"[a-z0-9][a-z0-9\-]*", head)
    if not words:
        raise ValueError(f"caption {caption!r} has no words to take a category from")
    return _CATEGORY_FIX.get(words[-1], words[-1])


def article(noun: str) -> str:
    """``"a chair"`` / ``"an armchair"``."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@dataclass
class ViewDataConfig:
    """Which meshes, and how they are rendered."""

    meshes: str | None = None
    """A folder with captions.csv and meshes/<id>.obj; None = the embedded set in the package."""
    limit: int | None = None
    """Use only the first ``limit`` meshes (sorted by id): for tests and quick runs."""
    n_views: int = 64
    """Random cameras per mesh."""
    image_size: int = 32
    """Side of the stored (training) images."""
    supersample: int = 2
    """Render at ``image_size * supersample`` and shrink with the antialiased bilinear filter that
    guidance applies to SDS renders (the dmtet-embedded preset renders 64 px for a 32 px prior)."""
    elevation_range: list[float] = field(default_factory=lambda: [-10.0, 40.0])
    """Camera elevation in degrees."""
    azimuth_range: list[float] = field(default_factory=lambda: [0.0, 360.0])
    """Camera azimuth in degrees."""
    distance: float = 2.6
    """Camera distance (the dmtet-embedded preset's)."""
    fov: float = 50.0
    """Vertical field of view in degrees (the dmtet-embedded preset's)."""
    seed: int = 0
    """Seed of the cameras (per mesh: seed + its index)."""


@dataclass
class ViewDataset:
    """Rendered views with their mesh and captions.

    images: (N, S, S) float32 grey in [0, 1] (background 0); mesh_index: (N,) int64 into ``ids``;
    elevation, azimuth: (N,) float32 degrees; ids, captions, categories: one per mesh.
    """

    images: np.ndarray
    mesh_index: np.ndarray
    elevation: np.ndarray
    azimuth: np.ndarray
    ids: list[str]
    captions: list[str]
    categories: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def read_captioned_meshes(root: str | Path | None = None, limit: int | None = None) -> list[tuple[str, str, Path]]:
    """(id, caption, obj path) per row of ``root/captions.csv``, sorted by id; checks every file."""
    from dreamcs.data.embedded import ASSETS

    root = Path(root) if root is not None else ASSETS
    csv_path = root / "captions.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no captions.csv (expected id,caption rows) in the mesh folder")
    rows = []
    with open(csv_path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{csv_path}: line {n} is not 'id,caption': {row!r}")
            mesh_id, caption = row[0].strip(), ",".join(row[1:]).strip()
            path = root / "meshes" / f"{mesh_id}.obj"
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path}: line {n}: mesh {path} not found")
            rows.append((mesh_id, caption, path))
    if not rows:
        raise ValueError(f"{csv_path}: no captioned meshes")
    rows.sort()
    return rows[:limit] if limit else rows


def _cache_key(cfg: ViewDataConfig, rows: list[tuple[str, str, Path]]) -> str:
    h = hashlib.sha1()
    settings = {k: v for k, v in asdict(cfg).items() if k != "meshes"}
    h.update(json.dumps({"v": CACHE_VERSION, **settings}, sort_keys=True).encode())
    for mesh_id, caption, path in rows:
        h.update(f"{mesh_id}\t{caption}\t".encode())
        h.update(hashlib.sha1(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@torch.no_grad()
def render_mesh_views(vertices: np.ndarray, faces: np.ndarray, cfg: ViewDataConfig, seed: int,
                      batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one mesh (vertices (V, 3) normalised, faces (F, 3)) from ``cfg.n_views`` random
    cameras -> images (n, S, S) float32 in [0, 1], elevation (n,), azimuth (n,)."""
    from dreamcs.render import RenderConfig, render, sample_cameras

    g = torch.Generator().manual_seed(seed)
    cams = sample_cameras(cfg.n_views, elevation_range=tuple(cfg.elevation_range),
                          azimuth_range=tuple(cfg.azimuth_range), distance_range=(cfg.distance, cfg.distance),
                          fov_range=(cfg.fov, cfg.fov), generator=g)
    # the SDS renderer's settings (RenderConfig defaults = flat grey diffuse on black)
    rcfg = RenderConfig(shading="diffuse", normals="flat", background=(0.0, 0.0, 0.0))
    v, f = torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.long)
    hi = cfg.image_size * cfg.supersample
    out = []
    for s in range(0, cfg.n_views, batch):
        img = render(v, f, cams[s : s + batch], hi, rcfg)["image"][..., :1]  # grey: channels are equal
        small = F.interpolate(img.permute(0, 3, 1, 2), size=(cfg.image_size, cfg.image_size), mode="bilinear",
                              align_corners=False, antialias=cfg.supersample > 1)
        out.append(small[:, 0].clamp(0, 1))
    return torch.cat(out).numpy(), cams.elevation.numpy(), cams.azimuth.numpy()


def build_view_dataset(cfg: ViewDataConfig, cache_dir: str | Path, progress: bool = False) -> ViewDataset:
    """Render (or load from ``cache_dir``) every mesh's views; see :class:`ViewDataset`."""
    from dreamcs.mesh import load_mesh, normalize

    if cfg.n_views < 1 or cfg.image_size < 8 or cfg.supersample < 1:
        raise ValueError(f"view data: need n_views >= 1, image_size >= 8, supersample >= 1; got {cfg}")
    rows = read_captioned_meshes(cfg.meshes, cfg.limit)
    ids, captions = [r[0] for r in rows], [r[1] for r in rows]
    categories = [category_of(c) for c in captions]
    path = Path(cache_dir) / f"views-{_cache_key(cfg, rows)}.npz"
    if path.is_file():
        with np.load(path) as z:
            if list(z["ids"]) == ids:
                return ViewDataset(z["images"].astype(np.float32), z["mesh_index"], z["elevation"],
                                   z["azimuth"], ids, captions, categories)
    images, index, elev, azim = [], [], [], []
    track = range(len(rows))
    if progress:
        from rich.progress import track as rich_track

        track = rich_track(track, description=f"rendering {len(rows)} meshes x {cfg.n_views} views")
    for k in track:
        mesh = normalize(load_mesh(rows[k][2]))
        img, el, az = render_mesh_views(np.asarray(mesh.vertices), np.asarray(mesh.faces), cfg, cfg.seed + k)
        images.append(img)
        index.append(np.full(len(img), k, np.int64))
        elev.append(el)
        azim.append(az)
    data = ViewDataset(np.concatenate(images), np.concatenate(index), np.concatenate(elev),
                       np.concatenate(azim), ids, captions, categories)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=data.images.astype(np.float16), mesh_index=data.mesh_index,
                        elevation=data.elevation, azimuth=data.azimuth, ids=np.array(ids))
    atomic_write_bytes(path, buf.getvalue())
    data.images = data.images.astype(np.float16).astype(np.float32)  # the same values as a cache hit
    return data


def caption_choices(data: ViewDataset) -> list[str]:
    """Every text a training sample can carry: "" (unconditional), the captions, "a {category}"."""
    return list(dict.fromkeys(["", *data.captions, *(article(c) for c in data.categories)]))


def draw_captions(data: ViewDataset, mesh_index: torch.Tensor, g: torch.Generator, p_blank: float = 0.1,
                  p_category: float = 0.25) -> list[str]:
    """Per sample: "" with p_blank (for classifier-free guidance), "a {category}" with p_category,
    else the mesh's caption. mesh_index (B,) long."""
    u = torch.rand(mesh_index.shape[0], generator=g).tolist()
    out = []
    for k, x in zip(mesh_index.tolist(), u, strict=True):
        if x < p_blank:
            out.append("")
        elif x < p_blank + p_category:
            out.append(article(data.categories[k]))
        else:
            out.append(data.captions[k])
    return out
