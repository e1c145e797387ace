"""``deepfloyd-if`` guidance: pixel-space SDS at 64 px from DeepFloyd IF stage I (DreamFusion-IF).

``cfg.pretrained`` is a local folder in the layout of ``DeepFloyd/IF-I-XL-v1.0``: ``unet/`` (a
diffusers ``UNet2DConditionModel`` with a learned-variance output of 6 channels: the first 3 are
epsilon), ``scheduler/`` and, unless ``cfg.text_embeddings`` names a precomputed file,
``text_encoder/`` + ``tokenizer/`` (T5 v1.1 XXL: about 9.5 GB in float16, and the tokenizer needs
``sentencepiece``). Precompute the embeddings once on a machine that can hold T5 with
:func:`save_text_embeddings`; the run then loads only the UNet (IF-I-XL: 4.3 B parameters).

Images (B, H, W, 3) in [0, 1] are resized to ``cfg.image_size`` (64) and mapped to [-1, 1]:
those pixels are the "latents". threestudio's IF settings: guidance scale 20, sds weighting.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dreamcs.generate.guidance.base import GUIDANCE, Guidance, GuidanceConfig, resize_images

T5_MAX_LENGTH = 77  # diffusers' IF pipeline pads / truncates the prompt to 77 T5 tokens


def encode_t5(tokenizer: object, encoder: torch.nn.Module, texts: list[str]) -> list[Tensor]:
    """IF's text embeddings as diffusers' IFPipeline makes them: T5's last hidden states of the
    77-token padded prompt (masked attention inside T5, padding kept). Per text (77, D) float32 CPU."""
    batch = tokenizer(texts, padding="max_length", max_length=T5_MAX_LENGTH, truncation=True,  # type: ignore[operator]
                      add_special_tokens=True, return_tensors="pt")
    dev = next(encoder.parameters()).device
    mask = batch.attention_mask.to(dev)
    hidden = encoder(batch.input_ids.to(dev), attention_mask=mask)[0]
    hidden = hidden.float().cpu()
    return [hidden[i] for i in range(len(texts))]


def load_t5(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> tuple:
    """(tokenizer, T5EncoderModel) from ``path/tokenizer`` and ``path/text_encoder``."""
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        tok = AutoTokenizer.from_pretrained(str(path), subfolder="tokenizer")
        enc = T5EncoderModel.from_pretrained(str(path), subfolder="text_encoder", torch_dtype=dtype)
    except (OSError, ValueError, ImportError) as e:
        raise OSError(f"{path}: could not load the T5 tokenizer / text_encoder ({e})".split("\n")[0]) from e
    return tok, enc.to(device).eval().requires_grad_(False)


@torch.no_grad()
def save_text_embeddings(pretrained: str | Path, texts: list[str], out: str | Path,
                         device: str | torch.device = "cpu") -> Path:
    """Encode ``texts`` with the folder's T5 and write ``out`` (safetensors: text -> (77, D) float16).

    Include every text a run asks for: the prompt with each view suffix (``"a corgi, front view"``)
    and the negative prompt (``""``)."""
    from safetensors.torch import save_file

    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    tok, enc = load_t5(pretrained, dtype, device)
    texts = list(dict.fromkeys(texts))
    emb = encode_t5(tok, enc, texts)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({t: e.half().contiguous() for t, e in zip(texts, emb, strict=True)}, str(out))
    return out


@GUIDANCE.register("deepfloyd-if")
class DeepFloydIFGuidance(Guidance):
    """Pixel-space SDS with IF stage I's UNet (64 x 64 x 3)."""

    def __init__(self, cfg: GuidanceConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(cfg)
        from diffusers import DDPMScheduler, UNet2DConditionModel

        if not cfg.pretrained:
            raise ValueError("guidance.pretrained must name a local DeepFloyd IF stage-I folder "
                             "(the layout of DeepFloyd/IF-I-XL-v1.0: unet/, scheduler/, text_encoder/, tokenizer/)")
        path, device = cfg.pretrained, torch.device(device)
        dtype = torch.float16 if (cfg.half_precision and device.type == "cuda") else torch.float32
        try:
            self.unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
            scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
        except (OSError, ValueError) as e:
            raise OSError(f"{path}: could not load the IF unet / scheduler: {e}".split("\n")[0]) from e
        self.unet.requires_grad_(False).eval()
        self.out_channels = int(self.unet.config.in_channels)
        self._set_schedule(scheduler)
        self.to(device)
        self._precomputed: dict[str, Tensor] | None = None
        self._t5: tuple | None = None
        if cfg.text_embeddings:
            from safetensors.torch import load_file

            f = Path(cfg.text_embeddings)
            if not f.is_file():
                raise FileNotFoundError(f"{f}: guidance.text_embeddings names no file")
            self._precomputed = load_file(str(f))
        else:
            self._t5 = load_t5(path, dtype, device)

    def _encode_text_uncached(self, texts: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        if self._precomputed is not None:
            missing = [t for t in texts if t not in self._precomputed]
            if missing:
                raise KeyError(f"{self.cfg.text_embeddings}: no embedding for {missing[0]!r} "
                               "(precompute every prompt + view suffix and the negative prompt)")
            return [(self._precomputed[t].float(), None) for t in texts]
        assert self._t5 is not None
        # no mask for the UNet: diffusers' IFPipeline passes the full padded sequence
        return [(e, None) for e in encode_t5(*self._t5, texts)]

    def _unet_eps(self, x: Tensor, t: Tensor, emb: Tensor, mask: Tensor | None) -> Tensor:
        # learned variance: channels [eps (3), variance interpolation (3)]
        return self.unet(x, t, encoder_hidden_states=emb).sample[:, : self.out_channels]

    def latent_shape(self) -> tuple[int, int]:
        return self.out_channels, self.cfg.image_size

    def encode_images(self, images: Tensor) -> Tensor:
        x = resize_images(images.to(self.device, torch.float32), self.cfg.image_size)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x * 2.0 - 1.0
