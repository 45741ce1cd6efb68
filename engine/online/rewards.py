"""Turning what users tell us into one reward in [-1, 1]: the unit every level of the
online model learns in (docs/online-model.md, "Rewards and calibration"; the rater's
calibration onto the population's scale is `engine/online/rater.py`).

The mapping:

| feedback | reward |
|---|---|
| stars 1, 2, 3, 4, 5 | -1, -0.5, 0, +0.5, +1 (linear: (stars - 3) / 2) |
| super_like / like / accept | +1 / +0.5 / +0.5 |
| dislike / reject / undo | -0.5 / -1 / -0.75 (an undo takes back an accept) |
| implicit: `time_to_accept_s` t | exp(-t / 20) - 0.5: +0.5 at once, 0 at 14 s, to -0.5 |
| implicit: `retries` r (re-generations before it) | 0.5 - 0.5 r, at least -1: +0.5 for none |
| several of the above | their weighted mean: stars and signals weigh 1, implicit signals 0.5 |
| metrics only (e.g. `{"speed": 900}`) | no quality reward: they feed their metrics' terms |

Implicit signals weigh half: they say how a suggestion went, not what the user thinks
of it. Conflicting feedback on the same settings is kept, never overwritten: each is one
noisy observation for the model.

The utility then weighs one term per metric of the spec by the preference weights in
force (the experiment's, or the user's own). Judgements (stars, signals, implicit
signals) are the term of the *judged* metric: the one named `quality`, else the first
metric to maximise, else the first. A measured metric, named as in the spec, scores
`(reference - value) / |reference|` for metrics to minimise and the opposite for metrics
to maximise (|reference| taken as 1 when the reference is 0), clipped to [-1, 1]: 0 at the
reference, the worst acceptable value, 1 at zero latency or cost. A term given twice (a
rating and a measured quality) is their mean; a term not given scores 0 (neutral).
Feedback whose terms all weigh 0 is stored but teaches nothing (`utility` is None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.spec import MetricSpec

__all__ = [
    "SIGNAL_REWARD",
    "Feedback",
    "Signal",
    "judged_metric",
    "metric_score",
    "quality_reward",
    "terms",
    "utility",
]

Signal = Literal["accept", "reject", "undo", "like", "dislike", "super_like"]
SIGNAL_REWARD: dict[str, float] = {
    "super_like": 1.0,
    "like": 0.5,
    "accept": 0.5,
    "dislike": -0.5,
    "reject": -1.0,
    "undo": -0.75,
}


MAX_COMMENT = 1000  # characters


class Feedback(BaseModel):
    """One piece of feedback on a suggestion: a rating, a signal, implicit signals and/or metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: int | None = Field(default=None, ge=1, le=5, description="1-5 stars")
    signal: Signal | None = None
    metrics: dict[str, float] | None = Field(
        default=None, description="measured values of the spec's metrics, by name"
    )
    time_to_accept_s: float | None = Field(
        default=None, ge=0, le=86400, description="implicit: seconds to accept"
    )
    retries: int | None = Field(
        default=None, ge=0, le=1000, description="implicit: re-generations before this"
    )
    comment: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COMMENT,
        description="what the user said, e.g. 'too dark'; tagged with the issues it names",
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


def judged_metric(metrics: Sequence[MetricSpec]) -> str:
    """The metric that ratings and signals judge: `quality`, else the first to maximise."""
    names = [m.name for m in metrics]
    if "quality" in names:
        return "quality"
    return next((m.name for m in metrics if m.direction == "max"), names[0])


def metric_score(value: float, metric: MetricSpec) -> float:
    """A measured value in [-1, 1]: 0 at the metric's reference, positive when better."""
    scale = abs(metric.reference) or 1.0
    return max(-1.0, min(1.0, (metric.reference - value) * metric.sign() / scale))


def terms(fb: Feedback, metrics: Sequence[MetricSpec]) -> dict[str, float]:
    """The feedback's score per metric it speaks of (names the spec lacks are ignored)."""
    parts: dict[str, list[float]] = {}
    quality = quality_reward(fb)
    if quality is not None:
        parts[judged_metric(metrics)] = [quality]
    for m in metrics:
        value = (fb.metrics or {}).get(m.name)
        if value is not None:
            parts.setdefault(m.name, []).append(metric_score(value, m))
    return {name: sum(scores) / len(scores) for name, scores in parts.items()}


def utility(fb: Feedback, metrics: Sequence[MetricSpec], weights: Mapping[str, float]) -> float | None:
    """The weighted mean of the metrics' terms (absent ones 0); None when every term the
    feedback gives weighs 0, so that it cannot teach anything under these weights."""
    given = terms(fb, metrics)
    if not any(weights.get(name, 0.0) > 0 for name in given):
        return None
    total = sum(weights.get(m.name, 0.0) for m in metrics)
    return sum(weights.get(name, 0.0) * score for name, score in given.items()) / total
