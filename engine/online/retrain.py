"""Refitting the learner's constants on recent feedback, and judging a fit on held-out feedback.

The feedback of the last `days`, in write order, splits by time: the first 80% to fit on,
the last 20% held out. A model is scored by the predictive log-likelihood of each reward
given everything before it (it learns every row after scoring it, as it would serving).
The fit is a coordinate search over the constants that shape the predictive distribution
most (the users' amplitude, the length scale, rating noise), each doubled or halved while
that helps, from the active version's constants, within a factor of 4 of the defaults; it
chooses on the fit part's last quarter (its early rewards come from users with few
ratings, where a too-small noise costs nothing yet). A candidate is activated only when
its log-likelihood on the held-out part, which no choice looked at, beats the active
version's.

Our own code: the model is ours (engine/online/model.py), so no library scores it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from engine.online.front_prior import Front
from engine.online.model import OnlineModel
from engine.online.priors import Priors
from engine.online.protocol import context_label, stored_reward
from engine.online.rater import Rater
from engine.online.user_gp import UserHistory
from engine.spec import ExperimentSpec

__all__ = [
    "FITTED",
    "HELD_OUT",
    "MIN_ROWS",
    "Rated",
    "Score",
    "constants",
    "fit",
    "priors_of",
    "rated_rows",
    "score",
]

HELD_OUT = 0.2  # the last share of the window, by time, that decides
MIN_ROWS = 50  # rewards in the window below which nothing is fitted
FITTED = ("user_amplitude", "lengthscale", "noise")  # searched, in this order
BOUND = 4.0  # a fitted constant stays within a factor of 4 of its default
FACTORS = (2.0, 0.5)
MAX_STEPS = 4  # a constant moves at most 16-fold in one fit
DEFAULTS = Priors()


@dataclass(frozen=True)
class Rated:
    """One stored reward: who gave it, where, for which settings, and its seq."""

    seq: int
    user_id: str
    context: str | None
    params: dict[str, Any]
    reward: float


@dataclass(frozen=True)
class Score:
    """Mean predictive log-likelihood per reward of the fitting part and of the held-out part."""

    fit: float
    validation: float  # the fit part's last quarter: what the fit chooses on
    held_out: float
    n_fit: int
    n_held_out: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-safe: a score that is not finite (constants the model cannot work with) is None."""
        logliks = {
            "fit_loglik": self.fit,
            "validation_loglik": self.validation,
            "held_out_loglik": self.held_out,
        }
        return {**{k: v if math.isfinite(v) else None for k, v in logliks.items()},
                "n_fit": self.n_fit, "n_held_out": self.n_held_out}  # fmt: skip


def rated_rows(spec: ExperimentSpec, rows: Sequence[dict[str, Any]]) -> list[Rated]:
    """The rows that carry a reward under the experiment's weights, in write order."""
    out = []
    for row in rows:
        try:
            reward = stored_reward(spec, row)
        except (ValueError, KeyError, TypeError):
            continue  # a row no model can take (logged when it was learnt)
        if reward is not None:
            out.append(
                Rated(row["seq"], row["user_id"], context_label(row["context"]), row["params"], reward)
            )
    return out


def priors_of(constants: dict[str, float]) -> Priors:
    """The defaults with these constants (a model version's, checked when it was written)."""
    return Priors(**{**Priors().__dict__, **constants})


def score(spec: ExperimentSpec, rows: Sequence[Rated], priors: Priors, front: Front | None) -> Score:
    """Replay `rows` into a fresh learner with these constants, scoring each reward first."""
    model = OnlineModel(spec.search_space(), seed=spec.seed, priors=priors, front=front)
    raters: dict[str, Rater] = {}
    histories: dict[tuple[str, str], UserHistory] = {}
    split = len(rows) - max(1, round(len(rows) * HELD_OUT))
    logliks = np.empty(len(rows))
    for i, row in enumerate(rows):
        rater = raters.setdefault(row.user_id, Rater())
        history = histories.setdefault((row.user_id, row.context or ""), UserHistory())
        x, arm = model.encoding.encode(row.params)
        mean, std = model.posterior(rater, history, row.context, x[None, :], np.array([arm]))
        var = float(std[0]) ** 2 + priors.noise**2
        logliks[i] = -0.5 * (math.log(2 * math.pi * var) + (row.reward - float(mean[0])) ** 2 / var)
        model.observe(rater, history, row.context, row.params, row.reward)
    logliks[~np.isfinite(logliks)] = -np.inf  # NaN from constants the model cannot work with
    valid = split - max(1, split // 4)
    return Score(
        float(logliks[:split].mean()),
        float(logliks[valid:split].mean()),
        float(logliks[split:].mean()),
        split,
        len(rows) - split,
    )


def fit(
    spec: ExperimentSpec, rows: Sequence[Rated], start: Priors, front: Front | None
) -> tuple[Priors, Score]:
    """Coordinate search on the fitting part's evidence, from `start`: each constant in turn
    is doubled or halved, and moved on that way while the evidence grows (at most
    `MAX_STEPS` times, within `BOUND` of its default). The held-out part is replayed but
    never chooses."""
    best, best_score = start, score(spec, rows, start, front)
    for name in FITTED:
        for factor in FACTORS:
            moved = False
            for _ in range(MAX_STEPS):
                default, now = getattr(DEFAULTS, name), getattr(best, name)
                value = min(max(now * factor, default / BOUND), default * BOUND)
                if value == now or (value - now) * (factor - 1) < 0:
                    break  # at a bound (a start outside the bounds is pulled in, never out)
                trial = replace(best, **{name: value})
                found = score(spec, rows, trial, front)
                if found.validation <= best_score.validation:
                    break
                best, best_score, moved = trial, found, True
            if moved:
                break  # this constant went one way: the other way cannot also improve from here
    return best, best_score


def constants(priors: Priors) -> dict[str, float]:
    """The constants that differ from the defaults (what a version writes)."""
    names = [f.name for f in fields(Priors)]
    return {n: getattr(priors, n) for n in names if getattr(priors, n) != getattr(DEFAULTS, n)}
