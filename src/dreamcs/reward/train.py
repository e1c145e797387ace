"""Training RewardCS on an unpaired preference dataset.

    loss = MSE(reward, score) + lambda_cs * (-D_CS(embeddings of preferred, of dispreferred))

Other objectives side by side (``loss_type``: mse, mmd, dro, bradley_terry): see ``losses.py``.
Before the first step the trainer fixes the model's per-channel feature standardisation from the
training set (unless ``--init`` brings an encoder with its own), and encodes every distinct prompt
once (``TextBank``); each batch is randomly rotated about y and scale-jittered (``augment.py``).

Determinism: the batch at step s and the dropout seed at step s are functions of (seed, s), and
optimizer / scheduler state is checkpointed, so ``resume`` ends with the same weights as an
uninterrupted run. Works under ``torchrun`` (DDP; gloo on the CPU, nccl on GPUs).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dreamcs.config import config_to_dict, save_config
from dreamcs.data.dataset import ask_extra_channels
from dreamcs.data.teacher_figures import check_teacher_targets
from dreamcs.reward.augment import augment_patches, feature_stats
from dreamcs.reward.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dreamcs.reward.config import RewardCSConfig
from dreamcs.reward.distributed import dist_info as _dist
from dreamcs.reward.distributed import gather_across_ranks, init_distributed
from dreamcs.reward.losses import (
    LOSS_TYPES,
    compute_loss,
    prompt_swap_loss,
    swap_partners,
    teacher_figure_loss,
)
from dreamcs.reward.model import RewardCS
from dreamcs.reward.sampler import BalancedBatchSampler, PairedBatchSampler
from dreamcs.reward.text_bank import TextBank
from dreamcs.utils import append_jsonl, atomic_write_text, read_jsonl, seed_everything


@dataclass
class TrainConfig:
    """Everything a reward training run needs besides the data."""

    model: RewardCSConfig = field(default_factory=RewardCSConfig)
    """The reward model's hyperparameters (defaults: the small preset)."""
    loss_type: str = "cs"
    """cs (MSE + lambda_cs * -D_CS), mse (lambda = 0), mmd (MSE - lambda_mmd * MMD^2), dro (unpaired
    distributionally robust logistic) or bradley_terry (paired); see ``losses.py``."""
    lambda_cs: float = 1.0
    """Weight of the -D_CS term (loss_type=cs)."""
    lambda_mmd: float = 1.0
    """Weight of the -MMD^2 term (loss_type=mmd)."""
    dro_threshold: float = 3.75
    """dro: the reward that separates the classes (between the labels' 3.5 and 4 score cuts)."""
    dro_tau: float = 1.0
    """dro: temperature of the per-class log-sum-exp (large: plain mean, small: worst item)."""
    lambda_swap: float = 0.0
    """Weight of the prompt-swap term: each mesh whose prompt fits it (see ``prompt_fits``), clean or
    damaged, should score higher with its prompt than with another object's from the batch
    (-log sigmoid of the difference). Wrong-prompt items alone are too few for the text path to learn
    which shapes a prompt names; this gives every item a wrong prompt."""
    swap_max_cos: float = 0.7
    """A swap partner's prompt must have a pooled-text cosine below this with the item's own."""
    lambda_teacher: float = 0.0
    """Weight of the teacher-figure term: the model's figure head (``model.teacher_figures`` > 0)
    predicts the geometric teacher's penalty ramps of each item (``dreamcs data teacher-figures``),
    a multi-task target that shapes the mesh encoder; 0: off."""
    sigma: float | None = None
    """Kernel bandwidth of D_CS / MMD; None: the median cross-class distance per batch."""
    standardise: bool = True
    """Set the model's per-channel feature mean/std from the training set before training."""
    stats_items: int = 512
    """Items (a seeded subset) the feature statistics are computed from."""
    augment_rotate_y: bool = True
    """Rotate each training mesh by a random angle about the up axis (y)."""
    augment_scale: float = 0.1
    """Scale jitter: each training mesh scaled by U[1 - a, 1 + a] (0: off)."""
    steps: int = 2000
    batch_size: int = 32
    pos_fraction: float | None = None
    """Share of preferred items per batch; None: half."""
    balance_by: str | None = "domain"
    """Draw each class equally from every group of this column (``domain``: the item's source
    without its ``_clean``/``_defect`` suffix, e.g. procedural vs licensed real meshes); None: off.
    Without it, a domain whose share of preferred items differs (the offline build: 95% of clean
    items are procedural) lets the domain stand in for the label."""
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    """The cosine decays to lr * min_lr_ratio."""
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    device: str = "cpu"
    workers: int = 0
    """DataLoader worker processes that load and featurise batches ahead (0: in the training loop)."""
    init: str | None = None
    """A pretrain run (or RewardCS folder) whose mesh encoder weights start the model."""
    progress: bool = True
    """Show a rich progress bar."""

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"need steps >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")
        if self.lambda_teacher > 0 and self.model.teacher_figures < 1:
            raise ValueError("lambda_teacher > 0 needs a figure head: set model.teacher_figures (e.g. 12)")
        if self.dro_tau <= 0 or not 0 <= self.augment_scale < 1:
            raise ValueError(f"need dro_tau > 0 and 0 <= augment_scale < 1, got {self.dro_tau}, {self.augment_scale}")


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """MeshPrefDataset item dicts -> a batch: features (B, P, K, 10), centers (B, P, 3), score (B,),
    label (B,), prompt list."""
    return {
        "features": torch.stack([torch.as_tensor(it["features"], dtype=torch.float32) for it in items]),
        "centers": torch.stack([torch.as_tensor(it["centers"], dtype=torch.float32) for it in items]),
        "score": torch.tensor([float(it["score"]) for it in items], dtype=torch.float32),
        "label": torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
        "prompt": [str(it["prompt"]) for it in items],
        # the prompt-swap term's: which object each item shows, and whether its prompt names it
        "object_id": [str(it.get("object_id", it.get("id", i))) for i, it in enumerate(items)],
        "prompt_fits": torch.tensor([prompt_fits(it) for it in items], dtype=torch.bool),
        # (B, P, K, 1), when every item carries it (MeshPrefDataset's do)
        "boundary": (torch.stack([torch.as_tensor(it["boundary"], dtype=torch.float32) for it in items])
                     if all("boundary" in it for it in items) else None),
        "teacher_figures": _stack_teacher_figures(items),
        "mesh_figures": _stack_teacher_figures(items, "mesh_figures"),
    }


