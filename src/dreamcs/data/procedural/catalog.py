"""The category table: ``@register("chair", "armchair", ...)`` adds a generator and the words
that count as naming its category in a caption (the first is the category itself)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dreamcs.data.procedural.parts import Assembly, Style

# rng, style -> (parts, caption, params)
GeneratorFn = Callable[[np.random.Generator, Style], tuple[Assembly, str, dict]]


@dataclass(frozen=True)
class Category:
    name: str
    fn: GeneratorFn
    synonyms: tuple[str, ...]


GENERATORS: dict[str, Category] = {}


def register(name: str, *synonyms: str) -> Callable[[GeneratorFn], GeneratorFn]:
    def deco(fn: GeneratorFn) -> GeneratorFn:
        if name in GENERATORS:
            raise ValueError(f"procedural category {name!r} registered twice")
        GENERATORS[name] = Category(name, fn, (name, *synonyms))
        return fn

    return deco
