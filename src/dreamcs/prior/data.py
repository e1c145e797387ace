"""The prior's training views: licensed real meshes and the procedural library
(``dreamcs.prior.sources``), each rendered from random cameras the way the SDS branch of the
``embedded`` recipes renders (``dreamcs.prior.views``: framing, lights, supersampling).

    data = build_view_dataset(ViewDataConfig(procedural=3300, margin=0.1), cache_dir)
    captions = draw_captions(data, image_index, generator, p_blank=0.1, p_category=0.25, p_view=0.5)

Renders are cached under ``cache_dir`` as ``views-<key>.npz``, the key a hash of the settings and
of what the objects render to (mesh bytes, procedural keys and generator source). A long render
writes ``views-<key>.parts/part-NNNNN.npz`` every ``CHUNK`` objects, each atomically, so a killed
run resumes where it stopped; the parts are merged into the one file and removed at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dreamcs.prior.sources import (
    ViewItem,
    category_of,
    items_fingerprint,
    load_item,
    read_captioned_meshes,
    view_items,
)
from dreamcs.prior.views import render_object_views
from dreamcs.utils import atomic_write_bytes

#: bump when the rendering changes, so old caches are not reused (2: framing, lights, view suffixes)
CACHE_VERSION = 2
#: objects per part file of a long render
CHUNK = 64

__all__ = ["CACHE_VERSION", "ViewDataConfig", "ViewDataset", "article", "build_view_dataset", "category_of",
           "draw_captions", "read_captioned_meshes", "render_items"]


def article(noun: str) -> str:
    """``"a chair"`` / ``"an armchair"``."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@dataclass
