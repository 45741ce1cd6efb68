"""An experiment's status at a glance, from its stored suggestions and feedback.

Counts, the feedback rate, ratings (mean, share of 4 stars or more, best), a convergence
score, performance per categorical parameter value (e.g. provider), per context and per
variant, the rating trend in buckets of 10 ratings, rater agreement
(engine.report.agreement), and which parameter changed most from
a user's previous suggestion (in that context) with the signals that followed. Pandas over
the store's rows; every number is reproducible from `frontier export`'s files.

Convergence score: the share of rated users whose last `CONVERGED_LAST` ratings average at
least `CONVERGED_STARS` stars: users who are now served what they like.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.experiments import served_name
from engine.online.protocol import context_label
from engine.report.agreement import rater_agreement
from engine.spec import CategoricalParam, ExperimentSpec, Space
from engine.store import EventStore

__all__ = ["CONVERGED_LAST", "CONVERGED_STARS", "TREND_BUCKET", "status", "summarise"]

CONVERGED_LAST, CONVERGED_STARS = 3, 4.0
TREND_BUCKET = 10  # ratings per trend bucket, in write order
SIGNALS = ("accept", "reject", "undo", "like", "dislike", "super_like")


def status(store: EventStore, spec: ExperimentSpec) -> dict[str, Any]:
    suggestions = pd.DataFrame(list(store.events("suggestions", experiment=spec.name)))
    return summarise(spec, suggestions, pd.DataFrame(store.feedback_since(spec.name, 0)))


def summarise(spec: ExperimentSpec, suggestions: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, Any]:
    """The status numbers of rows already read: the experiment's suggestions, and its
    feedback as `EventStore.feedback_since` returns it."""
    n_suggestions, n_feedback = len(suggestions), len(feedback)
    out: dict[str, Any] = {
        "experiment": spec.name,
        "users": int(suggestions["user_id"].nunique()) if n_suggestions else 0,
        "suggestions": n_suggestions,
        "feedback": n_feedback,
        "feedback_rate": n_feedback / n_suggestions if n_suggestions else None,
        "convergence": {
            "definition": f"share of rated users whose last {CONVERGED_LAST} ratings "
            f"average at least {CONVERGED_STARS:g} stars"
        },
    }
    rated = feedback[feedback["rating"].notna()] if n_feedback else feedback
    if not len(rated):
        return {**out, "ratings": 0, "note": "no ratings yet"}
    stars = rated["rating"].astype(float)
    last = rated.groupby("user_id")["rating"].apply(lambda r: r.tail(CONVERGED_LAST).mean())
    out.update(
        ratings=len(rated),
        mean_rating=float(stars.mean()),
        share_4_or_more=float((stars >= 4).mean()),
        best_rating=float(stars.max()),
    )
    out["convergence"]["score"] = float((last >= CONVERGED_STARS).mean())
    out["by_parameter"] = _by_choice(rated, spec)
    out["by_context"] = _grouped(rated, rated["context"].map(context_label).fillna("default"))
    out["by_variant"] = _grouped(rated, rated["variant"].map(served_name))
    out["trend"] = _trend(stars)
    out["rater_agreement"] = rater_agreement(rated, spec)
    out["signals"] = _signals(feedback, suggestions, spec)
    return out


def _grouped(rated: pd.DataFrame, keys: pd.Series) -> dict[str, dict[str, float]]:
    """Per key: ratings, mean, and win rate (the share of 4 stars or more)."""
    stars = rated["rating"].astype(float)
    groups = stars.groupby(keys.where(keys != "", "default").to_numpy())
    return {
        str(k): {"ratings": len(g), "mean_rating": float(g.mean()), "win_rate": float((g >= 4).mean())}
        for k, g in groups
    }


def _by_choice(rated: pd.DataFrame, spec: ExperimentSpec) -> dict[str, dict[str, dict[str, float]]]:
    """Per categorical parameter (e.g. provider), per value: ratings, mean and win rate."""
    space = spec.search_space()
    names = [n for n in space.free if isinstance(space.params[n], CategoricalParam)]
    return {n: _grouped(rated, rated["params"].map(lambda p, n=n: str(p.get(n)))) for n in names}


def _trend(stars: pd.Series) -> list[dict[str, float]]:
    values = stars.to_numpy()
    buckets = [values[i : i + TREND_BUCKET] for i in range(0, len(values), TREND_BUCKET)]
    return [
        {
            "from": i * TREND_BUCKET + 1,
            "ratings": len(b),
            "mean": float(b.mean()),
            "max": float(b.max()),
            "min": float(b.min()),
            "std": float(b.std(ddof=1)) if len(b) > 1 else 0.0,
        }
        for i, b in enumerate(buckets)
    ]


def _signals(feedback: pd.DataFrame, suggestions: pd.DataFrame, spec: ExperimentSpec) -> dict[str, Any]:
    """Signal rates, overall and per the parameter that changed most (in unit-cube terms)
    from the user's previous suggestion in that context."""
    if not len(feedback) or feedback["signal"].isna().all():
        return {"counts": {}, "by_changed_parameter": {}}
    space = spec.search_space()
    order = suggestions.sort_values("seq")
    order = order.assign(label=order["context"].map(context_label).fillna(""))
    changed: dict[str, str | None] = {}
    for _, rows in order.groupby(["user_id", "label"], sort=False):
        previous = None
        for sid, params in zip(rows["suggestion_id"], rows["params"], strict=True):
            changed[sid] = _most_changed(space, previous, params) if previous is not None else None
            previous = params
    signalled = feedback[feedback["signal"].notna()]
    counts = signalled["signal"].value_counts()
    by_param = signalled.assign(changed=signalled["suggestion_id"].map(changed)).dropna(subset=["changed"])
    rates = {
        str(p): {
            "n": len(g),
            **{s: float((g["signal"] == s).mean()) for s in SIGNALS if (g["signal"] == s).any()},
        }
        for p, g in by_param.groupby("changed")
    }
    return {"counts": {str(k): int(v) for k, v in counts.items()}, "by_changed_parameter": rates}


def _most_changed(space: Space, before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The parameter that moved most in the unit cube (a categorical change counts as 1)."""
    moves = space.moves(before, after)
    name = max(moves, key=moves.__getitem__, default=None)
    return name if name is not None and moves[name] > 0 else None
