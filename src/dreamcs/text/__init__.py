"""Text encoders behind one interface (``TextEncoder.encode -> TextEmbedding``), built from a spec:

    enc = build_text_encoder("minilm")               # offline all-MiniLM-L6-v2, D = 384
    enc = build_text_encoder("clip:openai/clip-vit-base-patch32")   # or a local folder
    emb = enc.encode(["a wooden chair"])             # tokens (1, L, D), mask (1, L), pooled (1, D)
"""

from __future__ import annotations

import threading

from dreamcs.text import hashing as _hashing  # noqa: F401  (registers "hash")
from dreamcs.text import hf as _hf  # noqa: F401  (registers "minilm", "clip")
from dreamcs.text.base import TEXT_ENCODERS, TextEmbedding, TextEncoder, masked_mean

_SHARED: dict[tuple[str, int | None], TextEncoder] = {}
_LOCK = threading.Lock()


def build_text_encoder(spec: str, max_length: int | None = None) -> TextEncoder:
    """A new frozen encoder from ``"name"`` or ``"name:ARG"`` (minilm[:PATH], clip:PATH_OR_ID, hash[:D])."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"text encoder spec must be a non-empty string, got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    cls = TEXT_ENCODERS.get(name)
    kwargs = {} if max_length is None else {"max_length": int(max_length)}
    if name == "hash":
        if arg:
            try:
                kwargs["dim"] = int(arg)
            except ValueError:
                raise ValueError(f"text encoder spec {spec!r}: 'hash:D' needs an integer D") from None
        return cls(**kwargs)
    if name == "minilm":
        return cls(path=arg or None, **kwargs)
    return cls(arg, **kwargs)


def get_text_encoder(spec: str, max_length: int | None = None) -> TextEncoder:
    """A shared instance per (spec, max_length): encoders are frozen, so models may share one
    (and its prompt cache) instead of loading the weights again."""
    key = (spec, max_length)
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = build_text_encoder(spec, max_length)
        return _SHARED[key]


__all__ = [
    "TEXT_ENCODERS",
    "TextEmbedding",
    "TextEncoder",
    "build_text_encoder",
    "get_text_encoder",
    "masked_mean",
]
