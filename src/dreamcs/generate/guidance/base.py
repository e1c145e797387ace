"""The guidance interface: score distillation (SDS) from a 2D diffusion model.

A backend supplies a noise-prediction UNet, its noise schedule, an image encoder (a VAE or pixel
space) and a text encoder; this base class does the rest the same way for all of them:

    grad  = w(t) * (eps_hat - eps),   eps_hat = eps_u + s * (eps_c - eps_u)   (classifier-free)
    loss  = 0.5 * ||z - (z - grad).detach()||^2 / B                           (d loss / d z = grad / B)

with t drawn per image from an annealed range ``[min_step_percent, max_step_percent] * T`` (both
schedules, see ``dreamcs.schedule.C``), elementwise gradient clipping, and a NaN guard that zeroes
non-finite latents or gradient entries (and counts them) so one bad render never poisons the field.

Randomness (t, noise) comes from torch's global generator, which the pipeline seeds and saves in
its checkpoints, so a resumed run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamcs.registry import Registry
from dreamcs.schedule import C, validate_schedule

GUIDANCE: Registry = Registry("guidance")

#: names reserved for backends that are planned but not written yet
PLANNED: dict[str, str] = {}
WEIGHTINGS = ("sds", "uniform", "fantasia3d")


@dataclass
class GuidanceConfig:
    """Settings shared by every guidance backend (each ignores what it does not use)."""

    name: str = "tiny"
    """Registry name: ``tiny``, ``embedded``, ``stable-diffusion``, ``mvdream``, ``deepfloyd-if``."""
    pretrained: str | None = None
    """A local folder or hub id (``stable-diffusion``), or the prior folder (``embedded``; default, or ``embedded``: the shipped one)."""
    guidance_scale: float = 100.0
    """Classifier-free guidance scale s (DreamFusion uses 100 with SD; a small pixel prior ~7.5)."""
    min_step_percent: Any = 0.02
    """Schedule: lowest timestep as a fraction of T."""
    max_step_percent: Any = 0.98
    """Schedule: highest timestep as a fraction of T (anneal it down, e.g. [0, 0.98, 0.5, 2000])."""
    weighting: str = "sds"
    """w(t): ``sds`` = 1 - alpha_bar_t, ``uniform`` = 1, ``fantasia3d`` = sqrt(alpha_bar_t) (1 - alpha_bar_t)."""
    grad_clip: Any = None
    """Schedule or None: clamp the SDS gradient elementwise to [-c, c] (threestudio's grad_clip_val)."""
    half_precision: bool = True
    """Run the UNet (and VAE) in float16 when on a GPU; always float32 on the CPU."""
    image_size: int = 512
    """Images are resized to this square size before encoding (512 for SD 1.5 / 2.1 base)."""
    negative_prompt: str = ""
    """The unconditional branch's text (empty = true unconditional)."""
    text_encoder: str = "random"
    """``tiny`` only: ``random`` (a seeded hashed-word embedding) or a ``dreamcs.text`` spec (``minilm``, ``hash:D``)."""
    max_tokens: int = 16
    """Token length of pixel-prior text embeddings (padded / truncated, with a mask)."""
    channels: int = 3
    """``tiny`` only: image channels (1 = grey, 3 = RGB) in pixel space."""
    block_out_channels: list[int] = field(default_factory=lambda: [16, 32])
    """``tiny`` only: UNet widths per resolution level."""
    cross_attention_dim: int = 32
    """``tiny`` only: text embedding width for the ``random`` text encoder."""
    seed: int = 0
    """``tiny`` only: seed of the random weights (independent of the run's seed)."""
    n_views: int = 4
    """``mvdream`` only: views per sample that share one timestep and attend to each other."""
    recon_loss: bool = True
    """``mvdream`` only: MVDream's x0-reconstruction form of SDS (grad = z - x0_hat) instead of w(t)(eps_hat - eps)."""
    recon_std_rescale: float = 0.5
    """``mvdream`` only: blend of the CFG x0 rescaled to the std of the conditional x0 (0 = off)."""
    text_embeddings: str | None = None
    """``deepfloyd-if`` only: a safetensors file of precomputed T5 embeddings (text -> (L, 4096)),
    used instead of loading the T5 encoder (see ``deepfloyd_if.save_text_embeddings``)."""

    def validate(self) -> None:
        for key in ("min_step_percent", "max_step_percent"):
            validate_schedule(getattr(self, key), f"guidance.{key}")
        if self.grad_clip is not None:
            validate_schedule(self.grad_clip, "guidance.grad_clip")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"guidance.weighting: {self.weighting!r} is not one of {', '.join(WEIGHTINGS)}")
        if self.image_size < 8:
            raise ValueError(f"guidance.image_size must be at least 8, got {self.image_size}")


