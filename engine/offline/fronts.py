"""Offline fronts in the event store: `frontier explore --store` publishes, the API serves.

Every exploration run has its own id (`--resume` keeps the resumed run's), and a trial's
key is experiment/run/trial, so a new run's trials never collide with an earlier run's,
and re-publishing a resumed run only adds the trials that are new. The front served is
the newest run's (the run whose trials were published last), or the run asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from engine.offline.pareto import front, hypervolume, metric_column
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["UnknownRun", "front_report", "publish", "trial_table"]


class UnknownRun(LookupError):
    """A run id with no published trials."""


def publish(
    store: EventStore, spec: ExperimentSpec, results: Iterable[Mapping[str, Any]], run_id: str
) -> int:
    """Register the experiment (if new), the run and its searcher (once), and store its
    finished trials; returns how many were new."""
    store.add_experiment(spec.name, spec.model_dump(mode="json"))
    store.add_event(
        "runs",
        idempotency_key=f"{spec.name}/{run_id}",
        experiment=spec.name,
        run_id=run_id,
        searcher=spec.searcher.name,
        spec=spec.model_dump(mode="json"),
    )
    rows = [
        {
            "experiment": spec.name,
            "run_id": run_id,
            "trial_id": r["trial_id"],
            "status": r["status"],
            "params": r["params"],
            "metrics": r["metrics"],
            "error": r["error"],
        }
        for r in results
    ]
    return store.add_trials(rows)


def front_report(store: EventStore, spec: ExperimentSpec, run_id: str | None = None) -> dict[str, Any]:
    """One run's front (params and metrics), reference point and hypervolume: the newest
    run's unless `run_id` names one; `runs` lists every published run, oldest first."""
    by_run = store.published_runs(spec.name)
    runs = list(by_run)  # the last published last
    if run_id is not None and run_id not in by_run:
        raise UnknownRun(f"run {run_id!r} has no published trials in {spec.name!r}; runs: {runs}")
    chosen = run_id or (runs[-1] if runs else None)
    rows = by_run.get(chosen, []) if chosen else []
    table = trial_table(rows, spec)
    points = front(table, spec.metrics) if len(table) else table
    return {
        "experiment": spec.name,
        "run_id": chosen,
        "runs": runs,
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


def trial_table(rows: list[dict[str, Any]], spec: ExperimentSpec) -> pd.DataFrame:
    """Stored trial rows as engine.offline.pareto's trial table: `trial_id`, `status`, one
    `metric.<name>` column per metric and one `param.<name>` per free parameter."""
    data: dict[str, Any] = {"trial_id": [r["trial_id"] for r in rows], "status": [r["status"] for r in rows]}
    for m in spec.metrics:
        data[metric_column(m.name)] = [float((r["metrics"] or {}).get(m.name, np.nan)) for r in rows]
    for name in spec.search_space().free:
        data[f"param.{name}"] = [r["params"].get(name) for r in rows]
    return pd.DataFrame(data)
