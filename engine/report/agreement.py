"""Rater agreement: do users rate the same settings alike?

Krippendorff's alpha (the `krippendorff` package), at the interval level, over units
several users rated: a unit is a context, a variant and a cell of the space (each
categorical value, and the quantile bin of each numeric parameter, `bins` bins of equal
counts over the rated suggestions), so a variant that fixes its parameters is one unit per
context. A user's value for a unit is the mean of their ratings in it. Alpha 1: users rate
alike; 0: their ratings agree no more than chance; below 0: they disagree systematically.
Low agreement means personal tastes: the per-user model matters more than the population's.
"""

from __future__ import annotations

from typing import Any

import krippendorff
import numpy as np
import pandas as pd

from engine.online.protocol import context_label
from engine.report.summary import parameter_levels
from engine.spec import ExperimentSpec

__all__ = ["AGREEMENT_BINS", "rater_agreement"]

AGREEMENT_BINS = 3


def rater_agreement(rated: pd.DataFrame, spec: ExperimentSpec, bins: int = AGREEMENT_BINS) -> dict[str, Any]:
    """`rated`: feedback rows with a rating, their params, context and variant."""
    out: dict[str, Any] = {
        "method": "Krippendorff's alpha, interval level, users as raters (krippendorff package)",
        "units": (
            f"context x variant x cell of the space (categorical values, {bins} quantile bins "
            "per numeric parameter); a user's value: their mean rating in the unit"
        ),
    }
    if not len(rated):
        return {**out, "alpha": None, "note": "no ratings yet"}
    levels = parameter_levels(rated["params"], spec, bins)
    contexts = rated["context"].map(lambda c: context_label(c) or "default")
    unit = contexts + " | " + rated["variant"].fillna("default")
    for name, level in levels.items():
        unit = unit + f" | {name}=" + level
    table = rated.assign(unit=unit.to_numpy()).groupby(["user_id", "unit"])["rating"].mean().unstack()
    shared = table.loc[:, table.notna().sum() >= 2].dropna(how="all")
    out.update(shared_units=int(shared.shape[1]), raters=int(shared.shape[0]))
    if shared.shape[1] < 2:
        return {**out, "alpha": None, "note": "fewer than 2 units rated by 2 users or more"}
    values = shared.to_numpy(dtype=float)
    if np.nanstd(values) == 0:
        return {**out, "alpha": None, "note": "every rating in the shared units is the same"}
    alpha = krippendorff.alpha(reliability_data=values, level_of_measurement="interval")
    return {**out, "alpha": float(alpha)}