class ViewDataConfig:
    """Which objects, and how they are rendered (defaults: the shipped prior's data; the
    ``library`` preset, ``configs/prior/library.yaml``, sets the issue-18 data)."""

    meshes: str | None = None
    """Real meshes: a folder with captions.csv and meshes/<id>.obj; None = the licensed set in the package."""
    real: bool = True
    """Render the real meshes of ``meshes``."""
    limit: int | None = None
    """Use only the first ``limit`` real meshes (sorted by id): for tests and quick runs."""
    n_views: int = 64
    """Random cameras per real mesh."""
    procedural: int = 0
    """Objects of the procedural library (round-robin over its 33 categories); 0 = none."""
    procedural_seed: int = 0
    """Library seed (``dreamcs.data.procedural.library``); ``prior check`` draws from another one."""
    procedural_views: int = 16
    """Random cameras per procedural object."""
    image_size: int = 32
    """Side of the stored (training) images."""
    supersample: int = 2
    """Render at ``image_size * supersample`` and shrink with the antialiased bilinear filter that
    guidance applies to SDS renders (the dmtet-embedded recipe renders 64 px for a 32 px prior)."""
    elevation_range: list[float] = field(default_factory=lambda: [-10.0, 40.0])
    """Camera elevation in degrees (the embedded recipes')."""
    azimuth_range: list[float] = field(default_factory=lambda: [0.0, 360.0])
    """Camera azimuth in degrees."""
    distance_range: list[float] = field(default_factory=lambda: [2.6, 2.6])
    """Camera distance (the embedded recipes' ``render.distance_range``)."""
    fov_range: list[float] = field(default_factory=lambda: [50.0, 50.0])
    """Vertical field of view in degrees (the embedded recipes' ``render.fov_range``)."""
    margin: float | None = None
    """Framing (``dreamcs.prior.views``): the object's bounding sphere fills at most 1 - margin of
    the half-frame at the closest camera; None = the box normalisation (fills the frame)."""
    light_random_share: float = 0.0
    """Share of views lit by DreamFusion's random point light instead of the headlight."""
    normal_share: float = 0.0
    """Share of views normal-shaded (seen in grey): only if a recipe renders normals for this prior."""
    seed: int = 0
    """Seed of the cameras and lights (per object: seed + its index)."""

    def validate(self) -> None:
        if self.n_views < 1 or self.procedural_views < 1 or self.image_size < 8 or self.supersample < 1:
            raise ValueError(f"view data: need n_views, procedural_views >= 1, image_size >= 8, supersample >= 1; "
                             f"got {self}")
        if self.procedural < 0:
            raise ValueError(f"view data: procedural must be >= 0, got {self.procedural}")
        if self.margin is not None and not 0.0 <= self.margin < 1.0:
            raise ValueError(f"view data: margin must lie in [0, 1), got {self.margin}")
        shares = (self.light_random_share, self.normal_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"view data: light_random_share + normal_share must lie in [0, 1], got {shares}")
        for name in ("elevation_range", "azimuth_range", "distance_range", "fov_range"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[1] < lo_hi[0]:
                raise ValueError(f"view data: {name} must be [low, high], got {lo_hi}")


@dataclass
class ViewDataset:
    """Rendered views with their objects.

    Per view: images (N, S, S) float32 grey in [0, 1] (background 0); mesh_index (N,) int64 into
    the objects; elevation, azimuth (N,) float32 degrees; view (N,) int8 into
    ``render.VIEW_NAMES``; light (N,) int8 into ``prior.views.LIGHTS``.
    Per object: ids, keys (mesh path or ``procedural:CAT:SEED``), sources, captions, categories.
    """

    images: np.ndarray
    mesh_index: np.ndarray
    elevation: np.ndarray
    azimuth: np.ndarray
    view: np.ndarray
    light: np.ndarray
    ids: list[str]
    keys: list[str]
    sources: list[str]
    captions: list[str]
    categories: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


_PER_VIEW = ("images", "mesh_index", "elevation", "azimuth", "view", "light")
_PER_OBJECT = ("ids", "keys", "sources", "captions", "categories")


def _cache_key(cfg: ViewDataConfig, items: list[ViewItem]) -> str:
    h = hashlib.sha1()
    settings = {k: v for k, v in asdict(cfg).items() if k != "meshes"}  # the folder's content is hashed instead
    h.update(json.dumps({"v": CACHE_VERSION, **settings}, sort_keys=True).encode())
    h.update(items_fingerprint(items).encode())
    return h.hexdigest()[:16]


def _to_npz(arrays: dict[str, np.ndarray | list[str]]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # a torn or foreign file: say which
        raise ValueError(f"{path}: not a readable view cache ({e}); delete it to render again") from e


def render_items(cfg: ViewDataConfig, items: list[ViewItem], first: int = 0) -> dict[str, np.ndarray]:
    """Render items (object indices first, first + 1, ...; camera seeds cfg.seed + index) -> the
    per-view arrays of :class:`ViewDataset` (images float16) and ``captions`` (one per item)."""
    cols: dict[str, list] = {k: [] for k in (*_PER_VIEW, "captions")}
    for j, item in enumerate(items):
        vertices, faces, caption = load_item(item)
        out = render_object_views(vertices, faces, cfg, item.n_views, cfg.seed + first + j)
        out["images"] = out["images"].astype(np.float16)
        out["mesh_index"] = np.full(item.n_views, first + j, np.int64)
        for k in _PER_VIEW:
            cols[k].append(out[k])
        cols["captions"].append(caption)
    return {k: (np.concatenate(v) if k != "captions" else np.array(v)) for k, v in cols.items()}


def build_view_dataset(cfg: ViewDataConfig, cache_dir: str | Path, progress: bool = False) -> ViewDataset:
    """Render (or load from ``cache_dir``, or resume from its parts) every object's views; see
    :class:`ViewDataset`."""
    cfg.validate()
    items = view_items(cfg)
    key = _cache_key(cfg, items)
    path = Path(cache_dir) / f"views-{key}.npz"
    if not path.is_file():
        parts_dir = path.with_suffix(".parts")
        chunks = range(0, len(items), CHUNK)
        if progress:
            from rich.progress import track

            n_views = sum(it.n_views for it in items)
            chunks = track(chunks, description=f"rendering {len(items)} objects ({n_views} views)")
        parts = []
        for c in chunks:
            part = parts_dir / f"part-{c // CHUNK:05d}.npz"
            if not part.is_file():
                atomic_write_bytes(part, _to_npz(render_items(cfg, items[c : c + CHUNK], c)))
            parts.append(_read_npz(part))
        merged = {k: np.concatenate([p[k] for p in parts]) for k in (*_PER_VIEW, "captions")}
        merged |= {"ids": [it.id for it in items], "keys": [it.key for it in items],
                   "sources": [it.source for it in items], "categories": [it.category for it in items]}
        atomic_write_bytes(path, _to_npz(merged))
        shutil.rmtree(parts_dir, ignore_errors=True)
    z = _read_npz(path)
    if z["ids"].tolist() != [it.id for it in items]:
        raise ValueError(f"{path}: the cached objects differ from the configured ones; delete it to render again")
    return ViewDataset(z["images"].astype(np.float32), z["mesh_index"].astype(np.int64), z["elevation"],
                       z["azimuth"], z["view"], z["light"], *(z[k].tolist() for k in _PER_OBJECT))


def draw_captions(data: ViewDataset, image_index: torch.Tensor, g: torch.Generator, p_blank: float = 0.1,
                  p_category: float = 0.25, p_view: float = 0.0) -> list[str]:
    """Per view: "" with p_blank (for classifier-free guidance), else the object's caption, or
    "a {category}" with p_category; then, with p_view, the view suffix exactly as SDS appends it
    (``guidance.base.compose_prompt``: "a chair, side view"). image_index (B,) long."""
    from dreamcs.generate.guidance.base import compose_prompt
    from dreamcs.render import VIEW_NAMES

    u = torch.rand(image_index.shape[0], generator=g).tolist()
    w = torch.rand(image_index.shape[0], generator=g).tolist()
    out = []
    for i, x, y in zip(image_index.tolist(), u, w, strict=True):
        k = int(data.mesh_index[i])
        if x < p_blank:
            out.append("")
            continue
        text = article(data.categories[k]) if x < p_blank + p_category else data.captions[k]
        out.append(compose_prompt(text, f"{VIEW_NAMES[int(data.view[i])]} view" if y < p_view else None))
    return out
