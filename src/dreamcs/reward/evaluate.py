"""Evaluation of a reward model on a labelled split: preference accuracy, ROC-AUC, Spearman,
the CS divergence of the embeddings, and a 2-D PCA picture of the embeddings.

Note: accuracy over all (preferred, dispreferred) cross pairs with ties counted as 1/2 *is* the
ROC-AUC of the reward as a classifier; we report accuracy with ties counted as wrong, so the two
differ only by ties.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dreamcs.reward.cs_divergence import cs_divergence
from dreamcs.reward.model import RewardCS
from dreamcs.reward.train import collate
from dreamcs.utils import atomic_write_text


@torch.no_grad()
def predict(model: RewardCS, dataset: Dataset, batch_size: int = 32) -> dict[str, Any]:
    """Rewards (N,), embeddings (N, D), labels, scores, prompts of every item, in eval mode."""
    was = model.training
    model.eval()
    rewards, embs, labels, scores, prompts, ids = [], [], [], [], [], []
    n = len(dataset)  # type: ignore[arg-type]
    try:
        for s in range(0, n, batch_size):
            items = [dataset[i] for i in range(s, min(n, s + batch_size))]
            b = collate(items)
            bnd = b.get("boundary")
            # the set's teacher ramps, read by a model with exact_figures (RewardCSConfig) in place of its
            # head's, then those of the figures no head predicts (MESH_ONLY_FIGURES) where the set has them
            fv = b.get("teacher_figures")
            if fv is not None and b.get("mesh_figures") is not None:
                fv = torch.cat([fv, b["mesh_figures"]], -1)
            o = model(b["features"].to(model.device), b["centers"].to(model.device), b["prompt"],
                      boundary=None if bnd is None else bnd.to(model.device), figure_values=fv)
            rewards.append(o.reward.cpu())
            embs.append(o.embedding.cpu())
            labels += b["label"].tolist()
            scores += b["score"].tolist()
            prompts += b["prompt"]
            ids += [str(it.get("id", i + s)) for i, it in enumerate(items)]
    finally:
        model.train(was)
    return {
        "reward": torch.cat(rewards).numpy() if rewards else np.zeros(0),
        "embedding": torch.cat(embs).numpy() if embs else np.zeros((0, 0)),
        "label": np.asarray(labels), "score": np.asarray(scores), "prompt": prompts, "id": ids,
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC via the rank-sum (Mann-Whitney) formula with average ranks for ties; nan if one class."""
    from scipy.stats import rankdata

    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    keep = (labels == 0) | pos
    ranks = rankdata(scores[keep])
    return float((ranks[pos[keep]].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pair_accuracy(reward: np.ndarray, label: np.ndarray, prompts: list[str] | None = None) -> tuple[float, int]:
    """Share of (preferred, dispreferred) pairs with r_p > r_d (strict); same-prompt pairs only when
    ``prompts`` is given. Returns (accuracy or nan, number of pairs)."""
    p_idx, d_idx = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    diff = reward[p_idx][:, None] - reward[d_idx][None, :]
    if prompts is not None:
        pr = np.asarray(prompts, dtype=object)
        same = pr[p_idx][:, None] == pr[d_idx][None, :]
        diff = diff[same]
    n = int(diff.size)
    return (float((diff > 0).mean()) if n else float("nan")), n


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def pca_2d(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 2): projection on the two leading principal axes."""
    xc = x - x.mean(0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    proj = xc @ vt[:2].T
    return np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))


def plot_embeddings(emb: np.ndarray, label: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = pca_2d(emb)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for y, name, color in ((1, "preferred", "tab:blue"), (0, "dispreferred", "tab:red")):
        m = label == y
        ax.scatter(xy[m, 0], xy[m, 1], s=14, c=color, label=f"{name} ({int(m.sum())})", alpha=0.75)
    ax.set_title(title or "RewardCS embeddings (PCA)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend()
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, p)
    return p


def embedding_d_cs(emb: np.ndarray, label: np.ndarray, max_per_class: int = 1024, seed: int = 0) -> float:
    """D_CS between the preferred and dispreferred embeddings (N, D), cross-median bandwidth.

    The kernel matrices are O(N^2): each class is subsampled to at most ``max_per_class`` items
    with a fixed seed (so the metric is reproducible; 2 x 1024 items is a 16 MB Gram matrix).
    nan when a class is missing.
    """
    rng = np.random.default_rng(seed)
    sets = []
    for y in (1, 0):
        idx = np.flatnonzero(label == y)
        if len(idx) == 0:
            return float("nan")
        if len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        sets.append(torch.as_tensor(emb[idx], dtype=torch.float64))
    return float(cs_divergence(sets[0], sets[1]))


def defect_kind(item_id: str) -> str:
    """The defect kind named by an item id (``<object>~<kind>`` in the synthesised sets), else ``clean``."""
    return item_id.rsplit("~", 1)[1] if "~" in item_id else "clean"


def per_kind_auc(reward: np.ndarray, label: np.ndarray, ids: list[str]) -> dict[str, dict[str, float]]:
    """ROC-AUC of the preferred items against the dispreferred items of each defect kind (ids
    ``<object>~<kind>``; an id without ``~`` is clean); {} when no id names a kind."""
    kinds = np.array([defect_kind(i) for i in ids], dtype=object)
    pos = label == 1
    out: dict[str, dict[str, float]] = {}
    for k in sorted(set(kinds[~pos]) - {"clean"}):
        m = pos | ((kinds == k) & (label == 0))
        out[k] = {"roc_auc": roc_auc(reward[m], label[m]), "n": int(((kinds == k) & (label == 0)).sum())}
    return out


def _clean_and_fits(item: dict[str, Any]) -> bool:
    from dreamcs.reward.train import prompt_fits

    return int(item["label"]) == 1 and prompt_fits(item)


@torch.no_grad()
def prompt_agreement(model: RewardCS, dataset: Dataset, max_items: int = 128, others: int = 8, seed: int = 0,
                     batch_size: int = 32) -> tuple[float, int]:
    """How often the reward knows what a prompt names: over preferred items whose prompt is their
    caption (at most ``max_items``, a seeded subset), the share of (item, other prompt) pairs where
    the mesh scores higher with its own prompt than with ``others`` other objects' prompts from the
    same set. Returns (share or nan, number of pairs); nan when fewer than two distinct prompts."""
    n = len(dataset)  # type: ignore[arg-type]
    rows = getattr(dataset, "rows", None)
    meta = rows if isinstance(rows, list) and len(rows) == n else None  # else read (featurise) each item once
    idx = [i for i in range(n) if _clean_and_fits(meta[i] if meta else dataset[i])]
    rng = np.random.default_rng(seed)
    if len(idx) > max_items:
        idx = sorted(rng.choice(idx, size=max_items, replace=False).tolist())
    items = [dataset[i] for i in idx]
    prompts = [str(it["prompt"]) for it in items]
    distinct = list(dict.fromkeys(prompts))
    k = min(others, len(distinct) - 1)  # every item has len(distinct) - 1 others to draw from
    if k < 1:
        return float("nan"), 0
    picks = [[q for q in distinct if q != p] for p in prompts]
    picks = [[c[j] for j in rng.permutation(len(c))[:k]] for c in picks]
    was = model.training
    model.eval()
    wins = 0
    try:
        for s in range(0, len(items), batch_size):
            b = collate(items[s : s + batch_size])
            texts = [model.text_encoder.encode(b["prompt"])]
            texts += [model.text_encoder.encode([pk[j] for pk in picks[s : s + batch_size]]) for j in range(k)]
            bnd = b.get("boundary")
            r = model.rewards_for_texts(b["features"].to(model.device), b["centers"].to(model.device), texts,
                                        None if bnd is None else bnd.to(model.device))
            wins += int((r[0] > r[1:]).sum())
    finally:
        model.train(was)
    return wins / (k * len(items)), k * len(items)


def evaluate(model: RewardCS, dataset: Dataset, out_dir: str | os.PathLike | None = None, batch_size: int = 32) -> dict[str, Any]:
    """All metrics as a dict; with ``out_dir``, also eval.json and embeddings.png there."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("evaluate: the dataset split is empty")
    from dreamcs.data.dataset import ask_extra_channels

    ask_extra_channels(dataset, model.config.extra_channels)
    pred = predict(model, dataset, batch_size)
    r, y = pred["reward"], pred["label"]
    acc, n_pairs = pair_accuracy(r, y)
    acc_same, n_same = pair_accuracy(r, y, pred["prompt"])
    emb = pred["embedding"]
    d_cs = embedding_d_cs(emb, y)
    metrics = {
        "n": int(len(y)), "n_preferred": int((y == 1).sum()), "n_dispreferred": int((y == 0).sum()),
        "pair_accuracy": acc, "n_pairs": n_pairs,
        "same_prompt_pair_accuracy": acc_same, "n_same_prompt_pairs": n_same,
        "roc_auc": roc_auc(r, y), "spearman": spearman(r, pred["score"]), "d_cs": d_cs,
        "reward_mean_preferred": float(r[y == 1].mean()) if (y == 1).any() else float("nan"),
        "reward_mean_dispreferred": float(r[y == 0].mean()) if (y == 0).any() else float("nan"),
    }
    if model.config.exact_figures:  # read off the meshes only where the set has its teacher ramps
        from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES

        have, have_more = getattr(dataset, "teacher_figures", None), getattr(dataset, "mesh_figures", None)
        metrics["exact_figures"] = {
            k: ("mesh" if have_more else "not read (no column: teacher_figures.parquet written before scorer v5)")
            if k in MESH_ONLY_FIGURES else ("mesh" if have else "head (no teacher_figures.parquet)")
            for k in model.config.exact_figures
        }
    metrics["prompt_agreement"], metrics["n_prompt_pairs"] = prompt_agreement(model, dataset, batch_size=batch_size)
    kinds = per_kind_auc(r, y, pred["id"])
    if kinds:
        metrics["per_kind_roc_auc"] = {k: v["roc_auc"] for k, v in kinds.items()}
    from dreamcs.data.teacher import half_aucs

    # the held-out set's development (A) and report (B) halves, as teacher-eval reads them
    rows = [{"id": i, "label": int(lab), "overall": float(v)} for i, lab, v in zip(pred["id"], y, r, strict=True)]
    metrics.update({f"roc_auc_half_{h}": a for h, a in half_aucs(rows).items() if a is not None})
    if out_dir is not None:
        out = Path(out_dir)
        plot_embeddings(emb, y, out / "embeddings.png")
        atomic_write_text(out / "eval.json", json.dumps(_jsonable(metrics), indent=2))
    return metrics


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: write null
    return {
        k: _jsonable(v) if isinstance(v, dict) else (None if isinstance(v, float) and v != v else v) for k, v in d.items()
    }
