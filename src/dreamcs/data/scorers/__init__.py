"""Scorers: rate one (mesh, prompt) pair from 0 to 5 on prompt alignment, structural realism and
visual fidelity. Pluggable through ``SCORERS``; a config dataclass beside each.

    scorer = build_scorer("geometric")          # or build_scorer("llm", url=..., model=...)
    scores = scorer.score(mesh, prompt, caption="a chair", mesh_hash="ab12...")

A scorer that cannot produce a trustworthy number raises ``ScoreError`` (the build records the item
as failed, with ``raw`` kept); it never invents a score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dreamcs.registry import Registry

SCORERS: Registry = Registry("scorer")
SCORE_NAMES = ("alignment", "realism", "fidelity")


class ScoreError(RuntimeError):
    """Scoring failed for one item; ``raw`` keeps what the scorer saw (e.g. the LLM's reply)."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(reason)

    def __reduce__(self):  # picklable across a process pool
        return (type(self), (self.reason, self.raw))


@dataclass
class Scores:
    """Three 0-5 scores; ``alignment`` is None when the scorer has nothing to compare the prompt with.

    ``details`` holds the raw figures behind the scores (for the failure log and the review page).
    """

    alignment: float | None
    realism: float
    fidelity: float
    details: dict[str, Any] = field(default_factory=dict)

    def overall(self) -> float:
        """The mean of the available scores (alignment left out when None)."""
        vals = [v for v in (self.alignment, self.realism, self.fidelity) if v is not None]
        return float(sum(vals) / len(vals))


def build_scorer(name: str, **settings: Any):
    """Instantiate the scorer ``name`` with its config dataclass built from ``settings``."""
    from dreamcs.data.scorers import geometric, llm  # noqa: F401  (registers the built-ins)

    cls = SCORERS.get(name)
    return cls(cls.config_cls(**settings))


__all__ = ["SCORERS", "SCORE_NAMES", "ScoreError", "Scores", "build_scorer"]
