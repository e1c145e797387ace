"""Evaluation metrics against direct computations, and the written outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reward_helpers import SyntheticPrefDataset, tiny_model

from dreamcs.reward.evaluate import embedding_d_cs, evaluate, pair_accuracy, pca_2d, roc_auc, spearman


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=40), 1)  # rounding creates ties
    y = rng.integers(0, 2, size=40)
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(1.0 if a > b else 0.5 if a == b else 0.0) for a in pos for b in neg])
    assert roc_auc(s, y) == pytest.approx(brute)
    acc, n = pair_accuracy(s, y)
    assert n == len(pos) * len(neg) and acc == pytest.approx(np.mean([a > b for a in pos for b in neg]))
    assert roc_auc(np.array([1.0, 2.0]), np.array([1, 2])) != roc_auc(np.array([1.0, 2.0]), np.array([1, 2]))  # nan


def test_same_prompt_pairs():
    r = np.array([3.0, 1.0, 0.0, 2.0])
    y = np.array([1, 0, 1, 0])
    acc, n = pair_accuracy(r, y, ["a", "a", "b", "b"])
    assert n == 2 and acc == 0.5


def test_spearman_and_pca():
    a = np.arange(10.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    x = np.random.default_rng(1).normal(size=(30, 5)) * np.array([5, 1, 0.1, 0.1, 0.1])
    xy = pca_2d(x)
    assert xy.shape == (30, 2) and xy[:, 0].var() > xy[:, 1].var()


def test_evaluate_writes_outputs(tmp_path):
    data = SyntheticPrefDataset(n_pos=5, n_neg=7)
    m = evaluate(tiny_model(), data, tmp_path)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["n"] == 12 and saved["n_pairs"] == 35
    assert 0 <= saved["roc_auc"] <= 1 and saved["d_cs"] >= 0
    assert m["same_prompt_pair_accuracy"] == saved["same_prompt_pair_accuracy"]
    png = (tmp_path / "embeddings.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_embedding_d_cs_subsampled_reproducible_and_bounded():
    rng = np.random.default_rng(2)
    emb = np.concatenate([rng.normal(size=(300, 8)) * 0.01 + 1, rng.normal(size=(40, 8)) * 0.01])
    y = np.array([1] * 300 + [0] * 40)
    full = embedding_d_cs(emb, y)
    assert np.isfinite(full) and 0 < full <= 1 + 2 * np.log(2)  # unbalanced 300 vs 40: still sane
    sub = embedding_d_cs(emb, y, max_per_class=50)
    assert sub == embedding_d_cs(emb, y, max_per_class=50)  # fixed seed
    assert sub == pytest.approx(full, rel=0.05)
    assert embedding_d_cs(emb, y, max_per_class=50, seed=1) != sub
    assert np.isnan(embedding_d_cs(emb[:300], y[:300]))


def test_per_kind_auc_separates_defect_kinds():
    from dreamcs.reward.evaluate import defect_kind, per_kind_auc

    ids = ["a", "b", "a~holes", "b~holes", "a~noise", "b~noise"]
    label = np.array([1, 1, 0, 0, 0, 0])
    reward = np.array([4.0, 3.0, 1.0, 2.0, 3.5, 5.0])  # holes ranked below both clean, noise mixed
    got = per_kind_auc(reward, label, ids)
    assert defect_kind("a~holes") == "holes" and defect_kind("a") == "clean"
    assert got["holes"]["roc_auc"] == 1.0 and got["holes"]["n"] == 2
    assert got["noise"]["roc_auc"] == 0.25
    assert per_kind_auc(reward, label, ["a", "b", "c", "d", "e", "f"]) == {}
