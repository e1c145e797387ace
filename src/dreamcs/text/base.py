"""The text-encoder interface: frozen, per-prompt cached token embeddings with a mask and a pooled
vector. Backends live in their own modules and register in ``TEXT_ENCODERS``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dreamcs.registry import Registry

TEXT_ENCODERS: Registry = Registry("text encoder")


@dataclass
class TextEmbedding:
    """What an encoder returns for a batch of B prompts.

    tokens: (B, L, D) float32, zero past each prompt's length; mask: (B, L) bool, True on real
    tokens; pooled: (B, D) float32, one vector per prompt.
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def to(self, device: torch.device | str) -> TextEmbedding:
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


class TextEncoder(nn.Module):
    """Base class: subclasses implement ``_encode_uncached`` for a list of new prompts.

    The encoder is frozen (``requires_grad`` False, eval mode, ``torch.no_grad``) and keeps an LRU
    cache of per-prompt results on the CPU, so a training loop pays for each prompt once.
    """

    #: the spec string that rebuilds this encoder through ``build_text_encoder``
    spec: str = ""

    def __init__(self, max_length: int, cache_size: int = 4096) -> None:
        super().__init__()
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.max_length = int(max_length)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def freeze(self) -> TextEncoder:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        # Always eval: the encoder is frozen, so dropout must never switch on.
        return super().train(False)

    def _encode_uncached(self, prompts: list[str]) -> list[tuple[Tensor, Tensor]]:
        """Per prompt: (tokens (L_i, D), pooled (D,)) on the CPU, float32."""
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, prompts: list[str] | str) -> TextEmbedding:
        """Encode prompts -> TextEmbedding(tokens (B, L, D), mask (B, L), pooled (B, D)) on the CPU."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"prompts must be strings, got {type(p).__name__}")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            for p, out in zip(missing, self._encode_uncached(missing), strict=True):
                self._cache[p] = out
        items = []
        for p in prompts:
            self._cache.move_to_end(p)
            items.append(self._cache[p])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        length = max(t.shape[0] for t, _ in items)
        b, d = len(items), self.dim
        tokens = torch.zeros(b, length, d)
        mask = torch.zeros(b, length, dtype=torch.bool)
        for i, (t, _) in enumerate(items):
            tokens[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        pooled = torch.stack([pl for _, pl in items])
        return TextEmbedding(tokens, mask, pooled)

    def clear_cache(self) -> None:
        self._cache.clear()


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens: tokens (B, L, D), mask (B, L) -> (B, D)."""
    m = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)
