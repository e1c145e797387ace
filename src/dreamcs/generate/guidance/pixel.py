"""Pixel-space guidance: ``tiny`` (a seeded random UNet, for tests) and ``embedded`` (the shipped
offline prior: a 1-channel 32x32 ``UNet2DConditionModel`` conditioned on MiniLM token embeddings).

An ``embedded`` prior folder holds what ``save_prior`` writes:

    PRIOR/unet/            UNet2DConditionModel.save_pretrained (config.json + safetensors)
    PRIOR/scheduler/       a diffusers scheduler config (DDPM or DDIM; only its betas are used)
    PRIOR/prior.yaml       text_encoder (e.g. ``minilm``), max_tokens, image_size, channels

The prior sees images as ``2 x - 1`` of the grey level (channels 1) or RGB (channels 3).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from dreamcs.generate.guidance.base import GUIDANCE, Guidance, GuidanceConfig, resize_images

DEFAULT_PRIOR = Path(__file__).resolve().parents[2] / "assets" / "prior"


def prior_dir(spec: str | Path | None) -> Path:
    """The folder of an embedded prior: None or ``"embedded"`` is the one shipped in the package."""
    return DEFAULT_PRIOR if spec is None or str(spec) in ("", "embedded") else Path(spec)


class HashedTextEncoder(nn.Module):
    """A tiny offline text encoder: words hashed (crc32) into a seeded random embedding table,
    plus a learned-position table. tokens (L, D) with a mask; deterministic for a given seed."""

    def __init__(self, dim: int, max_tokens: int, vocab: int = 4096, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab, self.max_tokens = vocab, max_tokens
        self.words = nn.Parameter(torch.randn(vocab, dim, generator=g) * 0.5, requires_grad=False)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim, generator=g) * 0.1, requires_grad=False)

    def forward(self, text: str) -> tuple[Tensor, Tensor]:
        ids = [zlib.crc32(w.encode("utf-8")) % self.vocab for w in text.lower().replace(",", " ").split()]
        ids = [0, *ids][: self.max_tokens]  # a start token, so the empty prompt has one real token
        tokens = torch.zeros(self.max_tokens, self.words.shape[1])
        tokens[: len(ids)] = self.words[torch.tensor(ids)] + self.pos[: len(ids)]
        mask = torch.zeros(self.max_tokens, dtype=torch.bool)
        mask[: len(ids)] = True
        return tokens, mask


def pad_tokens(tokens: Tensor, max_tokens: int) -> tuple[Tensor, Tensor]:
    """tokens (L, D) -> (max_tokens, D) zero-padded or truncated, with its mask (max_tokens,)."""
    n = min(tokens.shape[0], max_tokens)
    out = torch.zeros(max_tokens, tokens.shape[1])
    out[:n] = tokens[:n]
    mask = torch.zeros(max_tokens, dtype=torch.bool)
    mask[:n] = True
    return out, mask


class PixelGuidance(Guidance):
    """Shared by ``tiny`` and ``embedded``: pixel latents and token-embedding text."""

    def _setup_text(self, kind: str, max_tokens: int, dim: int | None, seed: int) -> int:
        """Build the text encoder; returns its width (the UNet's cross_attention_dim)."""
        self.max_tokens = int(max_tokens)
        self.text_kind = kind
        # The text encoder stays on the CPU and out of the module tree (and so out of .to()):
        # prompts are encoded once and cached, and a shared MiniLM may also serve the reward model.
        if kind == "random":
            if dim is None:
                raise ValueError("the random text encoder needs a width (guidance.cross_attention_dim)")
            self.__dict__["text_encoder"] = HashedTextEncoder(dim, self.max_tokens, seed=seed)
            return dim
        from dreamcs.text import get_text_encoder

        self.__dict__["text_encoder"] = get_text_encoder(kind)
        return int(self.text_encoder.dim)

    def _place(self, device: str | torch.device) -> None:
        device = torch.device(device)
        self.to(device)
        if self.cfg.half_precision and device.type == "cuda":
            self.unet.half()

    def _encode_text_uncached(self, texts: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        if self.text_kind == "random":
            return [self.text_encoder(t) for t in texts]
        emb = self.text_encoder.encode(texts)
        out = []
        for i in range(len(texts)):
            real = emb.tokens[i][emb.mask[i].cpu()]
            out.append(pad_tokens(real.float().cpu(), self.max_tokens))
        return out

    def latent_shape(self) -> tuple[int, int]:
        return self.channels, self.image_size

    def encode_images(self, images: Tensor) -> Tensor:
        x = resize_images(images.to(self.device, torch.float32), self.image_size)
        if self.channels == 1 and x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        elif self.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != self.channels:
            raise ValueError(f"guidance expects {self.channels} channels, got images with {x.shape[1]}")
        return x * 2.0 - 1.0


def tiny_unet(channels: int, size: int, widths: list[int], cross_dim: int) -> nn.Module:
    """A small ``UNet2DConditionModel`` (cross-attention on the deeper levels)."""
    from diffusers import UNet2DConditionModel

    n = len(widths)
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (n - 1)
    up = ["CrossAttnUpBlock2D"] * (n - 1) + ["UpBlock2D"]
    groups = min(8, min(widths))
    return UNet2DConditionModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=tuple(widths),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        cross_attention_dim=cross_dim,
        attention_head_dim=max(1, min(widths) // 2),
        norm_num_groups=groups,
    )


@GUIDANCE.register("tiny")
class TinyGuidance(PixelGuidance):
    """A randomly initialised small pixel-space UNet (seeded by ``cfg.seed``): for tests and
    benchmarks. Its scores are noise-like, but every code path of SDS runs as with a real prior."""

    def __init__(self, cfg: GuidanceConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(cfg)
        from diffusers import DDPMScheduler

        if cfg.channels not in (1, 3):
            raise ValueError(f"guidance.channels must be 1 or 3, got {cfg.channels}")
        self.channels, self.image_size = int(cfg.channels), int(cfg.image_size)
        # Own seed, and the global generator left untouched: building it never shifts a run's draws.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            dim = self._setup_text(cfg.text_encoder, cfg.max_tokens, cfg.cross_attention_dim, cfg.seed)
            self.unet = tiny_unet(self.channels, self.image_size, list(cfg.block_out_channels), dim)
        self.unet.requires_grad_(False).eval()
        self._set_schedule(DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"))
        self._place(device)


@GUIDANCE.register("embedded")
class EmbeddedGuidance(PixelGuidance):
    """The offline prior shipped in the package (or any folder in its layout, ``cfg.pretrained``)."""

    def __init__(self, cfg: GuidanceConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(cfg)
        from diffusers import DDPMScheduler, UNet2DConditionModel

        root = prior_dir(cfg.pretrained)
        meta_path = root / "prior.yaml"
        if not (root / "unet" / "config.json").is_file() or not meta_path.is_file():
            raise FileNotFoundError(
                f"{root}: no embedded prior here (need unet/ and prior.yaml). Train one with "
                "`dreamcs prior train --out DIR` and pass guidance.pretrained=DIR, or use "
                "guidance.name=stable-diffusion with a local Stable Diffusion folder."
            )
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path}: expected a mapping")
        # low_cpu_mem_usage=False: the default wants `accelerate` and warns on every load without it
        self.unet = UNet2DConditionModel.from_pretrained(str(root / "unet"), local_files_only=True,
                                                         low_cpu_mem_usage=False)
        self.unet.requires_grad_(False).eval()
        self.channels = int(meta.get("channels", self.unet.config.in_channels))
        self.image_size = int(meta.get("image_size", self.unet.config.sample_size))
        dim = self._setup_text(str(meta.get("text_encoder", "minilm")), int(meta.get("max_tokens", 16)),
                               int(self.unet.config.cross_attention_dim), int(meta.get("seed", 0)))
        if dim != self.unet.config.cross_attention_dim:
            raise ValueError(f"{root}: text width {dim} != unet cross_attention_dim {self.unet.config.cross_attention_dim}")
        sched_dir = root / "scheduler"
        scheduler = (DDPMScheduler.from_pretrained(str(sched_dir)) if sched_dir.is_dir()
                     else DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"))
        self._set_schedule(scheduler)
        self._place(device)


def save_prior(folder: str | Path, unet: nn.Module, scheduler: object, *, text_encoder: str = "minilm",
               max_tokens: int = 16, image_size: int | None = None, channels: int | None = None) -> Path:
    """Write a prior folder that ``embedded`` guidance loads (for the prior trainer and tests)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(root / "unet"), safe_serialization=True)
    scheduler.save_pretrained(str(root / "scheduler"))
    meta = {
        "text_encoder": text_encoder,
        "max_tokens": int(max_tokens),
        "image_size": int(image_size or unet.config.sample_size),
        "channels": int(channels or unet.config.in_channels),
    }
    (root / "prior.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return root
