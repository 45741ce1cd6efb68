"""What a report shows: the store's trials and ratings, the status numbers, and what the
engine's learner makes of them. Only `learnt` uses the engine (not thread-safe, quick), so
a Serve replica asks it on its event loop, then reads the store and draws
(engine.report.figures: slow, pure) in a thread."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.offline.fronts import trial_table
from engine.online import OnlineEngine
from engine.report.status import summarise
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["ReportData", "Run", "gather", "learnt", "read_store"]


@dataclass(frozen=True)
class Run:
    """One exploration run's published trials: `status`, `metric.<m>` and `param.<p>` columns."""

    run_id: str
    searcher: str
    trials: pd.DataFrame


@dataclass(frozen=True)
class ReportData:
    spec: ExperimentSpec
    status: dict[str, Any]
    runs: list[Run]  # oldest first
    rated: pd.DataFrame  # feedback with a rating: seq, user_id, rating, params, context, variant
    best: dict[str, dict[str, Any]]  # OnlineEngine.best_settings
    calibrations: list[dict[str, Any]]  # OnlineEngine.calibrations
    generated_at: float


def gather(engine: OnlineEngine, spec: ExperimentSpec) -> ReportData:
    """Everything at once (the CLI's way)."""
    return read_store(engine.store, spec, learnt(engine, spec.name))


def learnt(engine: OnlineEngine, name: str) -> dict[str, Any]:
    """What the engine's learner holds (quick; on the engine's thread)."""
    return {"best": engine.best_settings(name), "calibrations": engine.calibrations(name)}


def read_store(store: EventStore, spec: ExperimentSpec, learnt: dict[str, Any]) -> ReportData:
    """The store's trials and ratings, and the status numbers computed from the same rows
    (from any thread: the store's connections are pooled)."""
    name = spec.name
    searchers = {row["run_id"]: row["searcher"] for row in store.events("runs", experiment=name)}
    runs = [
        Run(run_id, searchers.get(run_id, "unknown searcher"), trial_table(rows, spec))
        for run_id, rows in store.published_runs(name).items()
    ]
    suggestions = pd.DataFrame(list(store.events("suggestions", experiment=name)))
    feedback = pd.DataFrame(store.feedback_since(name, 0))
    found = summarise(spec, suggestions, feedback)
    rated = feedback[feedback["rating"].notna()] if len(feedback) else feedback
    return ReportData(
        spec=spec,
        status=found,
        runs=runs,
        rated=rated.reset_index(drop=True),
        best=learnt["best"],
        calibrations=learnt["calibrations"],
        generated_at=time.time(),
    )
