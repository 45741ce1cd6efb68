"""`frontier explore`: a spec in, a Pareto front and Parquet files out, via Ray Tune."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from engine.config import ExperimentSpec
from engine.exploration import Exploration, Summary, evaluate
from engine.fronts import publish
from engine.store import EventStore

__all__ = ["default_out_dir", "explore", "run_local"]


def default_out_dir(spec: ExperimentSpec) -> Path:
    return Path("results") / spec.name


def explore(
    spec: ExperimentSpec,
    out_dir: Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    backend: Literal["ray", "local"] = "ray",
    store: str | None = None,
) -> Summary:
    """Explore `spec`; everything finished is journaled before it counts.

    `backend="ray"` runs trials on Ray Tune workers; `"local"` runs them one by one in
    this process (for debugging, and as the baseline the benchmarks compare Tune with).
    `store`: an event store URL the finished trials are also published to, even when the
    run is interrupted (the HTTP API serves the front from there).
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    objective = spec.objective.build()  # fail here with the objective's message, not per trial
    bar = _ProgressBar(spec, disable=not progress)
    exploration = Exploration(spec, out, resume=resume, on_progress=bar.update)
    bar.start(exploration)
    try:
        if backend == "local":
            run_local(exploration, objective)
        else:
            from engine.ray import run_on_tune  # Ray stays out of the core's import path

            run_on_tune(exploration)
    finally:
        bar.close()
        summary = exploration.write()
        exploration.close()
        if store is not None:
            events = EventStore(store)
            publish(events, spec, exploration.results, exploration.run_id)
            events.close()
    return summary


def run_local(exploration: Exploration, objective: Any) -> None:
    """Evaluate the exploration's trials sequentially in this process."""
    while not exploration.done():
        trial = exploration.next_trial()
        if trial is None:  # cannot happen sequentially: nothing is pending
            raise RuntimeError(f"{exploration.searcher.name} proposed no trial with none pending")
        exploration.record(trial.trial_id, evaluate(objective, trial.params))


class _ProgressBar:
    """Trials done, current hypervolume and time left."""

    def __init__(self, spec: ExperimentSpec, disable: bool) -> None:
        self.spec = spec
        self.disable = disable
        self._bar: tqdm | None = None

    def start(self, exploration: Exploration) -> None:
        self._bar = tqdm(
            total=self.spec.budget.trials,
            initial=len(exploration.results),
            desc=self.spec.name,
            unit="trial",
            file=sys.stderr,
            disable=self.disable,
            dynamic_ncols=True,
        )
        self.update(exploration, advance=0)

    def update(self, exploration: Exploration, advance: int = 1) -> None:
        if self._bar is None:
            return
        postfix = {"hv": f"{exploration.hypervolume:.4g}", "failed": _count(exploration, "failed")}
        if self.spec.budget.wall_time_s is not None:
            postfix["time_left"] = f"{max(0.0, self.spec.budget.wall_time_s - exploration.elapsed_s):.0f}s"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(advance)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _count(exploration: Exploration, status: str) -> int:
    return sum(r["status"] == status for r in exploration.results)
