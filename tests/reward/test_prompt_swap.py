"""The prompt-swap term: in-batch wrong prompts teach the text path which shapes a prompt names."""

from __future__ import annotations

import pytest
import torch
from reward_helpers import random_batch, tiny_model, tiny_train_config

from dreamcs.reward.evaluate import prompt_agreement
from dreamcs.reward.losses import prompt_swap_loss, swap_partners
from dreamcs.reward.train import prompt_fits, train
from dreamcs.utils import read_jsonl


def test_swap_partners_are_other_objects_with_other_prompts():
    pooled = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.0, 1.0]])
    objects = ["a", "b", "c", "c"]
    for seed in range(20):
        p = swap_partners(pooled, objects, 0.7, torch.Generator().manual_seed(seed)).tolist()
        assert p[0] in (2, 3) and p[1] in (2, 3)  # item 1's prompt is too close to item 0's
        assert p[2] in (0, 1) and p[3] in (0, 1)  # items 2 and 3 show the same object
    alone = swap_partners(pooled[:2], ["a", "b"], 0.7, torch.Generator().manual_seed(0))
    assert alone.tolist() == [-1, -1]


def test_prompt_swap_loss():
    r, s = torch.tensor([2.0, 0.0, 5.0]), torch.tensor([0.0, 2.0, -5.0])
    got = prompt_swap_loss(r, s, torch.tensor([True, True, False]))
    want = -(torch.nn.functional.logsigmoid(torch.tensor(2.0)) + torch.nn.functional.logsigmoid(torch.tensor(-2.0))) / 2
    assert float(got) == pytest.approx(float(want))
    none = prompt_swap_loss(r.requires_grad_(), s, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


def test_swapped_reward_equals_reading_the_mesh_with_the_other_prompts():
    model = tiny_model().eval()
    f, c = random_batch(b=3, p=12, k=8)
    own, other = ["a chair", "a lamp", "a vase"], ["a car", "a tree", "a chair"]
    with torch.no_grad():
        out = model(f, c, own, swap_text=model.text_encoder.encode(other))
        direct = model(f, c, other)
        plain = model(f, c, own)
    assert torch.allclose(out.swapped, direct.reward, atol=1e-5)
    assert torch.allclose(out.reward, plain.reward, atol=1e-6) and plain.swapped is None
    with torch.no_grad():  # one mesh encoding read with several prompt sets
        both = model.rewards_for_texts(f, c, [model.text_encoder.encode(own), model.text_encoder.encode(other)])
    assert both.shape == (2, 3) and torch.allclose(both, torch.stack([plain.reward, direct.reward]), atol=1e-5)


class ShapeNamedData(torch.utils.data.Dataset):
    """Two shapes (feature means +-1 on a rotation-invariant channel) named by their prompts; labels
    and scores are independent of the shape, so nothing but the swap term ties a prompt to its shape."""

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            shape, label = i % 2, (i // 2) % 2
            f = torch.randn(12, 8, 10, generator=g) * 0.3
            f[..., 5] += 1.0 if shape else -1.0  # a corner angle: augmentation leaves it alone
            f[..., 6] += 0.8 if label else -0.8  # what the score reads
            self.items.append(dict(features=f, centers=torch.rand(12, 3, generator=g) * 2 - 1,
                                   score=4.5 if label else 1.5, label=label, source="synthetic",
                                   prompt=["a wooden chair", "a glass vase"][shape], object_id=f"o{i}", id=f"s{i}",
                                   caption=["a wooden chair", "a glass vase"][shape]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _own_prompt_wins(model, data) -> float:
    f = torch.stack([it["features"] for it in data.items])
    c = torch.stack([it["centers"] for it in data.items])
    own = [it["prompt"] for it in data.items]
    other = ["a glass vase" if p == "a wooden chair" else "a wooden chair" for p in own]
    return float((model.score_batch(f, c, own) > model.score_batch(f, c, other)).float().mean())


def test_swap_term_ties_prompts_to_shapes(tmp_path):
    data = ShapeNamedData()
    kw = dict(loss_type="mse", steps=150, batch_size=8, lr=3e-3, checkpoint_every=150, log_every=10,
              model=dict(text_match=True))
    with_swap = train(tiny_train_config(lambda_swap=1.0, **kw), data, tmp_path / "swap")
    logs = read_jsonl(tmp_path / "swap" / "metrics.jsonl")
    assert all("loss_swap" in r for r in logs) and logs[-1]["loss_swap"] < 0.5 * logs[0]["loss_swap"]
    assert _own_prompt_wins(with_swap, data) >= 0.9  # damaged (dispreferred) meshes too
    agree, pairs = prompt_agreement(with_swap, data, others=1)
    assert agree >= 0.9 and pairs == 16  # the 16 preferred items, each against the other prompt
    without = train(tiny_train_config(**kw), data, tmp_path / "plain")
    assert _own_prompt_wins(without, data) < 0.8
    assert prompt_agreement(without, data, others=1)[0] < 0.8
    assert "loss_swap" not in read_jsonl(tmp_path / "plain" / "metrics.jsonl")[-1]


def test_cross_attention_alone_stays_at_the_swap_saddle(tmp_path):
    """Why ``text_match`` exists: without it the prompt's gradient through the cross-attention path
    starts vanishingly small, and the same run leaves the swap loss at log 2."""
    kw = dict(loss_type="mse", steps=150, batch_size=8, lr=3e-3, checkpoint_every=150, log_every=10)
    train(tiny_train_config(lambda_swap=1.0, **kw), ShapeNamedData(), tmp_path / "swap")
    assert read_jsonl(tmp_path / "swap" / "metrics.jsonl")[-1]["loss_swap"] > 0.65


def test_text_match_moves_the_reward_with_the_prompt_and_round_trips(tmp_path):
    model = tiny_model(text_match=True).eval()
    f, c = random_batch(b=2, p=12, k=8)
    with torch.no_grad():
        model.match_scale.fill_(3.0)
        a, b = model(f, c, ["a chair"] * 2).reward, model(f, c, ["a vase"] * 2).reward
        assert (a - b).abs().min() > 1e-3
        model.save_pretrained(tmp_path / "m")
        again = type(model).from_pretrained(tmp_path / "m", text_encoder=model.text_encoder).eval()
        assert torch.allclose(again(f, c, ["a chair"] * 2).reward, a, atol=1e-5)


def test_prompt_fits_reads_caption_then_alignment_then_label():
    assert prompt_fits({"prompt": "a cup", "caption": "a cup", "label": 0})
    assert not prompt_fits({"prompt": "a car", "caption": "a cup", "label": 0})  # a wrong-prompt item
    assert prompt_fits({"prompt": "a cup", "alignment": 4.5, "label": 0})
    assert not prompt_fits({"prompt": "a cup", "alignment": 1.0, "label": 1})
    assert prompt_fits({"prompt": "a cup", "alignment": float("nan"), "label": 1})
    assert not prompt_fits({"prompt": "a cup", "label": 0})


def test_prompt_agreement_builds_no_graph(monkeypatch):
    """It only reads the model: no autograd graph (evaluate() runs it outside no_grad)."""
    model = tiny_model(text_match=True)
    seen = []
    real = model.rewards_for_texts
    monkeypatch.setattr(model, "rewards_for_texts", lambda *a, **k: seen.append(torch.is_grad_enabled()) or real(*a, **k))
    agree, pairs = prompt_agreement(model, ShapeNamedData(), others=1)
    assert pairs == 16 and seen and not any(seen)
