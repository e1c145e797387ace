"""Tiny, randomly initialised MVDream and DeepFloyd IF folders in their real layouts, built offline
from configs: the same loading and SDS code paths as the real weights in seconds on a CPU. For
tests and ``make gpu-check``; their predictions mean nothing.

    save_tiny_mvdream("tmp/tiny-mv")        # guidance.name=mvdream guidance.pretrained=tmp/tiny-mv
    save_tiny_deepfloyd_if("tmp/tiny-if")   # guidance.name=deepfloyd-if guidance.pretrained=tmp/tiny-if
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamcs.generate.guidance.tiny_sd import save_tiny_stable_diffusion


def save_tiny_mvdream(folder: str | Path, seed: int = 0) -> Path:
    """The tiny SD folder (CLIP, VAE halving its input, scheduler) with a tiny ``MultiViewUNet``
    (camera_dim 16, cross-view attention at both levels) in ``unet/``. image_size 32 -> 16 latents."""
    from dreamcs.generate.guidance.mvdream_unet import MultiViewUNet

    root = save_tiny_stable_diffusion(folder, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        MultiViewUNet(image_size=16, in_channels=4, model_channels=16, out_channels=4, num_res_blocks=1,
                      attention_resolutions=[1, 2], channel_mult=[1, 2], num_head_channels=8,
                      context_dim=32, camera_dim=16, norm_num_groups=8).save_pretrained(str(root / "unet"))
    return root


def tiny_t5_tokenizer() -> tuple[object, int]:
    """A character-level T5 tokenizer (fast, no sentencepiece) and its vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\u2581"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=77)
    return fast, len(vocab)


def save_tiny_deepfloyd_if(folder: str | Path, seed: int = 0, image_size: int = 16) -> Path:
    """IF stage I's layout: a tiny learned-variance ``UNet2DConditionModel`` (3 in, 6 out), a
    squaredcos DDPM schedule with learned_range variance, a tiny T5 encoder and tokenizer."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tok, n_vocab = tiny_t5_tokenizer()
        tok.save_pretrained(str(root / "tokenizer"))  # type: ignore[attr-defined]
        T5EncoderModel(T5Config(vocab_size=n_vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                feed_forward_proj="gated-gelu")).save_pretrained(str(root / "text_encoder"))
        # IF-I's UNet: ResNet-skip blocks with simple cross-attention, text projected in (encoder_hid_dim)
        UNet2DConditionModel(sample_size=image_size, in_channels=3, out_channels=6, layers_per_block=1,
                             block_out_channels=(16, 32), down_block_types=("ResnetDownsampleBlock2D",
                                                                            "SimpleCrossAttnDownBlock2D"),
                             up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
                             mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=32,
                             encoder_hid_dim=32, attention_head_dim=8, norm_num_groups=8,
                             addition_embed_type="text", addition_embed_type_num_heads=4,
                             resnet_time_scale_shift="scale_shift", act_fn="gelu",
                             class_embed_type=None).save_pretrained(str(root / "unet"))
        DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
                      thresholding=True, clip_sample=True).save_pretrained(str(root / "scheduler"))
    return root
