"""A tiny random transformers VLM (LLaVA: a 1-layer CLIP ViT + a 1-layer Llama) for VisionReward tests.

    folder = save_tiny_vlm(tmp / "vlm")              # config.json, model.safetensors, processor, chat template
    vr = load_vision_reward(str(folder))             # the whole VR path, in a second on the CPU

Its word-level tokenizer knows the words of the shipped checklist, its alignment question and
``extra_words`` (others become ``<unk>``), with "yes", "no", "Yes", "No" as single tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

CHAT_TEMPLATE = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
                 "{% else %} question: {{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
                 "{% if add_generation_prompt %} short answer:{% endif %}")


def save_tiny_vlm(folder: str | Path, seed: int = 0, extra_words: Sequence[str] = (), image_size: int = 32,
                  chat_template: bool = True) -> Path:
    """Write a random LLaVA (hidden size 16, 4 x 4 patches of 8 px) and its processor into ``folder``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    from dreamcs.evaluate.vision_reward import load_checklist

    c = load_checklist()
    text = " ".join([q.text for q in c.questions] + [c.alignment.template, *extra_words, "question short answer"])
    special = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
    words = sorted(set(re.findall(r"\w+|[^\w\s]", text.lower())) | {"yes", "no"})
    vocab = {w: i for i, w in enumerate(special + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()  # "Yes" and "yes" are one token, as "No" and "no"
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.add_special_tokens(special)  # keeps "<image>" whole
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>")
    patch = 8
    images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch, num_additional_image_tokens=1,
                               vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE if chat_template else None)
    torch.manual_seed(seed)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=image_size, patch_size=patch),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                pad_token_id=0, bos_token_id=2, eos_token_id=3, initializer_range=0.5),
        image_token_index=vocab["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    folder = Path(folder)
    LlavaForConditionalGeneration(cfg).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
