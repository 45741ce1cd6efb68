"""`frontier explore`: a spec in, a Pareto front and Parquet files out.

Where trials run is the caller's choice, passed in as a `Runner`: `run_local` here (one by
one in this process), or `engine.ray.run_on_tune` (Ray Tune workers), which the CLI picks,
so that this module never imports Ray.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.offline.exploration import Exploration, Summary
from engine.offline.fronts import publish
from engine.offline.trials import evaluate
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["Runner", "default_out_dir", "explore", "run_local"]

# Runs an exploration's remaining budget; gets the objective built once by `explore`.
Runner = Callable[[Exploration, Any], None]


def default_out_dir(spec: ExperimentSpec) -> Path:
    return Path("results") / spec.name


def explore(
    spec: ExperimentSpec,
    out_dir: Path | None = None,
    *,
    runner: Runner,
    resume: bool = False,
    progress: bool = True,
    store: str | None = None,
) -> Summary:
    """Explore `spec`; everything finished is journaled before it counts.

    `runner`: `run_local` runs trials one by one in this process (for debugging, and as
    the baseline the benchmarks compare Tune with); `engine.ray.run_on_tune` on Ray Tune.
    `store`: an event store URL the finished trials are also published to, even when the
    run is interrupted (the HTTP API serves the front from there).
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    objective = spec.objective.build()  # fail here with the objective's message, not per trial
    bar = _ProgressBar(spec, disable=not progress)
    exploration = Exploration(spec, out, resume=resume, on_progress=bar.update)
    bar.start(exploration)
    try:
        runner(exploration, objective)
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