@dataclass
class TextConditioning:
    """Per-image text embeddings for B images.

    cond, uncond: (B, L, D); cond_mask, uncond_mask: (B, L) bool or None (no mask, as SD's CLIP).
    """

    cond: Tensor
    uncond: Tensor
    cond_mask: Tensor | None = None
    uncond_mask: Tensor | None = None

    def __len__(self) -> int:
        return int(self.cond.shape[0])


def compose_prompt(prompt: str, suffix: str | None) -> str:
    """DreamFusion's view-dependent prompt: ``"a corgi, side view"``."""
    return f"{prompt}, {suffix}" if suffix else prompt


class Guidance(nn.Module):
    """Base class. Subclasses set ``self.unet`` and ``self.scheduler`` and implement
    ``_encode_text_uncached`` and ``encode_images``."""

    unet: nn.Module

    def __init__(self, cfg: GuidanceConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self._text_cache: dict[str, tuple[Tensor, Tensor | None]] = {}

    # -- to implement ---------------------------------------------------------------------------
    def _encode_text_uncached(self, texts: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        """Per text: (tokens (L, D) float32 on the CPU, mask (L,) bool or None). All L equal."""
        raise NotImplementedError

    def encode_images(self, images: Tensor) -> Tensor:
        """images (B, H, W, C) in [0, 1] -> latents (B, c, h, w), differentiable."""
        raise NotImplementedError

    def latent_shape(self) -> tuple[int, int]:
        """(channels, size) of the UNet's square latents."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def images_as_latents(self, images: Tensor) -> Tensor:
        """Fantasia3D's geometry warm-up input: images (B, H, W, c) used directly as latents,
        resized to (B, c, h, w) without the encoder (e.g. normal * 2 - 1 and mask for SD's 4 channels)."""
        c, size = self.latent_shape()
        if images.shape[-1] != c:
            raise ValueError(f"{self.cfg.name} guidance takes {c}-channel latents, got images with {images.shape[-1]} "
                             "channels (render.latent_steps needs a 4-channel latent prior: stable-diffusion)")
        x = images.to(self.device, torch.float32).permute(0, 3, 1, 2)
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def _set_schedule(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.prediction_type = str(scheduler.config.get("prediction_type", "epsilon"))
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"guidance: prediction_type {self.prediction_type!r} is not supported")
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float().clone(), persistent=False)

    def _text(self, texts: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            with torch.no_grad():
                for t, out in zip(missing, self._encode_text_uncached(missing), strict=True):
                    self._text_cache[t] = out
        return [self._text_cache[t] for t in texts]

    def encode_prompts(
        self, prompts: str | Sequence[str], view_suffixes: Sequence[str | None] | None = None
    ) -> TextConditioning:
        """Text embeddings for B images, cached per (prompt, view suffix).

        ``prompts``: one prompt or B prompts; ``view_suffixes``: None or B suffixes (``"front view"``).
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        n = max(len(prompts), len(view_suffixes or []))
        if n == 0:
            raise ValueError("encode_prompts needs at least one prompt")
        if len(prompts) not in (1, n) or (view_suffixes is not None and len(view_suffixes) not in (1, n)):
            raise ValueError(f"got {len(prompts)} prompts for {len(view_suffixes or [])} view suffixes")
        prompts = list(prompts) * (n // len(prompts))
        suffixes = list(view_suffixes) * (n // len(view_suffixes)) if view_suffixes else [None] * n
        texts = [compose_prompt(p, s) for p, s in zip(prompts, suffixes, strict=True)]
        cond = self._text(texts)
        uncond = self._text([self.cfg.negative_prompt] * n)
        device = self.device

        def stack(items: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor | None]:
            tokens = torch.stack([t for t, _ in items]).to(device)
            masks = [m for _, m in items]
            mask = None if masks[0] is None else torch.stack(masks).to(device)
            return tokens, mask

        c, cm = stack(cond)
        u, um = stack(uncond)
        return TextConditioning(c, u, cm, um)

    def timestep_range(self, step: int) -> tuple[int, int]:
        """The annealed [min_step, max_step] (inclusive) at training ``step``."""
        t_count = self.num_train_timesteps
        lo = int(t_count * C(self.cfg.min_step_percent, step, "guidance.min_step_percent"))
        hi = int(t_count * C(self.cfg.max_step_percent, step, "guidance.max_step_percent"))
        lo = min(max(lo, 1), t_count - 1)
        hi = min(max(hi, lo), t_count - 1)
        return lo, hi

    def weight(self, t: Tensor) -> Tensor:
        """w(t) for timesteps t (B,) -> (B,)."""
        ab = self.alphas_cumprod.to(t.device)[t]
        if self.cfg.weighting == "sds":
            return 1.0 - ab
        if self.cfg.weighting == "fantasia3d":
            return ab.sqrt() * (1.0 - ab)
        return torch.ones_like(ab)

    def _unet_eps(self, x: Tensor, t: Tensor, emb: Tensor, mask: Tensor | None) -> Tensor:
        """The UNet's raw prediction (N, c, h, w) (a learned-variance UNet keeps its first c channels)."""
        return self.unet(x, t, encoder_hidden_states=emb, encoder_attention_mask=mask).sample

    @torch.no_grad()
    def predict_noise(self, noisy: Tensor, t: Tensor, text: TextConditioning, guidance_scale: float) -> Tensor:
        """Classifier-free guided epsilon: noisy (B, c, h, w), t (B,) -> eps_hat (B, c, h, w) float32."""
        b = noisy.shape[0]
        x_in = torch.cat([noisy, noisy]).to(self.dtype)
        t_in = torch.cat([t, t])
        emb = torch.cat([text.cond, text.uncond]).to(self.dtype)
        mask = None
        if text.cond_mask is not None and text.uncond_mask is not None:
            mask = torch.cat([text.cond_mask, text.uncond_mask]).to(noisy.device)
        out = self._unet_eps(x_in, t_in, emb, mask).float()
        if self.prediction_type == "v_prediction":
            # eps = sqrt(ab) v + sqrt(1 - ab) x_t
            ab = self.alphas_cumprod[t_in].view(-1, 1, 1, 1)
            out = ab.sqrt() * out + (1 - ab).sqrt() * torch.cat([noisy, noisy]).float()
        eps_c, eps_u = out[:b], out[b:]
        return eps_u + guidance_scale * (eps_c - eps_u)

    def sds_loss(
        self, images: Tensor, text: TextConditioning, step: int, guidance_scale: float | None = None,
        as_latents: bool = False,
    ) -> dict[str, Any]:
        """SDS on rendered images (B, H, W, C) in [0, 1] with B text embeddings (``as_latents``:
        images are the latents themselves, see :meth:`images_as_latents`).

        Returns ``loss_sds`` (scalar, differentiable in ``images``), ``grad_norm``, ``t`` (B,),
        ``min_step``/``max_step``, ``n_nonfinite`` (entries the NaN guard zeroed) and ``grad``
        (B, c, h, w, detached).
        """
        if images.dim() != 4:
            raise ValueError(f"sds_loss expects images (B, H, W, C), got shape {tuple(images.shape)}")
        if len(text) != images.shape[0]:
            raise ValueError(f"sds_loss got {images.shape[0]} images but {len(text)} text embeddings")
        scale = self.cfg.guidance_scale if guidance_scale is None else guidance_scale
        latents = (self.images_as_latents(images) if as_latents else self.encode_images(images)).float()
        bad = ~torch.isfinite(latents)
        n_bad = int(bad.sum())
        if n_bad:
            # where() passes no gradient to the replaced entries, so the loss stays finite
            latents = torch.where(bad, torch.zeros_like(latents), latents)
        b = latents.shape[0]
        lo, hi = self.timestep_range(step)
        t = torch.randint(lo, hi + 1, (b,), dtype=torch.long).to(latents.device)
        noise = torch.randn(latents.shape, dtype=latents.dtype).to(latents.device)
        with torch.no_grad():
            ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            noisy = ab.sqrt() * latents.detach() + (1 - ab).sqrt() * noise
            eps_hat = self.predict_noise(noisy, t, text, scale)
            grad = self.weight(t).view(-1, 1, 1, 1) * (eps_hat - noise)
            if self.cfg.grad_clip is not None:
                c = C(self.cfg.grad_clip, step, "guidance.grad_clip")
                grad = grad.clamp(-c, c)
            finite = torch.isfinite(grad)
            n_bad += int((~finite).sum())
            grad = torch.where(finite, grad, torch.zeros_like(grad))
        target = (latents - grad).detach()
        loss = 0.5 * F.mse_loss(latents, target, reduction="sum") / b
        return {
            "loss_sds": loss,
            "grad_norm": grad.norm().detach(),
            "t": t.detach(),
            "min_step": lo,
            "max_step": hi,
            "n_nonfinite": n_bad,
            "grad": grad,
        }


def resize_images(images: Tensor, size: int) -> Tensor:
    """images (B, H, W, C) -> (B, C, size, size), bilinear (antialiased when shrinking)."""
    x = images.permute(0, 3, 1, 2)
    if x.shape[-1] != size or x.shape[-2] != size:
        shrink = x.shape[-1] > size or x.shape[-2] > size
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return x


def build_guidance(cfg: GuidanceConfig, device: str | torch.device = "cpu") -> Guidance:
    """The backend that ``cfg.name`` names, built from ``cfg`` on ``device``."""
    if cfg.name in PLANNED and cfg.name not in GUIDANCE:
        raise NotImplementedError(f"guidance {cfg.name!r} ({PLANNED[cfg.name]}) is planned but not written yet")
    return GUIDANCE.get(cfg.name)(cfg, device=device)
