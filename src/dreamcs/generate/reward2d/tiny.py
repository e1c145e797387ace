"""A tiny random BLIP reward folder (any head) from a config, for tests: real code paths, no download."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamcs.generate.reward2d.blip_reward import BlipReward, BlipRewardConfig, save_blip_reward


def tiny_bert_tokenizer(folder: Path) -> object:
    """A BERT WordPiece tokenizer over lower-case letters, digits and punctuation (+ BLIP's tokens)."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789,.-'")
    words += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def save_tiny_blip_reward(folder: str | Path, head: str = "imagereward", seed: int = 0) -> Path:
    """Write a tiny ``head`` model (ViT 32 px / 8 px patches, 2 + 2 layers of width 32 / 48)."""
    root = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tok = tiny_bert_tokenizer(root / "tokenizer")
        cfg = BlipRewardConfig(
            head=head, image_size=32, max_length=24,
            vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8, layer_norm_eps=1e-6, initializer_range=0.02),
            text=dict(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,  # type: ignore[arg-type]
                      num_attention_heads=4, max_position_embeddings=64, layer_norm_eps=1e-12, encoder_hidden_size=32,
                      bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id))
        if head == "reward3d-fusion":
            cfg.reward_std = 5.0
        model = BlipReward(cfg)
        # wider head weights than the default init, so that the tiny rewards visibly depend on the image
        for name, p in model.named_parameters():
            if name.startswith(("mlp.", "Scorer.")) and p.ndim == 2:
                torch.nn.init.normal_(p, std=1.0 / p.shape[1] ** 0.5 * 2.0)
        return save_blip_reward(model, tok, root)
