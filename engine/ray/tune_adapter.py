"""Our exploration plugged into Ray Tune: a Tune `Searcher` and a class trainable.

Tune schedules trials on workers, limits concurrency and applies per-trial resources;
the Exploration (engine core) decides what to run and records what happened.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import ray
from ray import tune
from ray.tune.search import Searcher

from engine.offline import Exploration, TrialResult, evaluate
from engine.ray.metrics import ExplorationMetrics
from engine.ray.rendezvous import Rendezvous, workers_expected
from engine.ray.runtime import ensure_ray
from engine.spec import ObjectiveSpec

_RESULT_KEY = "frontier_result"
# how long an actor's setup waits for the others (actors took 5.6 s to start on an idle
# 2-core machine); past it the run goes on with the actors it has
RENDEZVOUS_TIMEOUT_S = 30.0
_objectives: dict[str, Any] = {}


def _objective(spec: ObjectiveSpec) -> Any:
    """One objective per worker process, reused across trials (images load once)."""
    key = spec.model_dump_json()
    if key not in _objectives:
        _objectives[key] = spec.build()
    return _objectives[key]


class EvaluateTrial(tune.Trainable):
    """One evaluation per trial; `reset_config` lets Tune reuse the actor for the next one.

    A class trainable, not a function: Tune runs a function trainable in a fresh thread per
    trial and hands its result over through queues, which costs more than a cheap objective.
    An objective error is data (a failed TrialResult), not a crashed trial.
    """

    def setup(
        self, config: dict[str, Any], objective: ObjectiveSpec | None = None, rendezvous: Any = None
    ) -> None:
        if objective is None:
            raise TypeError("EvaluateTrial needs its objective: wrap it with tune.with_parameters")
        self.objective = _objective(objective)
        if rendezvous is not None:  # see engine.ray.rendezvous: without it a run can go serial
            ray.get(rendezvous.arrive.remote(RENDEZVOUS_TIMEOUT_S))

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        return True

    def step(self) -> dict[str, Any]:
        result = evaluate(self.objective, self.config)
        return {_RESULT_KEY: json.dumps(dataclasses.asdict(result), default=float), "done": True}


class TuneSearcher(Searcher):
    """Hands Tune the exploration's trials and tells it the results."""

    def __init__(self, exploration: Exploration) -> None:
        super().__init__(metric=None, mode=None)
        self.exploration = exploration
        self._ours: dict[str, str] = {}  # Tune trial id -> our trial id

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the exploration's journal is the checkpoint."""

    def restore(self, checkpoint_path: str) -> None:
        """Resuming replays the journal (`frontier explore --resume`), not Tune state."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.exploration.next_trial()
        if trial is None:
            # Tune's protocol signals the end with the FINISHED string in place of a config
            return Searcher.FINISHED if not self.exploration.budget_left() else None  # type: ignore[return-value]
        self._ours[trial_id] = trial.trial_id
        return dict(trial.params)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ours = self._ours.pop(trial_id, None)
        if ours is None:
            return
        raw = (result or {}).get(_RESULT_KEY)
        if raw is None:
            outcome = TrialResult(None, "the worker running this trial failed (see Ray logs)")
        else:
            outcome = TrialResult(**json.loads(raw))
        self.exploration.record(ours, outcome)


def run_on_tune(exploration: Exploration, objective: Any = None) -> None:
    """Run the exploration's remaining budget on the connected (or a new local) Ray
    (an `engine.offline.explore.Runner`; each worker builds its own `objective` from the spec)."""
    spec = exploration.spec
    # Tune's per-trial JSON/CSV/TensorBoard loggers cost more than a cheap objective (about
    # 12 ms a trial here); our journal and Parquet files are the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ensure_ray()
    ExplorationMetrics(exploration)  # the hypervolume and trials on Ray's metrics from now on
    cpus_before = ray.available_resources().get("CPU", 0.0)
    rendezvous = Rendezvous.remote(_workers_expected(exploration, cpus_before))  # type: ignore[attr-defined]
    trainable = tune.with_resources(
        tune.with_parameters(EvaluateTrial, objective=spec.objective, rendezvous=rendezvous),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    runs = exploration.out_dir / "tune"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=TuneSearcher(exploration),
            num_samples=-1,
            max_concurrent_trials=spec.concurrency,
            time_budget_s=spec.budget.wall_time_s,
            reuse_actors=True,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"run-{len(list(runs.glob('run-*'))) if runs.exists() else 0}",
            storage_path=str(runs.resolve()),
            verbose=0,
            log_to_file=False,
            # the journal is the record; a Tune checkpoint per trial would only cost disk writes
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    # Tune's result grid looks for the per-trial logs we turned off; it only warns.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    try:
        tuner.fit()
    finally:
        ray.kill(rendezvous)
    _wait_for_cpus(cpus_before)


def _workers_expected(exploration: Exploration, cpus_free: float) -> int:
    """How many trial actors this run can have at once, for the rendezvous."""
    spec = exploration.spec
    trials_left = None if spec.budget.trials is None else spec.budget.trials - len(exploration.results)
    slots = cpus_free / spec.resources.cpu
    if spec.resources.gpu:
        slots = min(slots, ray.available_resources().get("GPU", 0.0) / spec.resources.gpu)
    return workers_expected(spec.concurrency, trials_left, slots)


def _wait_for_cpus(level: float, timeout_s: float = 10.0) -> None:
    """Return once the cluster has `level` CPUs free again (at most `timeout_s`).

    Tune's trial actors release their CPUs after `fit()` returns; a next exploration in
    the same driver that starts meanwhile sees fewer CPUs and runs at lower concurrency
    for its whole length (measured: 2x slower at concurrency 2 on 2 cores).
    """
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < level and time.monotonic() < deadline:
        time.sleep(0.05)
