"""``stable-diffusion`` guidance through diffusers: SD 1.5 / 2.1 base (or any folder in the
diffusers layout: ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``).

``cfg.pretrained`` is a local folder or a hub id (transformers/diffusers resolve it and honour
``HF_HUB_OFFLINE``). On a GPU with ``half_precision`` the UNet, VAE and text encoder run in
float16; the SDS gradient itself is computed in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dreamcs.generate.guidance.base import GUIDANCE, Guidance, GuidanceConfig, resize_images


@GUIDANCE.register("stable-diffusion")
class StableDiffusionGuidance(Guidance):
    """Latent-space SDS: images are resized to ``cfg.image_size`` and encoded by the VAE."""

    def __init__(self, cfg: GuidanceConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(cfg)
        from diffusers import AutoencoderKL, DDPMScheduler
        from transformers import CLIPTextModel, CLIPTokenizer

        if not cfg.pretrained:
            raise ValueError("guidance.pretrained must name a Stable Diffusion folder or hub id "
                             "(e.g. stable-diffusion-v1-5/stable-diffusion-v1-5)")
        path = cfg.pretrained
        device = torch.device(device)
        dtype = torch.float16 if (cfg.half_precision and device.type == "cuda") else torch.float32
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
            self.text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype)
            self.vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
            self.unet = self._load_unet(path, dtype)
            scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
        except (OSError, ValueError) as e:
            raise OSError(f"{path}: could not load Stable Diffusion components: {e}".split("\n")[0]) from e
        for m in (self.text_encoder, self.vae, self.unet):
            m.requires_grad_(False).eval()
        # the schedule buffer first, so that .to() moves it with the weights (indexed by CUDA timesteps)
        self._set_schedule(scheduler)
        self.to(device)
        self.scaling_factor = float(getattr(self.vae.config, "scaling_factor", 0.18215))

    def _load_unet(self, path: str, dtype: torch.dtype) -> torch.nn.Module:
        """The ``unet/`` subfolder (a subclass with another UNet class overrides this)."""
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)

    def _encode_text_uncached(self, texts: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        # SD was trained on full 77-token padded sequences without a mask: keep them as they are.
        batch = self.tokenizer(
            texts, padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        )
        ids = batch.input_ids.to(self.text_encoder.device)
        hidden = self.text_encoder(ids)[0].float().cpu()
        return [(hidden[i], None) for i in range(len(texts))]

    def latent_shape(self) -> tuple[int, int]:
        # each VAE down block but the last halves the image: 512 px -> 64 latents for SD 1.5 / 2.1
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return int(self.unet.config.in_channels), self.cfg.image_size // factor

    def encode_images(self, images: Tensor) -> Tensor:
        x = resize_images(images.to(self.device, torch.float32), self.cfg.image_size)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x * 2.0 - 1.0).to(self.vae.dtype)
        posterior = self.vae.encode(x).latent_dist
        return (posterior.sample() * self.scaling_factor).float()
