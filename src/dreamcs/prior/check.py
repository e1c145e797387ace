"""A measurable check of a prior: how often does "a {category}" come out as that category?

    result = check_prior("runs/prior", CheckConfig())      # -> PRIOR/check.json, check.png, card table

1. A judge: a small CNN (:class:`CategoryCNN`) trained at the prior's resolution, on renders made
   with the prior's own view settings, of objects the prior never saw: the held-out real meshes of
   ``../shared/data/meshes`` that name one of the procedural categories (``REAL_CHECK_MESHES``; 11
   of the 33 categories have one) plus procedural objects of another library seed than the
   prior's (``procedural_seed``; every category; the only data for the other 22). Each render also
   goes through the prior once (noised part-way, denoised without a prompt), so the judge learns the
   prior's own soft rendering of a shape, not only crisp renders.
2. Its own accuracy on unseen procedural objects (a quarter of each category's objects, split by
   object) says how far its verdicts can be trusted.
3. ``samples`` DDIM samples of the prior per category (prompt "a {category}"), classified: the share
   recognised per category goes to ``check.json`` and, as a table, into the model card. The samples
   are cached in the prior folder (``check_samples.safetensors``) for the same weights and settings.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamcs.prior.data import ViewDataConfig, article, render_items
from dreamcs.prior.sources import ViewItem, category_name

#: held-out real meshes (``HELD_OUT_OBJECTS``, relative to ../shared/data/meshes) per procedural category
REAL_CHECK_MESHES: dict[str, tuple[str, ...]] = {
    "airplane": ("greg_turk_ply/airplane.ply", "greg_turk_ply/f16.ply"),
    "boat": ("greg_turk_ply/galleon.ply", "greg_turk_ply/saratoga.ply"),
    "bottle": ("greg_turk_ply/ketchup.ply",),
    "cabinet": ("threestudio_shapes/cabin.obj",),  # a cabinet, whatever its file name says
    "car": ("greg_turk_ply/big_dodge.ply", "greg_turk_ply/big_porsche.ply", "greg_turk_ply/pickup_big.ply",
            "threestudio_shapes/nascar.obj"),
    "lamp": ("greg_turk_ply/kerolamp.ply",),
    "mug": ("greg_turk_ply/mug.ply",),
    "street_lamp": ("greg_turk_ply/street_lamp.ply",),
    "teapot": ("greg_turk_ply/teapot.ply",),
    "tree": ("greg_turk_ply/fracttree.ply",),
    "vase": ("greg_turk_ply/urn2.ply",),
}


@dataclass
class CheckConfig:
    """The recognition check of ``dreamcs prior check``."""

    samples: int = 8
    """Prior samples per category."""
    steps: int = 50
    """DDIM steps per sample."""
    guidance: float = 4.0
    """Classifier-free guidance of the samples (the card's)."""
    procedural: int = 48
    """Unseen procedural objects per category for the judge (a quarter of them validate it)."""
    procedural_seed: int = 7
    """Library seed of those objects: not the prior's (``data.procedural_seed``)."""
    views: int = 8
    """Views per procedural object."""
    real_views: int = 32
    """Views per held-out real mesh."""
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    zoom: list[float] = field(default_factory=lambda: [0.85, 1.35])
    """Range of the judge's random zoom (log-uniform; > 1 enlarges the object)."""
    blur: float = 1.2
    """Largest Gaussian blur of the judge's training images, in pixels (uniform from 0)."""
    gain: float = 0.3
    """Grey-level gain of the judge's training images, 1 +/- this."""
    width: int = 32
    """Channels of the judge's first level (then 2x, 4x)."""
    roundtrip: list[float] = field(default_factory=lambda: [0.3, 0.6])
    """Noise levels t/T: each training render is also noised to a level in this range and denoised by
    the prior itself, without a prompt (:func:`~dreamcs.prior.sample.roundtrip_prior`), and the judge
    trains on both, so it knows the prior's rendering of each shape ([]: crisp renders only)."""
    roundtrip_steps: int = 20
    """DDIM schedule of the round trip (its tail below the noise level runs)."""
    meshes: str | None = None
    """The shared meshes folder with the held-out real meshes (None: ``$DREAMCS_SHARED_DATA/meshes``
    or ../shared/data/meshes); when absent, the judge learns from procedural renders only."""
    categories: list[str] | None = None
    """Procedural categories to check (None: all 33)."""
    seed: int = 0


class CategoryCNN(nn.Module):
    """Three conv levels (3x3, ReLU, 2x2 max-pool), global average, linear: images (B, 1, S, S) in
    [0, 1] -> logits (B, K)."""

    def __init__(self, n_classes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(-2, -1)))


