"""CP: CLIP similarity between a prompt and multi-view renders of the asset.

``clip_score = mean_v cos(E_img(view_v), E_txt(prompt))`` over the turntable views: the raw cosine
(no clamp at 0, no 2.5 weight, no x100), as the DreamCS paper reports CP (0.22-0.29 there).

    scorer = ClipScorer("openai/clip-vit-base-patch32")   # or a local folder (save_pretrained)
    scorer.score(views_uint8, "a wooden chair")            # views (N, H, W, 3) uint8
"""

from __future__ import annotations

import numpy as np
import torch


class ClipScorer:
    """transformers ``CLIPModel`` + ``CLIPProcessor`` from a local folder or hub id, frozen, eval mode."""

    def __init__(self, path_or_id: str, device: str = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        try:
            self.processor = CLIPProcessor.from_pretrained(path_or_id)
            self.model = CLIPModel.from_pretrained(path_or_id).to(device).eval()
        except OSError as e:
            raise FileNotFoundError(f"{path_or_id}: cannot load a CLIP model and processor ({e})") from None
        self.device, self.spec = torch.device(device), path_or_id
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(D,) L2-normalised text embedding, cached per prompt."""
        if prompt not in self._text_cache:
            tok = self.processor.tokenizer([prompt], padding=True, truncation=True, return_tensors="pt")
            e = self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()})
            e = getattr(e, "pooler_output", e)  # transformers versions differ in the return type
            self._text_cache[prompt] = torch.nn.functional.normalize(e.float(), dim=-1)[0].cpu()
        return self._text_cache[prompt]

    @torch.no_grad()
    def image_embeddings(self, views: np.ndarray) -> torch.Tensor:
        """views (N, H, W, 3) uint8 -> (N, D) L2-normalised image embeddings."""
        if views.ndim != 4 or views.shape[-1] != 3:
            raise ValueError(f"views must be (N, H, W, 3), got {views.shape}")
        pix = self.processor.image_processor(images=list(views), return_tensors="pt")["pixel_values"]
        e = self.model.get_image_features(pixel_values=pix.to(self.device))
        e = getattr(e, "pooler_output", e)
        return torch.nn.functional.normalize(e.float(), dim=-1).cpu()

    def score(self, views: np.ndarray, prompt: str) -> float:
        """The mean cosine similarity of the views to the prompt, in [-1, 1] (the paper's CP)."""
        sims = self.image_embeddings(views) @ self.text_embedding(prompt)
        return float(sims.mean())
