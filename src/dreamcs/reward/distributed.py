"""torch.distributed helpers for reward training: rank/world, gathering with gradients, joining
the process group torchrun set up. Outside DDP everything is a no-op."""

from __future__ import annotations

import os

import torch
from torch import Tensor


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside an initialised process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_across_ranks(x: Tensor) -> Tensor:
    """x (B_r, ...) of every rank concatenated in rank order (sum_r B_r, ...); ``x`` itself outside
    DDP. Differentiable: each rank's slice receives the gradient summed over the ranks' (identical)
    losses, i.e. world x its share, which DDP's gradient averaging then brings back to the
    single-device gradient. B_r may differ between ranks (the samplers split classes unevenly)."""
    rank, world = dist_info()
    if world == 1:
        return x
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    n = [int(s) for s in sizes]
    pad = max(n) - x.shape[0]
    xp = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]) if pad else x
    if x.requires_grad:
        parts = all_gather(xp)
    else:
        parts = [torch.empty_like(xp) for _ in range(world)]
        dist.all_gather(parts, xp.contiguous())
    return torch.cat([p[:k] for p, k in zip(parts, n, strict=True)])


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun set up (RANK, WORLD_SIZE, MASTER_ADDR env); no-op alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return dist_info()
