"""Batch samplers whose batch at step s is a pure function of (seed, s): a resumed run draws the
same batches as an uninterrupted one without saving any sampler state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

import torch
from torch.utils.data import Sampler


@lru_cache(maxsize=64)
def _perm(n: int, seed: int, stream: int, epoch: int) -> tuple[int, ...]:
    g = torch.Generator().manual_seed((seed * 1_000_003 + stream * 7_919 + epoch) % (2**63))
    return tuple(torch.randperm(n, generator=g).tolist())


class _Stream:
    """An endless sequence over ``items``: a fresh seeded permutation every epoch."""

    def __init__(self, items: Sequence, seed: int, stream: int) -> None:
        if not items:
            raise ValueError("a sampler stream needs at least one item")
        self.items, self.seed, self.stream = list(items), seed, stream

    def take(self, start: int, count: int) -> list:
        n = len(self.items)
        out = []
        for t in range(start, start + count):
            out.append(self.items[_perm(n, self.seed, self.stream, t // n)[t % n]])
        return out


class _GroupStream:
    """Round-robin over per-group streams: draw t goes to group t mod G, then that group's own
    endless stream, so every group gets the same share of a class whatever its size."""

    def __init__(self, items: Sequence[int], groups: Sequence[str], seed: int, stream: int) -> None:
        by: dict[str, list[int]] = {}
        for i in items:
            by.setdefault(groups[i], []).append(i)
        self.streams = [_Stream(by[g], seed, stream * 1000 + k) for k, g in enumerate(sorted(by))]

    def take(self, start: int, count: int) -> list:
        g = len(self.streams)
        return [self.streams[t % g].take(t // g, 1)[0] for t in range(start, start + count)]


class BalancedBatchSampler(Sampler[list[int]]):
    """Every batch holds both classes: ``n_pos`` preferred and ``batch_size - n_pos`` dispreferred.

    labels: one int per item (1 preferred, 0 dispreferred; others are never drawn).
    pos_fraction: share of preferred items per batch (None: 0.5), at least one of each class.
    groups: one name per item (e.g. the data's domain: procedural, licensed real meshes); given,
    each class is drawn equally from every group that has items of it, so that the domain an item
    comes from cannot stand in for its label when the domains' class ratios differ.
    rank / world: under DDP each rank takes its own slice of every class, so each rank's batch
    also holds both classes.
    """

    def __init__(
        self, labels: Sequence[int], batch_size: int, steps: int, seed: int = 0, start_step: int = 0,
        pos_fraction: float | None = None, rank: int = 0, world: int = 1, groups: Sequence[str] | None = None,
    ) -> None:
        pos = [i for i, y in enumerate(labels) if int(y) == 1]
        neg = [i for i, y in enumerate(labels) if int(y) == 0]
        if groups is not None and len(groups) != len(labels):
            raise ValueError(f"got {len(groups)} groups for {len(labels)} labels")
        if not pos or not neg:
            raise ValueError(f"training needs both classes; got {len(pos)} preferred and {len(neg)} dispreferred items")
        if batch_size < 2 * world:
            raise ValueError(f"batch_size must be at least {2 * world} (both classes on each of {world} ranks)")
        frac = 0.5 if pos_fraction is None else float(pos_fraction)
        self.n_pos = min(max(round(batch_size * frac), world), batch_size - world)
        self.n_neg = batch_size - self.n_pos
        if groups is None:
            self.pos, self.neg = _Stream(pos, seed, 1), _Stream(neg, seed, 0)
        else:
            self.pos, self.neg = _GroupStream(pos, groups, seed, 1), _GroupStream(neg, groups, seed, 0)
        self.steps, self.start_step, self.rank, self.world = steps, start_step, rank, world

    def batch(self, step: int) -> list[int]:
        p = self.pos.take(step * self.n_pos, self.n_pos)
        n = self.neg.take(step * self.n_neg, self.n_neg)
        return p[self.rank :: self.world] + n[self.rank :: self.world]

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start_step, self.steps):
            yield self.batch(s)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)


class PairedBatchSampler(Sampler[list[int]]):
    """For Bradley-Terry: batches of (preferred, dispreferred) pairs that share a prompt.

    Each batch is ``batch_size // 2`` pairs laid out as [p_1, d_1, p_2, d_2, ...].
    """

    def __init__(
        self, labels: Sequence[int], prompts: Sequence[str], batch_size: int, steps: int, seed: int = 0,
        start_step: int = 0, rank: int = 0, world: int = 1,
    ) -> None:
        by_prompt: dict[str, tuple[list[int], list[int]]] = {}
        for i, (y, p) in enumerate(zip(labels, prompts, strict=True)):
            if int(y) in (0, 1):
                by_prompt.setdefault(p, ([], []))[1 - int(y)].append(i)
        pairs = [(i, j) for pos, neg in by_prompt.values() for i in pos for j in neg]
        if not pairs:
            raise ValueError("bradley_terry needs data with pairs: no prompt has both a preferred and a dispreferred item")
        if batch_size < 2 * world:
            raise ValueError(f"batch_size must be at least {2 * world} for pairs on {world} ranks")
        self.n_pairs = batch_size // 2
        self.stream = _Stream(pairs, seed, 2)
        self.steps, self.start_step, self.rank, self.world = steps, start_step, rank, world
        self.num_pairs = len(pairs)

    def batch(self, step: int) -> list[int]:
        chosen = self.stream.take(step * self.n_pairs, self.n_pairs)[self.rank :: self.world]
        return [i for pair in chosen for i in pair]

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start_step, self.steps):
            yield self.batch(s)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)
