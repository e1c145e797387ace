"""The order in which a reviewer sees a dataset: a seeded, stratified random sample.

Items are grouped into strata (by default: label x source x overall-score bin); each stratum is
shuffled with the seed, then the strata are interleaved round-robin (in a seeded order), so that any
prefix of the queue covers every stratum about equally - a reviewer who stops after 100 answers has
still seen preferred and dispreferred, every source and the whole score range. The queue is a pure
function of (ids, strata, seed), and the strata are those of the machine's scores (``machine_overall``
and the label it gives), which reviews and fits never change: reopening the app with the same seed
gives the same order even after answers relabelled items, which is what makes a review resumable.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

#: the stratum keys a queue can be built from
STRATA_KEYS = ("label", "source", "score_bin", "split")


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


def machine_overall(row: dict[str, Any]) -> float | None:
    """The machine's overall score of a row (kept in ``machine_overall`` once a human or a fit changed it)."""
    m = row.get("machine_overall")
    return row.get("overall") if m is None else m


def stratum_of(row: dict[str, Any], by: Sequence[str], thresholds: tuple[float, float] = (4.0, 3.5)) -> tuple[str, ...]:
    """The stratum of a row under the keys ``by`` (a subset of ``STRATA_KEYS``); ``label`` and
    ``score_bin`` are the machine's (``thresholds``: preferred_min, dispreferred_max)."""
    from dreamcs.data.store import label_for

    out = []
    for k in by:
        if k not in STRATA_KEYS:
            raise ValueError(f"unknown stratum key {k!r}; known: {', '.join(STRATA_KEYS)}")
        m = machine_overall(row)
        if k == "score_bin":
            out.append(score_bin(m))
        elif k == "label":
            out.append("none" if m is None else str(label_for(m, *thresholds)))
        else:
            out.append(str(row.get(k)))
    return tuple(out)


def review_queue(rows: Sequence[dict[str, Any]], seed: int = 0, by: Sequence[str] = ("label", "source", "score_bin"),
                 thresholds: tuple[float, float] = (4.0, 3.5)) -> list[str]:
    """All row ids in review order (stratified, seeded; see the module doc). Same input, same order."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["id"]):  # sorted: the order does not depend on the table's
        groups[stratum_of(r, by, thresholds)].append(r["id"])
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


def strata_counts(rows: Sequence[dict[str, Any]], by: Sequence[str], thresholds: tuple[float, float] = (4.0, 3.5)) -> dict[str, int]:
    """Items per stratum, keyed ``'a / b / c'``, for the page's summary."""
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[" / ".join(stratum_of(r, by, thresholds))] += 1
    return dict(sorted(counts.items()))
