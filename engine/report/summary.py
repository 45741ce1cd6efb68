"""Which settings users rate well, rate low, accept, undo or reject: per parameter and context.

Per context (and all contexts), per parameter: its values (categorical) or its quantile
bins (numeric, `bins` of equal counts over the suggestions rated), each with the ratings,
their mean with a 95% t interval, the share of low ratings (2 stars or fewer) and of each
signal with 95% Wilson intervals (statsmodels). What `frontier feedback-summary` prints.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from engine.online.protocol import context_label
from engine.spec import CategoricalParam, ExperimentSpec
from engine.store import EventStore

__all__ = ["LOW_STARS", "feedback_summary", "parameter_levels", "t_interval"]

LOW_STARS = 2.0
ALL = "all contexts"


def feedback_summary(store: EventStore, spec: ExperimentSpec, bins: int = 3) -> dict[str, Any]:
    rows = pd.DataFrame(store.feedback_since(spec.name, 0))
    if not len(rows):
        return {"experiment": spec.name, "feedback": 0, "contexts": {}}
    rows = rows.assign(context=rows["context"].map(lambda c: context_label(c) or ""))
    levels = parameter_levels(rows["params"], spec, bins)
    contexts = {ALL: rows.index}
    contexts |= {label or "default": group.index for label, group in rows.groupby("context")}
    found = {context: {name: _levels(rows.loc[index], by.loc[index]) for name, by in levels.items()}
             for context, index in contexts.items()}  # fmt: skip
    return {"experiment": spec.name, "feedback": len(rows), "low_stars": LOW_STARS, "contexts": found}


def parameter_levels(params: pd.Series, spec: ExperimentSpec, bins: int) -> dict[str, pd.Series]:
    """Per free parameter, each row's level: its value (categorical) or its quantile bin
    (numeric: `bins` bins of equal counts over these rows), as text."""
    space = spec.search_space()
    levels = {}
    for name in space.free:
        values = params.map(lambda p, n=name: p.get(n))
        if isinstance(space.params[name], CategoricalParam):
            levels[name] = values.astype(str)
        else:
            numbers = values.astype(float)
            cut = pd.qcut(numbers, q=bins, duplicates="drop")  # NaN where values are too few to cut
            labels = cut.map(lambda iv: f"[{iv.left:.4g}, {iv.right:.4g}]", na_action="ignore")
            levels[name] = labels.astype(object).fillna(numbers.map(lambda v: f"{v:.4g}")).astype(str)
    return levels


def _levels(rows: pd.DataFrame, by: pd.Series) -> dict[str, dict[str, Any]]:
    return {str(level): _cell(rows[by == level]) for level in sorted(by.unique())}


def _cell(group: pd.DataFrame) -> dict[str, Any]:
    stars = group["rating"].dropna().astype(float).to_numpy()
    out: dict[str, Any] = {"feedback": len(group), "ratings": len(stars)}
    if len(stars):
        out["mean_rating"] = float(stars.mean())
        out["mean_ci"] = t_interval(stars)
        out["low"] = _share(int((stars <= LOW_STARS).sum()), len(stars))
    signals = group["signal"].dropna()
    out["signals"] = {str(s): _share(int(n), len(signals)) for s, n in signals.value_counts().items()}
    return out


def t_interval(x: np.ndarray) -> list[float | None]:
    if len(x) < 2:
        return [None, None]
    with np.errstate(invalid="ignore"):  # equal values: no spread, the interval is the mean
        low, high = scipy_stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    return [float(low), float(high)] if np.isfinite(low) else [float(x.mean()), float(x.mean())]


def _share(count: int, total: int) -> dict[str, Any]:
    low, high = proportion_confint(count, total, alpha=0.05, method="wilson")
    return {"n": count, "of": total, "share": count / total, "ci": [float(low), float(high)]}
