"""The reward training objectives, side by side (``TrainConfig.loss_type``):

    cs             MSE(r, score) - lambda_cs * D_CS(z_preferred, z_dispreferred)     (the paper)
    mse            MSE(r, score)                                                     (lambda = 0)
    mmd            MSE(r, score) - lambda_mmd * MMD^2(z_preferred, z_dispreferred)
    dro            unpaired, DRO-style: per class c, tau * log mean_i exp(l_i / tau) with
                   l_i = softplus(-s_i (r_i - t)) (s = +1 preferred, -1 dispreferred, t = dro_threshold);
                   the mean of the two classes. The log-sum-exp is the dual of the worst case over a
                   KL ball around the empirical distribution: hard items weigh more, no pairs needed.
                   tau -> inf is plain logistic ERM, tau -> 0 the worst item.
    bradley_terry  paired: -log sigmoid(r_p - r_d) over same-prompt pairs (Reward3D's)

Any of them plus ``lambda_swap`` * the prompt-swap term (``prompt_swap_loss``): each mesh whose prompt
fits it should score higher with its own prompt than with another object's (in-batch negatives).

r: rewards (B,), z: unit embeddings (B, D). The divergence terms use the cross-pair median
bandwidth (``cs_divergence``) and are taken over every rank's embeddings under DDP.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamcs.reward.cs_divergence import cs_divergence, mmd2
from dreamcs.reward.distributed import gather_across_ranks

LOSS_TYPES = ("cs", "mse", "bradley_terry", "dro", "mmd")
UNPAIRED_LOSS_TYPES = ("cs", "mse", "dro", "mmd")


def dro_loss(reward: Tensor, label: Tensor, threshold: float, tau: float) -> Tensor:
    """reward (B,), label (B,) in {0, 1} -> the DRO-style unpaired loss () (module docstring)."""
    if tau <= 0:
        raise ValueError(f"dro_tau must be positive, got {tau}")
    sign = label.to(reward.dtype) * 2 - 1
    per_item = F.softplus(-sign * (reward - threshold))
    parts = []
    for y in (1, 0):
        li = per_item[label == y]
        if len(li):
            parts.append(tau * (torch.logsumexp(li / tau, 0) - math.log(len(li))))
    return torch.stack(parts).mean()


def swap_partners(pooled: Tensor, objects: list[str], max_cos: float, generator: torch.Generator) -> Tensor:
    """pooled (B, E) prompt vectors, B object ids -> (B,) the index of another batch item whose prompt
    is about something else (another object, prompt cosine < max_cos), drawn at random; -1 where none."""
    z = F.normalize(pooled.float(), dim=-1)
    ok = (z @ z.T < max_cos) & torch.tensor([[a != b for b in objects] for a in objects], dtype=torch.bool)
    pick = torch.rand(ok.shape, generator=generator).masked_fill(~ok, -1.0).argmax(1)
    return torch.where(ok.any(1), pick, torch.full_like(pick, -1))


def prompt_swap_loss(reward: Tensor, swapped: Tensor, eligible: Tensor) -> Tensor:
    """reward (B,) with the own prompts, swapped (B,) with the partners', eligible (B,) bool ->
    mean over eligible items of -log sigmoid(r_own - r_swapped); 0 when none is eligible."""
    if not bool(eligible.any()):
        return reward.sum() * 0.0
    return -F.logsigmoid(reward[eligible] - swapped[eligible]).mean()


def teacher_figure_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of the figure head's logits (B, T) against the teacher's ramps (B, T) in
    [0, 1] (soft targets); rows with any NaN (items the teacher could not score) are left out."""
    keep = torch.isfinite(target).all(-1)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[keep], target[keep].to(logits.dtype))


def compute_loss(out_reward: Tensor, embedding: Tensor, batch: dict[str, Any], cfg: Any) -> tuple[Tensor, dict[str, float]]:
    """The loss of ``cfg.loss_type`` (a ``TrainConfig``) and its parts for logging.

    out_reward (B,), embedding (B, D); batch holds label (B,) and score (B,).
    """
    label, score = batch["label"], batch["score"]
    logs: dict[str, float] = {}
    if cfg.loss_type == "bradley_terry":
        # PairedBatchSampler lays batches out as [p1, d1, p2, d2, ...]
        r = out_reward.view(-1, 2)
        loss = -F.logsigmoid(r[:, 0] - r[:, 1]).mean()
        logs["loss_bt"] = float(loss.detach())
        logs["pair_acc"] = float((r[:, 0] > r[:, 1]).float().mean())
        return loss, logs
    if cfg.loss_type == "dro":
        loss = dro_loss(out_reward, label, cfg.dro_threshold, cfg.dro_tau)
        logs["loss_dro"] = float(loss.detach())
    else:
        loss = F.mse_loss(out_reward, score)
        logs["loss_mse"] = float(loss.detach())
    # D_CS is a property of the two sets, not of a rank's share of them: under DDP it is taken over
    # every rank's embeddings (gathered with their gradients), as on one device with the whole batch
    embedding, label = gather_across_ranks(embedding), gather_across_ranks(label)
    pos, neg = embedding[label == 1], embedding[label == 0]
    if len(pos) and len(neg):
        d = cs_divergence(pos, neg, sigma=cfg.sigma)
        logs["d_cs"] = float(d.detach())
        if cfg.loss_type == "cs" and cfg.lambda_cs != 0:
            loss = loss + cfg.lambda_cs * (-d)
        if cfg.loss_type == "mmd":
            mmd = mmd2(pos, neg, sigma=cfg.sigma)
            logs["mmd2"] = float(mmd.detach())
            loss = loss + cfg.lambda_mmd * (-mmd)
    return loss, logs
