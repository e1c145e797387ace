"""Does the prior's text tell categories apart on objects it never saw? A diffusion classifier.

    result = zero_shot_check("runs/prior", ZeroShotConfig())     # -> PRIOR/zero_shot.json

Each render ``x`` of an unseen object (the held-out real meshes of ``REAL_CHECK_MESHES`` and
procedural objects of another library seed, rendered with the prior's own view settings) is noised
at a few fixed levels with the same noise for every prompt, and the prior predicts that noise under
each category prompt "a {category}"; the prompt with the lowest mean error is its verdict (Li et al.,
2023, "Your diffusion model is secretly a zero-shot classifier"). SDS moves a render along exactly
this conditional prediction, so a prior whose prompts do not separate renders of unseen objects here
has little to pull a shape towards its prompt with. Unlike ``dreamcs.prior.check`` it needs no judge and no
sampling from pure noise, which SDS never does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dreamcs.prior.data import article, render_items
from dreamcs.prior.sources import category_name


@dataclass
class ZeroShotConfig:
    """The diffusion-classifier check of ``dreamcs prior zero-shot``."""

    procedural: int = 2
    """Unseen procedural objects per category (library seed ``procedural_seed``)."""
    procedural_seed: int = 7
    """Not the prior's (``data.procedural_seed``): objects the prior never saw."""
    views: int = 2
    """Views per procedural object."""
    real_views: int = 4
    """Views per held-out real mesh."""
    levels: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    """Noise levels t/T; every prompt sees the same noise at each (paired, so the noise cancels)."""
    meshes: str | None = None
    """The shared meshes folder (None: ``$DREAMCS_SHARED_DATA/meshes`` or ../shared/data/meshes);
    when absent, only procedural objects are classified."""
    categories: list[str] | None = None
    """Procedural categories (the candidate prompts and the objects; None: all 33)."""
    batch: int = 256
    seed: int = 0


@torch.no_grad()
def denoising_errors(unet: torch.nn.Module, alphas_cumprod: Tensor, images: Tensor, cond: Tensor,
                     cond_mask: Tensor | None, levels: list[float], *, seed: int = 0, batch: int = 256) -> Tensor:
    """Mean squared noise-prediction error of every image under every prompt.

    images (N, C, S, S) in [0, 1]; cond (P, L, D) prompt tokens, cond_mask (P, L) -> errors (N, P),
    averaged over ``levels`` (t/T), one seeded noise draw per image and level shared by all prompts.
    """
    n_train = len(alphas_cumprod)
    gen = torch.Generator().manual_seed(seed)
    x0 = images.float() * 2.0 - 1.0
    errors = torch.zeros(len(images), len(cond))
    pairs = [(i, p) for i in range(len(images)) for p in range(len(cond))]
    for level in levels:
        t = int(round(level * (n_train - 1)))
        abar = alphas_cumprod[t].float()
        eps = torch.randn(x0.shape, generator=gen)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        for k in range(0, len(pairs), batch):
            idx = torch.tensor(pairs[k : k + batch])
            img, pr = idx[:, 0], idx[:, 1]
            mask = None if cond_mask is None else cond_mask[pr]
            out = unet(xt[img], torch.full((len(idx),), t, dtype=torch.long),
                       encoder_hidden_states=cond[pr].float(), encoder_attention_mask=mask).sample
            errors[img, pr] += ((out - eps[img]) ** 2).flatten(1).mean(1) / len(levels)
    return errors


