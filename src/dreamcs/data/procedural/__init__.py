"""Procedural shape library: seeded, captioned, part-structured everyday objects for 3D-MeshPref.

    from dreamcs.data.procedural import CATEGORIES, make_object, library, ProceduralObject
    obj = make_object("chair", seed=3)        # the identical mesh and caption every time
    for obj in library(n=3000, seed=0): ...   # round-robin over CATEGORIES, deterministic

Map: ``parts.py`` primitives, the part assembly and the tessellation ``Style``; ``words.py``
caption words; ``catalog.py`` the category table; one module per family (``FAMILIES``:
seating, furniture, vessels, household, fixtures, vehicles, buildings, nature) of generators;
``sheet.py`` a labelled contact sheet; ``source.py`` the ``procedural:N[:SEED]`` build source.
Objects are y-up, front towards +z, normalised into [-1, 1]^3 (bounding box centred, longest side
2), under ``MAX_FACES`` faces.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import trimesh

from dreamcs.data.procedural.catalog import GENERATORS
from dreamcs.data.procedural.parts import Part, Style, densify, draw_style

FAMILIES = ("seating", "furniture", "vessels", "household", "fixtures", "vehicles", "buildings", "nature")
for _family in FAMILIES:  # importing a family module registers its categories
    importlib.import_module(f"dreamcs.data.procedural.{_family}")

__all__ = [
    "CATEGORIES",
    "MAX_FACES",
    "ProceduralObject",
    "make_object",
    "library",
    "library_keys",
    "synonyms",
]

MAX_FACES = 8000
DENSE_SHARE = 0.3  # objects whose coarse parts are subdivided towards MAX_FACES (see parts.densify)
CATEGORIES: tuple[str, ...] = tuple(sorted(GENERATORS))


@dataclass
class ProceduralObject:
    """One generated object. ``mesh`` is all parts concatenated (V, 3) / (F, 3) in [-1, 1]^3;
    ``parts`` the same geometry per named part, each ``closed`` one watertight."""

    mesh: trimesh.Trimesh
    caption: str
    category: str
    params: dict
    object_id: str
    parts: list[Part] = field(default_factory=list, repr=False)


def synonyms(category: str) -> tuple[str, ...]:
    """Words that name ``category`` in a caption."""
    return GENERATORS[category].synonyms


def make_object(category: str, seed: int) -> ProceduralObject:
    """The object ``category`` / ``seed``: identical output for identical arguments."""
    if category not in GENERATORS:
        raise KeyError(f"unknown procedural category {category!r}; known: {', '.join(CATEGORIES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"procedural seed must be a non-negative integer, got {seed!r}")
    gen = GENERATORS[category]
    # crc32, not hash(): Python salts str hashes per process
    base = np.random.default_rng([zlib.crc32(category.encode()), int(seed)])
    style = draw_style(base)
    state = base.bit_generator.state
    while True:
        base.bit_generator.state = state  # same shape draws at every detail level
        asm, cap, params = gen.fn(base, style)
        if asm.n_faces < MAX_FACES or style.detail == 0:
            break
        style = Style(detail=style.detail - 1, bevel=style.bevel)  # too dense: coarser, same shape
    if asm.n_faces >= MAX_FACES:  # a generator bug, not bad luck: say which object
        raise RuntimeError(f"procedural {category}-{seed}: {asm.n_faces} faces even at the coarsest detail")
    # a separate stream, so that the shape draws above do not depend on it
    dense_rng = np.random.default_rng([zlib.crc32(category.encode()), int(seed), 1])
    dense = bool(dense_rng.random() < DENSE_SHARE)
    if dense:
        densify(asm, int(dense_rng.integers(max(asm.n_faces, 2000), MAX_FACES)))
    mesh, parts = asm.normalised()
    params = {**params, "detail": style.detail, "bevel": style.bevel, "dense": dense, "n_parts": len(parts)}
    return ProceduralObject(mesh, cap, category, params, f"{category}-{int(seed)}", parts)


def library_keys(n: int, seed: int = 0, categories: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """The (category, object seed) pairs of ``library(n, seed, categories)``, without generating."""
    cats = tuple(categories or CATEGORIES)
    return [(cats[i % len(cats)], seed * 1_000_000 + i // len(cats)) for i in range(int(n))]


def library(n: int, seed: int = 0, categories: tuple[str, ...] | None = None) -> Iterator[ProceduralObject]:
    """``n`` objects, round-robin over ``categories`` (default all): item i is category
    ``i % K`` with object seed ``seed * 1_000_000 + i // K``, so libraries of different seeds differ."""
    for category, obj_seed in library_keys(n, seed, categories):
        yield make_object(category, obj_seed)
