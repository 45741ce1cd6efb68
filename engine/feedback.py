"""Turning what users tell us into one reward, and each rater onto a common scale.

The mapping (documented in the README):

| feedback | reward |
|---|---|
| stars 1, 2, 3, 4, 5 | -1, -0.5, 0, +0.5, +1 (linear: (stars - 3) / 2) |
| super_like / like / accept | +1 / +0.5 / +0.5 |
| dislike / reject / undo | -0.5 / -1 / -0.75 (an undo takes back an accept) |
| implicit: `time_to_accept_s` t | exp(-t / 20) - 0.5: +0.5 at once, 0 at 14 s, to -0.5 |
| implicit: `retries` r (re-generations before it) | 0.5 - 0.5 r, at least -1: +0.5 for none |
| several of the above | their weighted mean: stars and signals weigh 1, implicit signals 0.5 |
| metrics only (latency, cost) | no quality reward: they feed the speed/cost terms |

Implicit signals weigh half: they say how a suggestion went, not what the user thinks
of it. Conflicting feedback on the same settings is kept, never overwritten: each is one
noisy observation for the model.

A user's preference weights then combine the quality reward with speed and cost scores
(each in [-1, 1], better when lower latency or cost than the experiment's reference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["SIGNAL_REWARD", "Feedback", "Signal", "quality_reward", "utility"]

Signal = Literal["accept", "reject", "undo", "like", "dislike", "super_like"]
SIGNAL_REWARD: dict[str, float] = {
    "super_like": 1.0,
    "like": 0.5,
    "accept": 0.5,
    "dislike": -0.5,
    "reject": -1.0,
    "undo": -0.75,
}


class Feedback(BaseModel):
    """One piece of feedback on a suggestion: a rating, a signal, implicit signals and/or metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: int | None = Field(default=None, ge=1, le=5, description="1-5 stars")
    signal: Signal | None = None
    metrics: dict[str, float] | None = Field(default=None, description="measured latency_ms, cost, …")
    time_to_accept_s: float | None = Field(
        default=None, ge=0, le=86400, description="implicit: seconds to accept"
    )
    retries: int | None = Field(
        default=None, ge=0, le=1000, description="implicit: re-generations before this"
    )

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for name, value in (v or {}).items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}; send a finite number or leave it out")
        return v

    @model_validator(mode="after")
    def _something(self) -> Feedback:
        if not (self.metrics or self.implicit() or self.rating is not None or self.signal is not None):
            raise ValueError("feedback needs a rating (1-5), a signal, time_to_accept_s, retries or metrics")
        return self

    def implicit(self) -> dict[str, float]:
        """The implicit signals given, as stored (the feedback table's `implicit` column)."""
        found = {"time_to_accept_s": self.time_to_accept_s, "retries": self.retries}
        return {k: float(v) for k, v in found.items() if v is not None}


IMPLICIT_WEIGHT = 0.5


def quality_reward(fb: Feedback) -> float | None:
    """The quality reward in [-1, 1], or None when the feedback carries no judgement."""
    parts: list[tuple[float, float]] = []  # (reward, weight)
    if fb.rating is not None:
        parts.append(((fb.rating - 3) / 2, 1.0))
    if fb.signal is not None:
        parts.append((SIGNAL_REWARD[fb.signal], 1.0))
    if fb.time_to_accept_s is not None:
        parts.append((math.exp(-fb.time_to_accept_s / 20) - 0.5, IMPLICIT_WEIGHT))
    if fb.retries is not None:
        parts.append((max(-1.0, 0.5 - 0.5 * fb.retries), IMPLICIT_WEIGHT))
    if not parts:
        return None
    return sum(r * w for r, w in parts) / sum(w for _, w in parts)


def utility(
    quality: float,
    metrics: Mapping[str, float] | None,
    weights: Mapping[str, float],
    references: Mapping[str, float],
) -> float:
    """Weighted quality/speed/cost utility; a missing measurement scores neutral (0).

    speed and cost score 1 - value / reference, clipped to [-1, 1]: 0 at the reference.
    """
    total = weights.get("quality", 0.0)
    value = total * quality
    for name, metric in (("speed", "latency_ms"), ("cost", "cost")):
        w = weights.get(name, 0.0)
        total += w
        measured = (metrics or {}).get(metric)
        if w and measured is not None and references.get(name):
            value += w * max(-1.0, min(1.0, 1.0 - measured / references[name]))
    return value / total if total else quality
