"""The 2D reward branch of a generation step: rendered views -> BLIP reward -> -alpha_2d(t) r_2d.

The branch works on the step's detached image leaf (B, H, W, 3), as the SDS branch does: its
gradient is added to the image's, and both go back through the renderer into the field at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dreamcs.generate.reward2d.blip_reward import BlipReward, load_blip_reward, preprocess
from dreamcs.generate.reward2d.config import Reward2DConfig
from dreamcs.schedule import C


class Reward2DBranch:
    """A frozen BLIP reward scoring the prompt on rendered views."""

    def __init__(self, cfg: Reward2DConfig, prompt: str, model: BlipReward, tokenizer: Any) -> None:
        if model.config.head != cfg.name:
            raise ValueError(f"reward_2d.name={cfg.name!r} but {cfg.checkpoint} holds a {model.config.head!r} model")
        self.cfg, self.prompt, self.model, self.tokenizer = cfg, prompt, model, tokenizer
        self._tokens: dict[str, tuple[Tensor, Tensor]] = {}

    def _tokenize(self, texts: list[str], device: torch.device) -> tuple[Tensor, Tensor]:
        for t in texts:
            if t not in self._tokens:
                b = self.tokenizer(t, padding="max_length", truncation=True, max_length=self.model.config.max_length,
                                   return_tensors="pt")
                self._tokens[t] = (b.input_ids[0], b.attention_mask[0])
        ids = torch.stack([self._tokens[t][0] for t in texts]).to(device)
        mask = torch.stack([self._tokens[t][1] for t in texts]).to(device)
        return ids, mask

    def __call__(self, images: Tensor, suffixes: list[str] | None = None) -> Tensor:
        """images (B, H, W, 3) in [0, 1], differentiable -> mean reward (), differentiable."""
        texts = [f"{self.prompt}, {s}" if (self.cfg.view_dependent and s) else self.prompt
                 for s in (suffixes or [""] * images.shape[0])]
        dev = next(self.model.parameters()).device
        x = preprocess(images.to(dev, torch.float32), self.model.config.image_size)
        ids, mask = self._tokenize(texts, dev)
        return self.model(x, ids, mask).mean()

    def step(self, img: Tensor, suffixes: list[str], step: int, rec: dict[str, Any]) -> float:
        """Score ``img`` (the step's image leaf) every ``every`` steps and add -alpha_2d d r / d img
        to ``img.grad``; records reward_2d / alpha_2d / loss_reward_2d; returns the loss term."""
        alpha = C(self.cfg.alpha, step, "reward_2d.alpha") * self.cfg.every  # k alpha on every k-th step
        rec.update(alpha_2d=alpha, reward_2d=None, loss_reward_2d=None)
        if step % self.cfg.every or img.shape[-1] != 3:  # no colour image in a latent warm-up step
            return 0.0
        with torch.set_grad_enabled(alpha != 0.0):
            r = self(img, suffixes)
        if alpha != 0.0:
            (-alpha * r).backward()
        rec.update(reward_2d=float(r.detach()), loss_reward_2d=-alpha * float(r.detach()))
        return -alpha * float(r.detach())


def build_reward_2d(cfg: Reward2DConfig, prompt: str, device: torch.device | str) -> Reward2DBranch | None:
    """The branch ``cfg`` asks for (None when ``cfg.checkpoint`` is unset)."""
    if not cfg.checkpoint:
        return None
    model, tok = load_blip_reward(cfg.checkpoint, device=device)
    return Reward2DBranch(cfg, prompt, model, tok)
