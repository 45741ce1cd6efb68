"""The suggestion protocol's terms: what a request may carry, what it gets back, the errors
it can meet (each with the HTTP status it maps to), and how stored rows read back.

`OnlineEngine` (engine/online/service.py) serves it; the model behind the suggestions is
described in docs/online-model.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from engine.online.rewards import Feedback, utility
from engine.spec import ExperimentSpec

__all__ = [
    "MAX_ID",
    "ConflictingFeedback",
    "ExpiredSuggestion",
    "FeedbackResult",
    "InvalidRequest",
    "OnlineError",
    "Suggestion",
    "UnknownExperiment",
    "UnknownSuggestion",
    "check_id",
    "content_key",
    "context_label",
    "stored_feedback",
    "stored_reward",
]

MAX_ID = 256


class OnlineError(ValueError):
    """A request that cannot be served; `status` is the HTTP status it maps to."""

    status = 422


class InvalidRequest(OnlineError):
    """A request that breaks the protocol or the experiment's spec."""


class UnknownExperiment(OnlineError):
    status = 404


class UnknownSuggestion(OnlineError):
    status = 404


class UnknownUser(OnlineError):
    """No event of this user is stored (never seen, or deleted)."""

    status = 404


class ExpiredSuggestion(OnlineError):
    status = 410


class ConflictingFeedback(OnlineError):
    """An idempotency key reused on one suggestion with another body."""

    status = 409


@dataclass(frozen=True)
class Suggestion:
    suggestion_id: str
    experiment: str
    user_id: str
    context: str | None
    params: dict[str, Any]
    variant: str  # the variant's name, or "default" in an experiment without variants
    expires_at: float
    variant_version: str | None = None
    payload: dict[str, Any] | None = None  # the variant's payload (a prompt template, say)


@dataclass(frozen=True)
class FeedbackResult:
    """How feedback was taken: stored now or before, and whether any model learns from it."""

    status: Literal["recorded", "duplicate"]
    learnt: bool
    reason: str | None = None  # why it is not learnt
    variant: str | None = None  # the rated suggestion's variant's name; None when nothing was stored


def check_id(name: str, value: str, limit: int = MAX_ID) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise InvalidRequest(f"{name} is {len(value)} characters long; the limit is {limit}")


def content_key(fb: Feedback) -> str:
    """Without an idempotency key, identical feedback on one suggestion counts once."""
    # without a comment, the body as before comments existed: a retry across an upgrade keeps its key
    body = json.dumps(fb.model_dump(exclude={"comment"} if fb.comment is None else None), sort_keys=True)
    return f"auto:{hashlib.sha256(body.encode()).hexdigest()[:32]}"


def stored_feedback(row: dict[str, Any]) -> Feedback:
    """The feedback a stored row carries."""
    implicit = row["implicit"] or {}
    found = {
        "rating": row["rating"],
        "signal": row["signal"],
        "metrics": row["metrics"],
        "comment": row.get("comment"),
    }
    return Feedback(**found, **implicit)


def stored_reward(
    spec: ExperimentSpec, row: dict[str, Any], weights: dict[str, float] | None = None
) -> float | None:
    """A stored row's utility under `weights` (default: the experiment's preference)."""
    return utility(stored_feedback(row), spec.metrics, weights or spec.weights())


def context_label(stored: str | dict[str, Any] | None) -> str | None:
    """A stored context is a label, or features with the label they were clustered to."""
    return stored.get("label") if isinstance(stored, dict) else stored
