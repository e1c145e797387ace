"""The order in which a reviewer sees a dataset: a seeded, stratified random sample.

Items are grouped into strata (by default: label x source x overall-score bin); each stratum is
shuffled with the seed, then the strata are interleaved round-robin (in a seeded order), so that any
prefix of the queue covers every stratum about equally - a reviewer who stops after 100 answers has
still seen preferred and dispreferred, every source and the whole score range. The queue is a pure
function of (ids, strata, seed): reopening the app with the same seed gives the same order, which
is what makes a review resumable.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

#: the stratum keys a queue can be built from
STRATA_KEYS = ("label", "source", "score_source", "score_bin", "split")


def score_bin(overall: float | None, edges: Sequence[float] = (1.0, 2.0, 3.0, 3.5, 4.0, 4.5)) -> str:
    """The bin of an overall score as a label, e.g. ``'[3.5,4.0)'``; ``'none'`` without a score."""
    if overall is None:
        return "none"
    lo = 0.0
    for hi in edges:
        if overall < hi:
            return f"[{lo:g},{hi:g})"
        lo = hi
    return f"[{lo:g},5]"


def stratum_of(row: dict[str, Any], by: Sequence[str]) -> tuple[str, ...]:
    """The stratum of a row under the keys ``by`` (a subset of ``STRATA_KEYS``)."""
    out = []
    for k in by:
        if k not in STRATA_KEYS:
            raise ValueError(f"unknown stratum key {k!r}; known: {', '.join(STRATA_KEYS)}")
        if k == "score_bin":
            out.append(score_bin(row.get("overall")))
        elif k == "score_source":
            out.append(str(row.get(k) or "machine"))
        else:
            out.append(str(row.get(k)))
    return tuple(out)


def review_queue(rows: Sequence[dict[str, Any]], seed: int = 0, by: Sequence[str] = ("label", "source", "score_bin")) -> list[str]:
    """All row ids in review order (stratified, seeded; see the module doc). Same input, same order."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["id"]):  # sorted: the order does not depend on the table's
        groups[stratum_of(r, by)].append(r["id"])
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    for k in keys:
        rng.shuffle(groups[k])
    queue: list[str] = []
    depth = max((len(g) for g in groups.values()), default=0)
    for i in range(depth):
        queue.extend(groups[k][i] for k in keys if i < len(groups[k]))
    return queue


def strata_counts(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> dict[str, int]:
    """Items per stratum, keyed ``'a / b / c'``, for the page's summary."""
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[" / ".join(stratum_of(r, by))] += 1
    return dict(sorted(counts.items()))