def _stack_teacher_figures(items: list[dict[str, Any]], key: str = "teacher_figures") -> Tensor | None:
    """(B, T) teacher targets (or ``mesh_figures``) when any item has them (NaN rows for those without); else None."""
    have = [it[key] for it in items if key in it]
    if not have:
        return None
    nan = torch.full_like(torch.as_tensor(have[0], dtype=torch.float32), float("nan"))
    return torch.stack([torch.as_tensor(it.get(key, nan), dtype=torch.float32) for it in items])


def prompt_fits(item: dict[str, Any]) -> bool:
    """Whether an item's prompt describes its mesh: the prompt is the mesh's caption when the item
    has one (a wrong-prompt item's is another object's), else alignment >= 4, else it is preferred."""
    caption = item.get("caption")
    if isinstance(caption, str) and caption:
        return str(item["prompt"]) == caption
    align = item.get("alignment")
    if align is not None and not math.isnan(float(align)):
        return float(align) >= 4.0
    return int(item["label"]) == 1


def dataset_column(dataset: Dataset, key: str) -> list[Any]:
    """One column of a dataset without computing features where the dataset allows it: a
    ``.column(key)`` method, a ``.rows`` table (MeshPrefDataset's; its ``overall`` is the score),
    else item by item."""
    if hasattr(dataset, "column"):
        return list(dataset.column(key))
    rows = getattr(dataset, "rows", None)
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and key in rows[0]:
        return [r[key] for r in rows]
    return [dataset[i][key] for i in range(len(dataset))]  # type: ignore[arg-type]


def source_domain(source: str) -> str:
    """An item's data domain: its source without the ``_clean`` / ``_defect`` suffix
    (``licensed_defect`` -> ``licensed``, ``procedural`` -> ``procedural``)."""
    return source.removesuffix("_clean").removesuffix("_defect")


def balance_groups(dataset: Dataset, balance_by: str | None) -> list[str] | None:
    """The per-item groups the sampler balances over (see ``TrainConfig.balance_by``); None when
    off or when the data has a single group (a dataset without a ``source`` column has one)."""
    if balance_by is None:
        return None
    key = "source" if balance_by == "domain" else balance_by
    rows = getattr(dataset, "rows", None)
    cheap = hasattr(dataset, "column") or (isinstance(rows, list) and rows and isinstance(rows[0], dict) and key in rows[0])
    if not cheap:  # reading the column item by item would featurise every mesh
        if balance_by == "domain":
            return None
        raise KeyError(f"balance_by={balance_by!r}: the dataset has no such column")
    values = dataset_column(dataset, key)
    groups = [source_domain(str(v)) if balance_by == "domain" else str(v) for v in values]
    return groups if len(set(groups)) > 1 else None


def lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def load_init(model: RewardCS, init: str | os.PathLike) -> int:
    """Copy the mesh encoder weights of a pretrain run / RewardCS folder into ``model``."""
    from safetensors.torch import load_file

    path = Path(init) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --init needs a `reward pretrain` run or a RewardCS folder")
    state = {k: v for k, v in load_file(str(path)).items() if k.startswith("mesh_encoder.")}
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if not state or bad:
        raise ValueError(f"{path}: mesh encoder weights do not fit this model ({len(state)} found, mismatched: {bad[:3]})")
    model.load_state_dict(state, strict=False)
    return len(state)


def check_dataset(dataset: Dataset, model_cfg: RewardCSConfig) -> None:
    """Fail early, with a fix, when the items do not fit the model's patch layout."""
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError(f"{getattr(dataset, 'root', 'dataset')}: no labelled items in this split")
    f = tuple(torch.as_tensor(dataset[0]["features"]).shape)
    want = (model_cfg.faces_per_patch, model_cfg.in_features)
    if len(f) != 3 or f[1:] != want:
        raise ValueError(
            f"{getattr(dataset, 'root', 'dataset')}: items have features of shape {f}, the model expects "
            f"(P, {want[0]}, {want[1]}); set model.faces_per_patch={f[1] if len(f) == 3 else '?'}"
        )
    if model_cfg.boundary_channel and "boundary" not in dataset[0]:
        raise ValueError(f"{getattr(dataset, 'root', 'dataset')}: model.boundary_channel needs items with a "
                         "'boundary' entry (dreamcs.mesh.patch_boundary), as MeshPrefDataset gives")


