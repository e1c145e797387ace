"""``hash[:D]``: a parameter-free bag-of-words encoder. Each lower-cased word maps to a fixed
pseudo-random unit vector seeded by its SHA-1, so it needs no weights and no network. It knows
no semantics (synonyms are unrelated); it exists for tests, benchmarks and quick experiments."""

from __future__ import annotations

import hashlib
import re

import torch
from torch import Tensor

from dreamcs.text.base import TEXT_ENCODERS, TextEncoder

_WORD = re.compile(r"[a-z0-9]+")


@TEXT_ENCODERS.register("hash")
class HashEncoder(TextEncoder):
    """Word vectors from SHA-1 seeds (D = ``dim``, default 64); pooled = mean of word vectors."""

    def __init__(self, dim: int = 64, max_length: int = 64) -> None:
        super().__init__(max_length)
        if dim < 1:
            raise ValueError(f"hash encoder dim must be positive, got {dim}")
        self._dim = int(dim)
        self.spec = f"hash:{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _word_vector(self, word: str) -> Tensor:
        seed = int.from_bytes(hashlib.sha1(word.encode("utf-8")).digest()[:8], "little") & ((1 << 63) - 1)
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(self._dim, generator=g)
        return v / v.norm().clamp_min(1e-12)

    def _encode_uncached(self, prompts: list[str]) -> list[tuple[Tensor, Tensor]]:
        out = []
        for p in prompts:
            words = ["<s>"] + _WORD.findall(p.lower())[: self.max_length - 1]
            tokens = torch.stack([self._word_vector(w) for w in words])
            out.append((tokens, tokens.mean(0)))
        return out
