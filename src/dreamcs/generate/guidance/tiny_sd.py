"""A Stable Diffusion folder in the diffusers layout with every component tiny and random, built
offline: the same code paths as SD 1.5 / 2.1 (CLIP tokenizer and text encoder, a 4-channel VAE,
a cross-attention UNet, a scaled-linear DDPM schedule) in seconds. For tests and ``make gpu-check``;
its scores mean nothing.

    save_tiny_stable_diffusion("tmp/tiny-sd")   # then guidance.pretrained=tmp/tiny-sd
"""

from __future__ import annotations

from pathlib import Path

import torch


def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable unicode table (what CLIP's byte-level BPE sees)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_clip_tokenizer() -> tuple[object, int]:
    """A character-level CLIP tokenizer (no merges) and its vocabulary size."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77), len(vocab)


def save_tiny_stable_diffusion(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to ``folder`` (created); returns it. The VAE halves its input
    (image_size 32 -> 16 x 16 latents); the global RNG is left as it was."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tok, n_vocab = tiny_clip_tokenizer()
        tok.save_pretrained(str(root / "tokenizer"))
        text = CLIPTextModel(CLIPTextConfig(vocab_size=n_vocab, hidden_size=32, intermediate_size=37,
                                            num_hidden_layers=2, num_attention_heads=4,
                                            max_position_embeddings=77, projection_dim=32))
        text.save_pretrained(str(root / "text_encoder"))
        AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                      up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], latent_channels=4,
                      norm_num_groups=8, sample_size=32).save_pretrained(str(root / "vae"))
        UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                             block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                             up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                             attention_head_dim=4, norm_num_groups=8).save_pretrained(str(root / "unet"))
        DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").save_pretrained(
            str(root / "scheduler"))
    return root
