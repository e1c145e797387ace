"""Step schedules for any scalar of a config, in the spirit of threestudio's ``C()``.

A schedule is either a number (a constant) or a list ``[start_step, start_value, end_value,
end_step]``: the value is ``start_value`` up to ``start_step``, rises (or falls) linearly to
``end_value`` at ``end_step`` and stays there. The three-element form ``[start_value, end_value,
end_step]`` starts at step 0. Unlike threestudio, the end is always a step (an int or a float
both mean a step), never an epoch.

    alpha = C([100, 0.0, 1.0, 400], step)        # DreamCS' alpha(t): 0 until step 100, 1 from 400
    lr = C(1e-3, step)                           # a constant

``validate_schedule(value, name)`` checks a config value early and names the key in its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Schedule = float | int | Sequence[float]


class ScheduleError(ValueError):
    """A schedule value that is neither a number nor a valid ``[start, v0, v1, end]`` list."""


def _as_four(value: Any, name: str) -> tuple[float, float, float, float]:
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ScheduleError(f"{name}: schedule {value!r} must be a number or a list of numbers") from None
    if len(items) == 3:
        items = [0.0, *items]
    if len(items) != 4:
        raise ScheduleError(
            f"{name}: schedule {value!r} must be [start_step, start_value, end_value, end_step] "
            f"(or [start_value, end_value, end_step]), got {len(items)} items"
        )
    start_step, start_value, end_value, end_step = items
    if end_step < start_step:
        raise ScheduleError(f"{name}: schedule {value!r} ends (step {end_step:g}) before it starts ({start_step:g})")
    return start_step, start_value, end_value, end_step


def validate_schedule(value: Any, name: str = "schedule") -> None:
    """Raise ``ScheduleError`` naming ``name`` when ``value`` is not a schedule."""
    if isinstance(value, bool):
        raise ScheduleError(f"{name}: schedule {value!r} must be a number or a list, not a bool")
    if isinstance(value, (int, float)):
        return
    _as_four(value, name)


def C(value: Any, step: int | float, name: str = "schedule") -> float:
    """The value of schedule ``value`` at ``step`` (linear between its ends, clamped outside)."""
    if isinstance(value, bool):
        raise ScheduleError(f"{name}: schedule {value!r} must be a number or a list, not a bool")
    if isinstance(value, (int, float)):
        return float(value)
    start_step, start_value, end_value, end_step = _as_four(value, name)
    if end_step == start_step:
        # A step function: the end value from end_step on.
        return end_value if step >= end_step else start_value
    frac = (float(step) - start_step) / (end_step - start_step)
    frac = min(1.0, max(0.0, frac))
    return start_value + (end_value - start_value) * frac


def alpha_schedule(alpha_min: float, alpha_max: float, start_step: int, end_step: int) -> list[float]:
    """DreamCS' reward weight alpha(t) as a schedule list: alpha_min until ``start_step``, alpha_max from ``end_step``."""
    return [float(start_step), float(alpha_min), float(alpha_max), float(end_step)]
