"""The teacher-figure term: a figure head learns the geometric teacher's per-figure reading."""

from __future__ import annotations

import math

import pytest
import torch
from reward_helpers import tiny_model, tiny_train_config

import dreamcs.data.teacher_figures as tf
from dreamcs.reward import RewardCS
from dreamcs.reward.losses import teacher_figure_loss
from dreamcs.reward.train import collate, train
from dreamcs.utils import read_jsonl


class FigureData(torch.utils.data.Dataset):
    """Labels read channel 6; the two teacher figures read channels 4 and 5, which labels ignore."""

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items, self.teacher_figures = [], {}
        for i in range(n):
            label, a, b = i % 2, (i // 2) % 2, (i // 4) % 2
            f = torch.randn(12, 8, 10, generator=g) * 0.3
            f[..., 6] += 0.8 if label else -0.8
            f[..., 4] += 1.0 if a else -1.0
            f[..., 5] += 1.0 if b else -1.0
            target = torch.tensor([float(a), float(b)])
            self.teacher_figures[f"s{i}"] = target.numpy()
            self.items.append(dict(features=f, centers=torch.rand(12, 3, generator=g) * 2 - 1, score=4.5 if label else 1.5,
                                   label=label, prompt="a chair", object_id=f"o{i}", id=f"s{i}", source="synthetic",
                                   teacher_figures=target))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_figure_head_learns_what_the_teacher_reads(tmp_path):
    data = FigureData()
    kw = dict(loss_type="mse", steps=120, batch_size=8, lr=3e-3, checkpoint_every=120, log_every=10, lambda_teacher=1.0,
              model=dict(teacher_figures=2))
    model = train(tiny_train_config(**kw), data, tmp_path / "run")
    logs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert logs[-1]["loss_teacher"] < 0.5 * logs[0]["loss_teacher"]
    batch = collate(data.items)
    with torch.no_grad():
        pred = torch.sigmoid(model(batch["features"], batch["centers"], batch["prompt"]).teacher_figures)
    right = ((pred > 0.5).float() == batch["teacher_figures"]).float().mean()
    assert right >= 0.9
    # the head is saved and loaded with the model; the reward itself does not read it
    again = RewardCS.from_pretrained(tmp_path / "run")
    with torch.no_grad():
        out = again(batch["features"], batch["centers"], batch["prompt"])
        assert torch.allclose(torch.sigmoid(out.teacher_figures), pred, atol=1e-5)
        model.figure_head[-1].weight.add_(1.0)
        assert torch.allclose(model(batch["features"], batch["centers"], batch["prompt"]).reward, out.reward, atol=1e-5)


def test_teacher_term_needs_a_head_and_targets(tmp_path):
    with pytest.raises(ValueError, match="model.teacher_figures"):
        tiny_train_config(lambda_teacher=1.0)
    data = FigureData(n=8)
    del data.teacher_figures
    with pytest.raises(ValueError, match="teacher-figures"):
        train(tiny_train_config(lambda_teacher=1.0, model=dict(teacher_figures=2)), data, tmp_path / "run")
    data = FigureData(n=8)
    with pytest.raises(ValueError, match="predicts 3"):
        train(tiny_train_config(lambda_teacher=1.0, model=dict(teacher_figures=3)), data, tmp_path / "run")


def test_teacher_loss_leaves_out_unscored_items():
    logits = torch.zeros(3, 2, requires_grad=True)
    target = torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.0, 0.0]])
    loss = teacher_figure_loss(logits, target)
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    assert float(teacher_figure_loss(logits, torch.full((3, 2), float("nan"))).detach()) == 0.0
    # collate fills items without targets with NaN rows
    items = [FigureData(n=2).items[0], {k: v for k, v in FigureData(n=2).items[1].items() if k != "teacher_figures"}]
    assert torch.isnan(collate(items)["teacher_figures"][1]).all()


def test_a_model_without_the_head_has_no_figures():
    m = tiny_model()
    out = m(torch.randn(1, 12, 8, 10), torch.rand(1, 12, 3), ["a chair"])
    assert out.teacher_figures is None and not any("figure_head" in k for k in m.state_dict())


def test_figure_weight_mixes_the_teacher_score_into_the_reward(tmp_path):
    m = tiny_model(teacher_figures=12).eval()
    f, c = torch.randn(2, 12, 8, 10), torch.rand(2, 12, 3)
    with torch.no_grad():
        plain = m(f, c, ["a chair"] * 2)
        assert torch.equal(plain.reward, plain.learned)  # figure_weight 0: the head is not read
        teacher = m.teacher_score(plain.teacher_figures)
        # the scorer's weights and groups: sure of no penalty 5; of every one ~0 (realism 16, fidelity 23)
        assert float(m.teacher_score(torch.full((1, 12), -50.0))) == pytest.approx(5.0, abs=1e-4)
        assert 0 < float(m.teacher_score(torch.full((1, 12), 50.0))) < 1e-4
        one = torch.full((1, 12), -50.0)
        one[0, tf.TEACHER_FIGURES.index("jagged")] = 50.0  # a fidelity penalty of weight 5: fidelity 0
        assert float(m.teacher_score(one)) == pytest.approx((5 + math.log(2) / 2) / 2, abs=1e-3)  # softplus(0)
        m.save_pretrained(tmp_path / "m")
        cfg = (tmp_path / "m" / "config.yaml").read_text().replace("figure_weight: 0.0", "figure_weight: 0.5")
        (tmp_path / "m" / "config.yaml").write_text(cfg)
        mixed = RewardCS.from_pretrained(tmp_path / "m")
        out = mixed(f, c, ["a chair"] * 2)
        assert torch.allclose(out.reward, 0.5 * plain.learned + 0.5 * teacher, atol=1e-5)
        # the mix is the same for every prompt of a mesh: which prompt fits it is read as before
        two = mixed.rewards_for_texts(f, c, [mixed.text_encoder.encode(["a chair"] * 2), mixed.text_encoder.encode(["a vase"] * 2)])
        assert torch.allclose(two[0], out.reward, atol=1e-5)
    with pytest.raises(ValueError, match="teacher_figures"):
        tiny_model(figure_weight=0.5)