def zero_shot_check(prior: str | Path, cfg: ZeroShotConfig, log: Any = print) -> dict[str, Any]:
    """Classify renders of unseen objects with the prior (module docstring); writes PRIOR/zero_shot.json
    and returns it: per category the share of views recognised (top-1 of all categories' prompts)."""
    from dreamcs.data.procedural import CATEGORIES
    from dreamcs.data.validation import shared_meshes_dir
    from dreamcs.generate.guidance import GuidanceConfig, build_guidance
    from dreamcs.prior.card import write_zero_shot_section
    from dreamcs.prior.check import CheckConfig, judge_items, prior_view_config
    from dreamcs.utils import atomic_write_text

    prior = Path(prior)
    categories = list(cfg.categories or CATEGORIES)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"zero-shot check: unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    if cfg.procedural < 1 or cfg.views < 1 or cfg.real_views < 1 or not cfg.levels:
        raise ValueError("zero-shot check: need procedural, views, real_views >= 1 and at least one level")
    if not all(0.0 <= v < 1.0 for v in cfg.levels):
        raise ValueError(f"zero-shot check: levels are t/T in [0, 1), got {cfg.levels}")
    meshes_dir = Path(cfg.meshes) if cfg.meshes else shared_meshes_dir()
    if cfg.meshes and not meshes_dir.is_dir():
        raise FileNotFoundError(f"{meshes_dir}: the shared meshes folder does not exist")
    objects = CheckConfig(procedural=cfg.procedural, procedural_seed=cfg.procedural_seed, views=cfg.views,
                          real_views=cfg.real_views)
    items = judge_items(objects, categories, meshes_dir if meshes_dir.is_dir() else None)
    log(f"zero-shot check: rendering {len(items)} unseen objects")
    arrays = render_items(replace(prior_view_config(prior), seed=cfg.seed), items)
    images = torch.from_numpy(arrays["images"].astype(np.float32)).unsqueeze(1)
    obj = torch.from_numpy(arrays["mesh_index"]).long()
    label_of = {c: i for i, c in enumerate(categories)}
    labels = torch.tensor([label_of[it.category] for it in items])[obj]
    real = torch.tensor([it.source == "real" for it in items])[obj]

    g = build_guidance(GuidanceConfig(name="embedded", pretrained=str(prior)))
    if images.shape[1:] != (g.unet.config.in_channels, g.unet.config.sample_size, g.unet.config.sample_size):
        raise ValueError(f"{prior}: renders {tuple(images.shape[1:])} do not fit the UNet's input")
    prompts = [article(category_name(c)) for c in categories]
    text = g.encode_prompts(prompts)
    log(f"zero-shot check: {len(images)} views x {len(prompts)} prompts x {len(cfg.levels)} noise levels")
    errors = denoising_errors(g.unet, g.scheduler.alphas_cumprod, images, text.cond, text.cond_mask, cfg.levels,
                              seed=cfg.seed, batch=cfg.batch)
    pred = errors.argmin(1)
    rank = (errors < errors.gather(1, labels[:, None])).sum(1)  # 0 = the right prompt fits best
    table = {}
    for i, cat in enumerate(categories):
        sel = labels == i
        wrong = Counter(categories[int(p)] for p in pred[sel] if int(p) != i)
        table[cat] = {"prompt": prompts[i], "views": int(sel.sum()), "recognised": float((pred[sel] == i).float().mean()),
                      "mean_rank": float(rank[sel].float().mean()), "most_confused": wrong.most_common(1)[0][0] if wrong else None}
    result = {"prior": prior.name, "mean_recognised": float(np.mean([r["recognised"] for r in table.values()])),
              "chance": 1.0 / len(categories),
              "real_recognised": float((pred[real] == labels[real]).float().mean()) if real.any() else None,
              "real_views": int(real.sum()), "procedural_recognised": float((pred[~real] == labels[~real]).float().mean()),
              "mean_rank": float(rank.float().mean()), "categories": table, "settings": asdict(cfg),
              # per view, so that two priors checked with the same settings can be compared view by view
              "views": {"object": [items[int(k)].id for k in obj], "label": labels.tolist(), "predicted": pred.tolist()}}
    atomic_write_text(prior / "zero_shot.json", json.dumps(result, indent=1) + "\n")
    if (prior / "MODEL_CARD.md").is_file():
        write_zero_shot_section(prior)
    return result
