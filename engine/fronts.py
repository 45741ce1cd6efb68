"""Offline fronts in the event store: `frontier explore --store` publishes, the API serves.

Publishing is idempotent (a trial's key is experiment/trial_id), so re-publishing a
resumed exploration only adds the trials that are new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from engine.config import ExperimentSpec
from engine.pareto import front, hypervolume, metric_column
from engine.store import EventStore

__all__ = ["front_report", "publish"]


def publish(store: EventStore, spec: ExperimentSpec, results: Iterable[Mapping[str, Any]]) -> int:
    """Register the experiment (if new) and store its finished trials; returns how many were new."""
    store.add_experiment(spec.name, spec.model_dump(mode="json"))
    rows = [
        {
            "experiment": spec.name,
            "trial_id": r["trial_id"],
            "status": r["status"],
            "params": r["params"],
            "metrics": r["metrics"],
            "error": r["error"],
        }
        for r in results
    ]
    return store.add_trials(rows)


def front_report(store: EventStore, spec: ExperimentSpec) -> dict[str, Any]:
    """The published trials' front (params and metrics), reference point and hypervolume."""
    rows = list(store.events("trials", experiment=spec.name))
    table = _table(rows, spec)
    points = front(table, spec.metrics) if len(table) else table
    return {
        "experiment": spec.name,
        "trials": len(rows),
        "reference_point": {m.name: m.reference for m in spec.metrics},
        "hypervolume": hypervolume(table, spec.metrics) if len(table) else 0.0,
        "front": [
            {
                "trial_id": rows[int(i)]["trial_id"],
                "params": rows[int(i)]["params"],
                "metrics": rows[int(i)]["metrics"],
            }
            for i in points.index
        ],
    }


def _table(rows: list[dict[str, Any]], spec: ExperimentSpec) -> pd.DataFrame:
    """engine.pareto's trial table: a status and one `metric.<name>` column per metric."""
    data: dict[str, Any] = {"status": [r["status"] for r in rows]}
    for m in spec.metrics:
        data[metric_column(m.name)] = [float((r["metrics"] or {}).get(m.name, np.nan)) for r in rows]
    return pd.DataFrame(data)