def train(cfg: TrainConfig, dataset: Dataset, out_dir: str | os.PathLike, resume: bool = False) -> RewardCS:
    """Train on ``dataset`` (items as MeshPrefDataset's dicts) into ``out_dir``; returns the model.

    Under torchrun, call ``torch.distributed.init_process_group`` first (``init_distributed()``):
    each rank takes its share of every batch (both classes on each rank), DDP averages gradients,
    and only rank 0 writes files. The CS term is taken over all ranks' embeddings (gathered).
    """
    out = Path(out_dir)
    rank, world = _dist()
    seed_everything(cfg.seed)
    ask_extra_channels(dataset, cfg.model.extra_channels)
    check_dataset(dataset, cfg.model)
    if cfg.lambda_teacher > 0:
        check_teacher_targets(dataset, cfg.model.teacher_figures)
    model = RewardCS(cfg.model)
    if cfg.standardise:
        extra = "boundary" if cfg.model.boundary_channel else None
        feature_stats(dataset, cfg.stats_items, cfg.seed, extra_key=extra).apply(model.mesh_encoder)
    if cfg.init:
        load_init(model, cfg.init)  # a pre-trained encoder keeps the standardisation it learnt with
    model.to(cfg.device)
    # every distinct prompt encoded once: a step never runs the text encoder
    bank = TextBank(model.text_encoder, dataset_column(dataset, "prompt"))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "token" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "token" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    start = 0
    if resume:
        ck = latest_checkpoint(out)
        if ck is not None:
            start = int(load_checkpoint(ck, model, opt, sched)["step"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        _truncate_metrics(out / "metrics.jsonl", start)
    labels = [int(y) for y in dataset_column(dataset, "label")]
    if cfg.loss_type == "bradley_terry":
        sampler: Any = PairedBatchSampler(labels, dataset_column(dataset, "prompt"), cfg.batch_size, cfg.steps,
                                          cfg.seed, start, rank, world)
    else:
        sampler = BalancedBatchSampler(labels, cfg.batch_size, cfg.steps, cfg.seed, start, cfg.pos_fraction, rank, world,
                                       groups=balance_groups(dataset, cfg.balance_by))
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    writer = _tensorboard(out) if rank == 0 else None
    model.train()
    t0, seen = time.perf_counter(), 0
    with _progress(cfg.progress and rank == 0, cfg.steps, start) as advance:
        for step, batch in zip(range(start, cfg.steps), _batches(dataset, sampler, start, cfg), strict=True):
            # Dropout and augmentation draw from streams seeded by (seed, step, rank): identical
            # whether resumed or not.
            step_seed = ((cfg.seed * 1_000_003 + step) * 1009 + rank) % (2**63)
            torch.manual_seed(step_seed)
            feats, cents = augment_patches(batch["features"], batch["centers"], torch.Generator().manual_seed(step_seed),
                                           cfg.augment_rotate_y, cfg.augment_scale)
            bnd = batch.get("boundary")
            text = bank.embed(batch["prompt"])
            swap_text, eligible = _swap_batch(batch, text, bank, cfg, step_seed) if cfg.lambda_swap > 0 else (None, None)
            o = net(feats.to(cfg.device), cents.to(cfg.device), batch["prompt"], text=text,
                    boundary=None if bnd is None else bnd.to(cfg.device), swap_text=swap_text)
            batch = {**batch, "score": batch["score"].to(cfg.device), "label": batch["label"].to(cfg.device)}
            learned = o.learned  # the objectives read the learned head; a figure-weighted reward mixes in after training
            loss, logs = compute_loss(learned, o.embedding, batch, cfg)
            if o.swapped is not None:
                eligible = eligible.to(cfg.device)
                swap = prompt_swap_loss(learned, o.swapped, eligible)
                wins = (learned > o.swapped)[eligible].float()
                logs.update(loss_swap=float(swap.detach()), swap_acc=float(wins.mean()) if len(wins) else float("nan"))
                loss = loss + cfg.lambda_swap * swap
            if cfg.lambda_teacher > 0:  # the config checked the head, check_teacher_targets the targets
                fig_loss = teacher_figure_loss(o.teacher_figures, batch["teacher_figures"].to(cfg.device))
                logs.update(loss_teacher=float(fig_loss.detach()))
                loss = loss + cfg.lambda_teacher * fig_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            seen += len(batch["prompt"]) * world
            done = step + 1
            if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps):
                rec = {"step": done, "loss": float(loss.detach()), **logs, "grad_norm": float(gnorm),
                       "lr": sched.get_last_lr()[0], "meshes_per_s": seen / (time.perf_counter() - t0)}
                append_jsonl(out / "metrics.jsonl", rec)
                if writer is not None:
                    for k, v in rec.items():
                        if k != "step":
                            writer.add_scalar(k, v, done)
            if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                save_checkpoint(out, done, model, opt, sched, {"loss": float(loss.detach())}, cfg.keep_checkpoints)
            advance(float(loss.detach()))
    if writer is not None:
        writer.close()
    if rank == 0:
        model.save_pretrained(out)
        atomic_write_text(out / "train_config.json", json.dumps(config_to_dict(cfg)))
    return model.eval()


def _swap_batch(batch: dict[str, Any], text: Any, bank: TextBank, cfg: TrainConfig, seed: int) -> tuple[Any, Tensor]:
    """The prompt-swap term's inputs: the partners' TextEmbedding (B rows; an item without a partner
    keeps its own prompt) and which items count (a partner, and a prompt that fits the mesh)."""
    partner = swap_partners(text.pooled, batch["object_id"], cfg.swap_max_cos, torch.Generator().manual_seed(seed + 1))
    prompts = batch["prompt"]
    swap_text = bank.embed([prompts[j] if j >= 0 else p for p, j in zip(prompts, partner.tolist(), strict=True)])
    return swap_text, (partner >= 0) & batch["prompt_fits"]


def _batches(dataset: Dataset, sampler: Any, start: int, cfg: TrainConfig) -> Any:
    """The collated batches of steps start..steps-1, in order (the sampler fixes them)."""
    if cfg.workers <= 0:
        return (collate([dataset[i] for i in sampler.batch(s)]) for s in range(start, cfg.steps))
    from torch.utils.data import DataLoader

    # the sampler iterates its batches from its start_step, so loader order = step order
    return iter(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
                           prefetch_factor=4))


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines past the checkpoint (they will be logged again)."""
    keep = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
    if path.exists() or keep:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.jsonl only
        return None
    return SummaryWriter(str(out / "tensorboard"))


class _progress:
    """A rich progress bar with the loss; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled, self.total, self.start = enabled, total, start

    def __enter__(self):
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("reward train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn())
        self.bar.start()
        task = self.bar.add_task("train", total=self.total, completed=self.start, loss=float("nan"))
        return lambda loss: self.bar.update(task, advance=1, loss=loss)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()


__all__ = ["LOSS_TYPES", "TrainConfig", "train", "compute_loss", "collate", "gather_across_ranks", "init_distributed"]
