"""Text encoders: the offline MiniLM, a tiny random CLIP, the hash encoder, caching and freezing."""

from __future__ import annotations

import pytest
import torch

from dreamcs.text import TEXT_ENCODERS, build_text_encoder, get_text_encoder, masked_mean


@pytest.fixture(scope="module")
def minilm():
    return get_text_encoder("minilm")


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).item()


def test_registry_names():
    assert {"minilm", "clip", "hash"} <= set(TEXT_ENCODERS.names())
    with pytest.raises(KeyError, match="unknown text encoder 'nope'"):
        build_text_encoder("nope")
    with pytest.raises(ValueError, match="non-empty"):
        build_text_encoder("")


def test_minilm_shapes_mask_pooled(minilm):
    emb = minilm.encode(["a chair", "a tall red rocket standing on a launch pad"])
    assert minilm.dim == 384 and minilm.spec == "minilm"
    assert emb.tokens.shape[0] == 2 and emb.tokens.shape[2] == 384
    assert emb.mask.dtype == torch.bool and emb.mask[1].all() and not emb.mask[0].all()
    assert torch.all(emb.tokens[0][~emb.mask[0]] == 0)
    torch.testing.assert_close(emb.pooled, masked_mean(emb.tokens, emb.mask))


def test_minilm_is_semantic(minilm):
    p = minilm.encode(["a wooden chair", "an armchair to sit on", "a rocket launching into space"]).pooled
    assert _cos(p[0], p[1]) > _cos(p[0], p[2]) + 0.1


def test_minilm_frozen_and_batch_invariant(minilm):
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.training and not minilm.model.training
    alone = minilm.encode(["a small blue vase"]).pooled[0]
    minilm.clear_cache()
    together = minilm.encode(["something much longer than the vase prompt here", "a small blue vase"])
    torch.testing.assert_close(together.pooled[1], alone, atol=1e-5, rtol=1e-4)


def test_cache_avoids_recompute(minilm, monkeypatch):
    minilm.clear_cache()
    minilm.encode(["a teapot"])
    calls = []
    orig = type(minilm)._encode_uncached

    def spy(self, prompts):
        calls.append(list(prompts))
        return orig(self, prompts)

    monkeypatch.setattr(type(minilm), "_encode_uncached", spy)
    minilm.encode(["a teapot", "a teapot", "a mug"])
    assert calls == [["a mug"]]


def test_max_length_truncates():
    enc = build_text_encoder("hash:16", max_length=4)
    emb = enc.encode(["one two three four five six"])
    assert emb.tokens.shape == (1, 4, 16)


def test_hash_encoder_deterministic():
    a = build_text_encoder("hash:32").encode(["a red chair"])
    b = build_text_encoder("hash:32").encode(["A red chair!"])
    torch.testing.assert_close(a.tokens, b.tokens)
    with pytest.raises(ValueError, match="integer"):
        build_text_encoder("hash:x")


def _tiny_clip(tmp_path):
    """A random CLIP text model + a byte-level BPE tokenizer with no merges, built offline."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = sorted(set(bytes_to_unicode().values()))
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=40, eos_token_id=vocab["<|endoftext|>"],
        bos_token_id=vocab["<|startoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    )
    CLIPTextModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_clip_tiny_offline(tmp_path):
    path = _tiny_clip(tmp_path)
    enc = build_text_encoder(f"clip:{path}")
    assert enc.dim == 32 and enc.spec == f"clip:{path}" and enc.max_length == 40
    emb = enc.encode(["a cat", "a much longer prompt about a dog"])
    assert emb.tokens.shape[0] == 2 and emb.tokens.shape[2] == 32 and emb.pooled.shape == (2, 32)
    assert emb.mask[1].all() and emb.mask[0].sum() < emb.mask[1].sum()
    assert not any(p.requires_grad for p in enc.parameters())
    # pooled is CLIP's EOS state: the last real token's state
    last = emb.mask[0].sum() - 1
    torch.testing.assert_close(emb.pooled[0], emb.tokens[0, last])
    # long prompts are cut to max_length
    short = build_text_encoder(f"clip:{path}", max_length=8)
    assert short.encode(["x " * 50]).tokens.shape[1] == 8


def test_clip_missing_path(tmp_path):
    with pytest.raises(ValueError, match="clip:PATH_OR_ID"):
        build_text_encoder("clip:")
