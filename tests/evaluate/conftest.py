"""Evaluate-stage fixtures: tiny generation settings, a tiny random CLIP and RewardCS, saved offline."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _threads_from_env():
    """Honour OMP_NUM_THREADS for the whole session: module fixtures generate meshes that tests
    compare byte for byte with later runs, and the thread count changes float reductions."""
    want = os.environ.get("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    if want and want.isdigit() and int(want) > 0:
        torch.set_num_threads(int(want))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A random CLIPModel + CLIPProcessor (character-level BPE tokenizer, 32 px images), saved."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789,.'-!?")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    d = tmp_path_factory.mktemp("clip")
    (d / "merges.txt").write_text("#version: 0.2\n")
    import json

    (d / "vocab.json").write_text(json.dumps(vocab))
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=77)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=77, eos_token_id=vocab["<|endoftext|>"],
                         bos_token_id=vocab["<|startoftext|>"], pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(d)
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory):
    """A randomly initialised tiny RewardCS (hashed text encoder: no MiniLM load), saved."""
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(1)
    model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32"))
    return model.save_pretrained(tmp_path_factory.mktemp("reward") / "model")
