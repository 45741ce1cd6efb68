"""Pareto tools over trial tables: fronts, hypervolume, and picking one point.

Trial tables hold one row per trial with `metric.<name>` columns and a `status`
(`completed`, `infeasible`, `failed`). Sorting and hypervolume are moocore's; the
weighted and knee selections are ours, on metrics normalised over the front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from engine.spec import MetricSpec

__all__ = [
    "HypervolumeTracker",
    "feasible",
    "format_front",
    "front",
    "hypervolume",
    "hypervolume_history",
    "knee",
    "metric_column",
    "minimised",
    "select_by_weights",
]


def metric_column(name: str) -> str:
    return f"metric.{name}"


def minimised(trials: pd.DataFrame, metrics: Sequence[MetricSpec]) -> np.ndarray:
    """Metric values as an (n, m) matrix where smaller is better for every column."""
    cols = [trials[metric_column(m.name)].to_numpy(dtype=float) * m.sign() for m in metrics]
    return np.column_stack(cols) if cols else np.empty((len(trials), 0))


def feasible(trials: pd.DataFrame, metrics: Sequence[MetricSpec]) -> np.ndarray:
    """Rows that finished, have finite metrics and satisfy every constraint."""
    mask = np.ones(len(trials), dtype=bool)
    if "status" in trials:
        mask &= (trials["status"] != "failed").to_numpy()
    for m in metrics:
        col = metric_column(m.name)
        if col not in trials:
            return np.zeros(len(trials), dtype=bool)
        values = trials[col].to_numpy(dtype=float)
        mask &= np.isfinite(values)
        if m.constraint is not None:
            with np.errstate(invalid="ignore"):
                mask &= np.array([m.constraint.violation(v) == 0 for v in values], dtype=bool)
    return mask


def front(trials: pd.DataFrame, metrics: Sequence[MetricSpec]) -> pd.DataFrame:
    """Feasible non-dominated trials (duplicates kept once), sorted by the first metric."""
    ok = trials[feasible(trials, metrics)]
    if ok.empty:
        return ok
    values = minimised(ok, metrics)
    nd = moocore.is_nondominated(values, keep_weakly=False)
    result = ok[nd]
    return result.sort_values(metric_column(metrics[0].name), ascending=metrics[0].sign() > 0)


def _reference(metrics: Sequence[MetricSpec]) -> np.ndarray:
    return np.array([m.reference * m.sign() for m in metrics], dtype=float)


def hypervolume(trials: pd.DataFrame, metrics: Sequence[MetricSpec]) -> float:
    """Hypervolume of the feasible trials against the metrics' reference point."""
    values = minimised(trials[feasible(trials, metrics)], metrics)
    return _hypervolume(values, _reference(metrics))


def _hypervolume(values: np.ndarray, ref: np.ndarray) -> float:
    inside = values[np.all(values < ref, axis=1)] if len(values) else values
    if len(inside) == 0:
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref))


class HypervolumeTracker:
    """Hypervolume kept up to date as points arrive, holding only the current front."""

    def __init__(self, metrics: Sequence[MetricSpec]) -> None:
        self.metrics = list(metrics)
        self.ref = _reference(metrics)
        self.points = np.empty((0, len(self.metrics)))
        self.value = 0.0

    def add(self, values: Mapping[str, float]) -> float:
        """Add one feasible point (metric name -> value); returns the new hypervolume."""
        point = np.array([values[m.name] * m.sign() for m in self.metrics], dtype=float)
        if np.all(point < self.ref):
            points = np.vstack([self.points, point])
            self.points = points[moocore.is_nondominated(points, keep_weakly=False)]
            self.value = _hypervolume(self.points, self.ref)
        return self.value


def hypervolume_history(trials: pd.DataFrame, metrics: Sequence[MetricSpec]) -> np.ndarray:
    """Hypervolume after each trial, in table order (the order trials finished)."""
    ok = feasible(trials, metrics)
    tracker = HypervolumeTracker(metrics)
    cols = [metric_column(m.name) for m in metrics]
    out = np.zeros(len(trials))
    for i, row in enumerate(trials[cols].to_numpy(dtype=float)):
        if ok[i]:
            tracker.add({m.name: v for m, v in zip(metrics, row, strict=True)})
        out[i] = tracker.value
    return out


def _normalised_gain(points: pd.DataFrame, metrics: Sequence[MetricSpec]) -> np.ndarray:
    """Each metric scaled over the points to [0, 1], 1 the best of them."""
    values = minimised(points, metrics)
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.asarray(1.0 - (values - lo) / span)


def select_by_weights(
    points: pd.DataFrame, metrics: Sequence[MetricSpec], weights: Mapping[str, float]
) -> int:
    """Row label of the point with the best weighted sum of normalised metrics."""
    if points.empty:
        raise ValueError("no feasible point to select from; run more trials or relax constraints")
    w = np.array([weights.get(m.name, 0.0) for m in metrics], dtype=float)
    if w.sum() <= 0:
        raise ValueError(f"preference weights {dict(weights)} sum to 0; give some metric weight > 0")
    scores = _normalised_gain(points, metrics) @ (w / w.sum())
    return int(points.index[int(np.argmax(scores))])


def knee(points: pd.DataFrame, metrics: Sequence[MetricSpec]) -> int:
    """Row label of the knee: the best equally weighted sum of normalised gains.

    On two metrics this is the point farthest beyond the line joining the front's two
    extremes (the "maximum bulge" knee); the same rule extends to more metrics.
    """
    return select_by_weights(points, metrics, {m.name: 1.0 for m in metrics})


def format_front(front: pd.DataFrame) -> str:
    """The front as a plain table: metrics first, then parameters, marks for the picks."""
    if front.empty:
        return "(no feasible trial yet)"
    metrics = [c for c in front.columns if c.startswith("metric.")]
    params = [c for c in front.columns if c.startswith("param.")]
    table = front[["trial_id", *metrics, *params]].copy()
    table.columns = [c.split(".", 1)[-1] for c in table.columns]
    marks = []
    for _, row in front.iterrows():
        tags = [t for t in ("preferred", "knee") if bool(row.get(t, False))]
        marks.append(",".join(tags))
    table.insert(0, "pick", marks)
    with pd.option_context("display.max_columns", None, "display.width", 200):
        return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
