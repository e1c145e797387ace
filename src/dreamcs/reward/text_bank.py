"""A dataset's prompts encoded once: training steps look their text tokens up instead of running
(or re-running, when the encoder's LRU cache is smaller than the prompt set) the text encoder."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from dreamcs.text import TextEmbedding, TextEncoder


class TextBank:
    """Every distinct prompt's tokens (L_i, D) and pooled vector (D,), float32 on the CPU.

    ``bank.embed(prompts)`` returns exactly what ``encoder.encode(prompts)`` would (same padding).
    """

    def __init__(self, encoder: TextEncoder, prompts: Iterable[str], chunk: int = 256) -> None:
        self.dim = encoder.dim
        self._items: dict[str, tuple[Tensor, Tensor]] = {}
        unique = list(dict.fromkeys(str(p) for p in prompts))
        for s in range(0, len(unique), chunk):
            part = unique[s : s + chunk]
            emb = encoder.encode(part)
            for i, p in enumerate(part):
                self._items[p] = (emb.tokens[i, emb.mask[i]].clone(), emb.pooled[i].clone())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._items

    def embed(self, prompts: list[str]) -> TextEmbedding:
        """B prompts (all in the bank) -> TextEmbedding(tokens (B, L, D), mask (B, L), pooled (B, D))."""
        missing = [p for p in prompts if p not in self._items]
        if missing:
            raise KeyError(f"prompt not in the text bank: {missing[0]!r}")
        items = [self._items[p] for p in prompts]
        length = max(t.shape[0] for t, _ in items)
        tokens = torch.zeros(len(items), length, self.dim)
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for i, (t, _) in enumerate(items):
            tokens[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return TextEmbedding(tokens, mask, torch.stack([pl for _, pl in items]))