def judge_items(cfg: CheckConfig, categories: list[str], meshes_dir: Path | None) -> list[ViewItem]:
    """The judge's objects: held-out real meshes (when ``meshes_dir`` has them), then procedural."""
    from dreamcs.data.procedural import library_keys
    from dreamcs.data.validation import UP_AXIS

    items = []
    if meshes_dir is not None:
        for cat in categories:
            for rel in REAL_CHECK_MESHES.get(cat, ()):
                if (meshes_dir / rel).is_file():
                    items.append(ViewItem(Path(rel).stem, str(meshes_dir / rel), "real", cat, article(category_name(cat)),
                                          cfg.real_views, UP_AXIS.get(rel, "y")))
    for cat, seed in library_keys(cfg.procedural * len(categories), cfg.procedural_seed, tuple(categories)):
        items.append(ViewItem(f"{cat}-{seed}", f"procedural:{cat}:{seed}", "procedural", cat, None, cfg.views))
    return items


def _augment(x: Tensor, g: torch.Generator, cfg: CheckConfig) -> Tensor:
    """What separates the prior's samples from crisp renders, drawn per image: left-right flips, a
    zoom (samples often fill more of the frame than the renders' margin allows), shifts of up to 3 px,
    Gaussian blur (samples are soft), a grey-level gain and mild noise. x (B, 1, S, S) in [0, 1]."""
    b, s = x.shape[0], x.shape[-1]
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    lo, hi = cfg.zoom
    zoom = lo * (hi / lo) ** torch.rand(b, generator=g)
    shift = torch.randint(-3, 4, (b, 2), generator=g).float() * 2 / s
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    x = gaussian_blur(x, cfg.blur * torch.rand(b, generator=g))
    gain = 1 + cfg.gain * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
    sigma = 0.05 * torch.rand(b, 1, 1, 1, generator=g)
    return (x * gain + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image of x (B, 1, S, S) by its own sigma (B,) in pixels (0: unchanged)."""
    r = 3
    k = torch.arange(-r, r + 1, dtype=x.dtype)
    w = torch.exp(-0.5 * (k / sigma.clamp_min(1e-3).view(-1, 1)) ** 2)
    w = w / w.sum(-1, keepdim=True)  # (B, 2r+1); sigma -> 0 gives the identity kernel
    b = x.shape[0]
    y = F.conv2d(F.pad(x.transpose(0, 1), (r, r, 0, 0), mode="replicate"), w.view(b, 1, 1, -1), groups=b)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), w.view(b, 1, -1, 1), groups=b)
    return y.transpose(0, 1)


def train_judge(images: Tensor, labels: Tensor, n_classes: int, cfg: CheckConfig) -> CategoryCNN:
    """Fit :class:`CategoryCNN` to images (N, 1, S, S), labels (N,) long; seeded by ``cfg.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CategoryCNN(n_classes, cfg.width)
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    n_steps = cfg.epochs * max(1, -(-len(images) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=n_steps)
    model.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(images), generator=g).split(cfg.batch_size):
            loss = F.cross_entropy(model(_augment(images[idx], g, cfg)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def log_probs(model: nn.Module, images: Tensor, batch: int = 256) -> Tensor:
    """images (N, 1, S, S) in [0, 1] -> log class probabilities (N, K)."""
    return torch.cat([model(images[i : i + batch]).log_softmax(-1) for i in range(0, len(images), batch)])


def classify(model: nn.Module, images: Tensor, batch: int = 256) -> Tensor:
    """images (N, 1, S, S) in [0, 1] -> predicted class (N,)."""
    return log_probs(model, images, batch).argmax(-1)


def calibrated_verdicts(logp: Tensor) -> Tensor:
    """Verdicts on a prior's samples with the judge's bias towards one class removed.

    Samples unlike every training render fall into one sink class (a barrel, a vase), whatever they
    show, so the plain argmax says little. Subtracting each class's mean log-probability over all
    samples of all prompts asks instead whether a sample looks more like its class than the prior's
    other samples do. logp (P, S, K) for P prompts = the K classes in order, S samples each -> (P, S)
    long; -1 where no class stands out (identical samples for every prompt, e.g. a blank prior)."""
    centred = logp - logp.flatten(0, 1).mean(0)
    best = centred.max(-1)
    unique = (centred >= best.values.unsqueeze(-1) - 1e-6).sum(-1) == 1
    return torch.where(unique & (best.values > 1e-6), best.indices, torch.full_like(best.indices, -1))


def prior_view_config(prior: Path) -> ViewDataConfig:
    """The view settings the prior was trained with (PRIOR/config.yaml), else the library preset's."""
    from dreamcs.config import load_config
    from dreamcs.prior.config import PriorTrainConfig, preset_path

    path = prior / "config.yaml"
    return load_config(PriorTrainConfig, path if path.is_file() else preset_path("library")).data


def cached_samples(prior: Path, prompts: list[str], cfg: CheckConfig) -> Tensor:
    """The check's prior samples (P, n, C, S, S), reused from PRIOR/check_samples.safetensors when the
    weights, prompts and sampling settings are the same (sampling is most of the check's time; a new
    judge need not resample)."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from dreamcs.prior.sample import sample_prior

    key = hashlib.sha256(json.dumps([prompts, cfg.samples, cfg.steps, cfg.guidance, cfg.seed]).encode())
    for f in sorted((prior / "unet").glob("*.safetensors")):  # sharded weights too
        key.update(f.read_bytes())
    key = key.hexdigest()
    path = prior / "check_samples.safetensors"
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return load_file(str(path))["samples"]
    samples = sample_prior(prior, prompts, cfg.samples, steps=cfg.steps, guidance=cfg.guidance, seed=cfg.seed)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"samples": samples.contiguous()}, str(tmp), metadata={"key": key})
    tmp.replace(path)
    return samples


def check_prior(prior: str | Path, cfg: CheckConfig, log: Any = print) -> dict[str, Any]:
    """Run the check (module docstring) on the prior folder; writes PRIOR/check.json, PRIOR/check.png
    and the card's table (when PRIOR/MODEL_CARD.md exists); returns the result."""
    from dreamcs.data.procedural import CATEGORIES
    from dreamcs.data.validation import shared_meshes_dir
    from dreamcs.prior.card import write_check_section
    from dreamcs.prior.sample import roundtrip_prior, save_grid
    from dreamcs.utils import atomic_write_text

    prior = Path(prior)
    categories = list(cfg.categories or CATEGORIES)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"prior check: unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    if cfg.samples < 1 or cfg.procedural < 2 or cfg.epochs < 1:
        raise ValueError("prior check: need samples >= 1, procedural >= 2 (some validate the judge), epochs >= 1")
    if cfg.roundtrip and (len(cfg.roundtrip) != 2 or not 0 < cfg.roundtrip[0] <= cfg.roundtrip[1] <= 1):
        raise ValueError(f"prior check: roundtrip must be [] or [lo, hi] with 0 < lo <= hi <= 1, got {cfg.roundtrip}")
    if len(cfg.zoom) != 2 or not 0 < cfg.zoom[0] <= cfg.zoom[1] or cfg.blur < 0 or not 0 <= cfg.gain < 1:
        raise ValueError(f"prior check: need zoom [lo, hi] with 0 < lo <= hi, blur >= 0 and 0 <= gain < 1; "
                         f"got zoom {cfg.zoom}, blur {cfg.blur}, gain {cfg.gain}")
    meshes_dir = Path(cfg.meshes) if cfg.meshes else shared_meshes_dir()
    if cfg.meshes and not meshes_dir.is_dir():
        raise FileNotFoundError(f"{meshes_dir}: the shared meshes folder does not exist")
    view_cfg = replace(prior_view_config(prior), seed=cfg.seed)
    items = judge_items(cfg, categories, meshes_dir if meshes_dir.is_dir() else None)
    log(f"judge data: rendering {len(items)} unseen objects")
    arrays = render_items(view_cfg, items)
    images = torch.from_numpy(arrays["images"].astype(np.float32)).unsqueeze(1)
    obj = torch.from_numpy(arrays["mesh_index"])
    label_of = {c: i for i, c in enumerate(categories)}
    obj_labels = torch.tensor([label_of[it.category] for it in items])
    # validation: the last quarter of each category's procedural objects (their seeds are in order)
    per_cat = Counter()
    is_val = torch.zeros(len(items), dtype=torch.bool)
    for k, it in enumerate(items):
        if it.source == "procedural":
            per_cat[it.category] += 1
            is_val[k] = per_cat[it.category] > cfg.procedural - max(1, cfg.procedural // 4)
    val, labels = is_val[obj], obj_labels[obj]
    train_x, train_y = images[~val], labels[~val]
    rt_acc = None
    if cfg.roundtrip:
        log(f"judge data: a round trip through the prior at t/T {cfg.roundtrip[0]:g}-{cfg.roundtrip[1]:g}")
        trip = roundtrip_prior(prior, images, (cfg.roundtrip[0], cfg.roundtrip[1]), steps=cfg.roundtrip_steps,
                               seed=cfg.seed)
        train_x, train_y = torch.cat([train_x, trip[~val]]), torch.cat([train_y, labels[~val]])
    judge = train_judge(train_x, train_y, len(categories), cfg)
    val_acc = float((classify(judge, images[val]) == labels[val]).float().mean())
    if cfg.roundtrip:
        rt_acc = float((classify(judge, trip[val]) == labels[val]).float().mean())
    log(f"judge accuracy on unseen procedural objects: {val_acc:.1%}"
        + ("" if rt_acc is None else f" ({rt_acc:.1%} after the round trip)"))

    prompts = [article(category_name(c)) for c in categories]
    log(f"sampling {cfg.samples} images for each of {len(prompts)} prompts ({cfg.steps} DDIM steps)")
    samples = cached_samples(prior, prompts, cfg)
    if samples.shape[2] != 1 or samples.shape[-1] != images.shape[-1]:
        raise ValueError(f"{prior}: samples of shape {tuple(samples.shape[2:])} do not match the judge's "
                         f"{tuple(images.shape[1:])} (a 1-channel prior at data.image_size)")
    logp = log_probs(judge, samples.flatten(0, 1)).view(len(prompts), cfg.samples, len(categories))
    pred, calibrated = logp.argmax(-1), calibrated_verdicts(logp)
    real_count = Counter(it.category for it in items if it.source == "real")
    table = {}
    for i, cat in enumerate(categories):
        wrong = Counter(categories[int(p)] for p in pred[i] if int(p) != i)
        table[cat] = {"prompt": prompts[i], "recognised": float((pred[i] == i).float().mean()),
                      "recognised_calibrated": float((calibrated[i] == i).float().mean()),
                      "most_confused": wrong.most_common(1)[0][0] if wrong else None,
                      "judge_real_meshes": real_count.get(cat, 0), "judge_procedural": cfg.procedural}
    result = {"prior": prior.name, "mean_recognised": float(np.mean([r["recognised"] for r in table.values()])),
              "mean_recognised_calibrated": float(np.mean([r["recognised_calibrated"] for r in table.values()])),
              "judge_accuracy": val_acc, "judge_accuracy_roundtrip": rt_acc, "judge_images": int(len(train_x)),
              "judge_real_meshes": int(sum(real_count.values())), "categories": table, "settings": asdict(cfg)}
    atomic_write_text(prior / "check.json", json.dumps(result, indent=1) + "\n")
    save_grid(samples[:, : min(cfg.samples, 8)], prompts, prior / "check.png")
    if (prior / "MODEL_CARD.md").is_file():
        write_check_section(prior)
    return result
