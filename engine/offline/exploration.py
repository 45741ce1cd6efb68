"""The bookkeeping of one exploration, independent of where trials run.

Ray Tune (engine.ray) or a plain loop asks it for the next trial and reports results
back. It enforces the budget, journals every ask and result before acknowledging it,
rebuilds the searcher by replay on `--resume`, and writes the Parquet results.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from engine.offline.journal import Journal
from engine.offline.pareto import (
    HypervolumeTracker,
    front,
    hypervolume_history,
    knee,
    metric_column,
    select_by_weights,
)
from engine.offline.searchers import Searcher, Trial, make_searcher
from engine.offline.trials import TrialResult, checked_metrics
from engine.spec import ExperimentSpec, Space

__all__ = ["Exploration", "ResumeError", "Summary"]


class ResumeError(RuntimeError):
    """Stored results that cannot be continued as asked."""


@dataclass(frozen=True)
class Summary:
    out_dir: Path
    trials: int
    completed: int
    failed: int
    infeasible: int
    hypervolume: float
    run_id: str
    front: pd.DataFrame
    preferred: int | None
    knee: int | None


class Exploration:
    def __init__(
        self,
        spec: ExperimentSpec,
        out_dir: Path,
        *,
        resume: bool = False,
        on_progress: Callable[[Exploration], None] | None = None,
    ) -> None:
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.space: Space = spec.search_space()
        self.journal = Journal(self.out_dir / "events.jsonl")
        self.on_progress = on_progress
        self.results: list[dict[str, Any]] = []
        self._asked: dict[str, Trial] = {}
        self._requeue: deque[Trial] = deque()
        self._running: set[str] = set()
        self._hv = HypervolumeTracker(spec.metrics)
        self.started = time.monotonic()
        self.run_id = ""  # set by _open: this run's, or the resumed run's
        self.searcher = self._open(resume)

    # -- setup -------------------------------------------------------------------------

    def _open(self, resume: bool) -> Searcher:
        spec_file = self.out_dir / "spec.yaml"
        events = list(self.journal.read())
        if events and not resume:
            raise ResumeError(
                f"{self.out_dir} already holds an exploration ({len(events)} events); "
                "pass --resume to continue it, or choose another --out / delete the folder"
            )
        if resume and events:
            stored = yaml.safe_load(spec_file.read_text()) if spec_file.exists() else None
            if stored != self._spec_dict():
                raise ResumeError(
                    f"{self.out_dir} was explored with a different spec; resume needs the same "
                    f"spec (see {spec_file}), or start fresh in another --out folder"
                )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(yaml.safe_dump(self._spec_dict(), sort_keys=False))
        s = self.spec.searcher
        searcher = make_searcher(s.name, self.space, self.spec.metrics, self.spec.seed, s.options)
        self._replay(searcher, events)
        if not self.run_id:  # a new run (or a journal from before runs had ids)
            self.run_id = new_run_id()
            self.journal.append({"kind": "run", "run_id": self.run_id})
            self.journal.close()  # reopened by the next append: Tune pickles what holds it
        return searcher

    def _spec_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", exclude={"budget", "concurrency"})

    def _replay(self, searcher: Searcher, events: list[dict[str, Any]]) -> None:
        """Re-issue the journaled asks and tells; a seeded searcher ends where it stopped."""
        for ev in events:
            if ev["kind"] == "run":
                self.run_id = ev["run_id"]
            elif ev["kind"] == "ask":
                got = searcher.ask(1)
                if not got or got[0].trial_id != ev["trial_id"] or not _same(got[0].params, ev["params"]):
                    raise ResumeError(
                        f"replaying {self.journal.path} diverged at trial {ev['trial_id']}: "
                        "the searcher or a library changed since; start fresh in another --out"
                    )
                self._asked[ev["trial_id"]] = got[0]
            elif ev["kind"] == "result":
                searcher.tell(ev["trial_id"], ev["metrics"] if ev["status"] != "failed" else None)
                self._asked.pop(ev["trial_id"], None)
                self._remember(ev)
        # asked before the interruption but never finished: run them first
        self._requeue.extend(self._asked.values())

    # -- the loop's side -------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def budget_left(self) -> bool:
        b = self.spec.budget
        if b.wall_time_s is not None and self.elapsed_s >= b.wall_time_s:
            return False
        return b.trials is None or len(self.results) + len(self._running) < b.trials

    def done(self) -> bool:
        return not self._running and not self.budget_left()

    def next_trial(self) -> Trial | None:
        """The next trial to run, or None when the budget is spent or the searcher waits."""
        if not self.budget_left():
            return None
        if self._requeue:
            trial = self._requeue.popleft()
        else:
            asked = self.searcher.ask(1)
            if not asked:
                return None
            trial = asked[0]
            # made durable by the next result's fsync; an ask alone loses nothing finished
            event = {"kind": "ask", "trial_id": trial.trial_id, "params": trial.params}
            self.journal.append(event, durable=False)
            self._asked[trial.trial_id] = trial
        self._running.add(trial.trial_id)
        return trial

    def record(self, trial_id: str, result: TrialResult) -> dict[str, Any]:
        """Journal a finished trial, then tell the searcher; returns the stored row."""
        trial = self._asked.pop(trial_id)
        self._running.discard(trial_id)
        metrics, error = checked_metrics(result, [m.name for m in self.spec.metrics])
        status = "failed" if metrics is None else self._status(metrics)
        row = {
            "kind": "result",
            "trial_id": trial_id,
            "status": status,
            "error": error,
            "params": trial.params,
            "metrics": metrics,
            "started_at": result.started_at,
            "duration_s": result.duration_s,
            "worker": result.worker,
        }
        self.journal.append(row)
        self.searcher.tell(trial_id, metrics)
        self._remember(row)
        if self.on_progress is not None:
            self.on_progress(self)
        return row

    def _status(self, metrics: Mapping[str, float]) -> str:
        violated = any(
            m.constraint and m.constraint.violation(metrics[m.name]) > 0 for m in self.spec.metrics
        )
        return "infeasible" if violated else "completed"

    def _remember(self, row: dict[str, Any]) -> None:
        self.results.append(row)
        if row["status"] == "completed":
            self._hv.add(row["metrics"])

    @property
    def hypervolume(self) -> float:
        return self._hv.value

    # -- results ---------------------------------------------------------------------

    def table(self) -> pd.DataFrame:
        """One row per finished trial, in finishing order, with the hypervolume so far."""
        rows = []
        for i, r in enumerate(self.results):
            row: dict[str, Any] = {
                "trial_id": r["trial_id"],
                "order": i,
                "status": r["status"],
                "error": r["error"],
                "searcher": self.spec.searcher.name,
                "seed": self.spec.seed,
                "started_at": r["started_at"],
                "duration_s": r["duration_s"],
                "worker": r.get("worker", ""),  # journals before 2026-12 did not record it
            }
            row.update({f"param.{k}": v for k, v in r["params"].items()})
            for m in self.spec.metrics:
                value = (r["metrics"] or {}).get(m.name)
                row[metric_column(m.name)] = np.nan if value is None else float(value)
            rows.append(row)
        df = pd.DataFrame(rows)
        if not df.empty:
            df["hypervolume"] = hypervolume_history(df, self.spec.metrics)
        return df

    def write(self) -> Summary:
        """Write trials.parquet, front.parquet and summary.json; safe to call any time."""
        trials = self.table()
        metrics = self.spec.metrics
        pts = front(trials, metrics) if not trials.empty else trials
        preferred = select_by_weights(pts, metrics, self.spec.weights()) if len(pts) else None
        knee_row = knee(pts, metrics) if len(pts) else None
        if len(pts):
            pts = pts.assign(preferred=pts.index == preferred, knee=pts.index == knee_row)
        _atomic_parquet(trials, self.out_dir / "trials.parquet")
        _atomic_parquet(pts, self.out_dir / "front.parquet")
        counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
        summary = Summary(
            out_dir=self.out_dir,
            run_id=self.run_id,
            trials=len(trials),
            completed=int(counts.get("completed", 0)),
            failed=int(counts.get("failed", 0)),
            infeasible=int(counts.get("infeasible", 0)),
            hypervolume=self.hypervolume,
            front=pts,
            preferred=preferred,
            knee=knee_row,
        )
        info = {
            "experiment": self.spec.name,
            "run_id": self.run_id,
            "searcher": self.spec.searcher.name,
            "seed": self.spec.seed,
            "trials": summary.trials,
            "completed": summary.completed,
            "failed": summary.failed,
            "infeasible": summary.infeasible,
            "front_size": len(pts),
            "hypervolume": summary.hypervolume,
            "reference_point": {m.name: m.reference for m in metrics},
        }
        (self.out_dir / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
        return summary

    def close(self) -> None:
        self.journal.close()


def new_run_id() -> str:
    """Sortable by start time, unique across machines: `20261130T142501Z-1a2b3c4d`."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, int | float):
            if not math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
