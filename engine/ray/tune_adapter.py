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
from engine.ray.actor_keeper import ActorKeeper
from engine.ray.metrics import ExplorationMetrics
from engine.ray.runtime import ensure_ray
from engine.spec import ObjectiveSpec

_log = logging.getLogger(__name__)
_RESULT_KEY = "frontier_result"
# an idle trial's config: the results recorded when it was handed out (engine.ray.actor_keeper)
_IDLE_KEY = "frontier_idle_after"
# how long an actor's first step waits for the others (actors took 5.6 s to start on an idle
# 2-core machine); past it the run goes on with the actors it has
RENDEZVOUS_TIMEOUT_S = 30.0
# an idle trial ends at the next result or after this, when the searcher is asked again
IDLE_TIMEOUT_S = 1.0
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
        self, config: dict[str, Any], objective: ObjectiveSpec | None = None, keeper: Any = None
    ) -> None:
        if objective is None:
            raise TypeError("EvaluateTrial needs its objective: wrap it with tune.with_parameters")
        self.objective = _objective(objective)
        self.keeper = keeper
        self.arrived = keeper is None

    def _arrive(self) -> None:
        """First step: wait for the other actors' first steps (engine.ray.actor_keeper).

        Not in `setup`: Tune may process this actor's first result before it notices that
        another actor has started, and cancel that one."""
        if not self.arrived:
            ray.get(self.keeper.arrive.remote(RENDEZVOUS_TIMEOUT_S))
            self.arrived = True

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        return True

    def step(self) -> dict[str, Any]:
        self._arrive()
        if _IDLE_KEY in self.config:
            ray.get(self.keeper.wait_for_result.remote(self.config[_IDLE_KEY], IDLE_TIMEOUT_S))
            return {"done": True}
        result = evaluate(self.objective, self.config)
        return {_RESULT_KEY: json.dumps(dataclasses.asdict(result), default=float), "done": True}


class TuneSearcher(Searcher):
    """Hands Tune the exploration's trials and tells it the results."""

    def __init__(self, exploration: Exploration, keeper: Any = None) -> None:
        super().__init__(metric=None, mode=None)
        self.exploration = exploration
        self.keeper = keeper
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
            if not self.exploration.budget_left():
                # Tune's protocol signals the end with the FINISHED string in place of a config
                return Searcher.FINISHED  # type: ignore[return-value]
            # the searcher waits for a running trial: an idle trial keeps this slot's actor
            return {_IDLE_KEY: len(self.exploration.results)} if self.keeper is not None else None
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
        if self.keeper is not None:
            self.keeper.result_recorded.remote(len(self.exploration.results))


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
    expected = _workers_expected(exploration, cpus_before)
    keeper = ActorKeeper.remote(expected)  # type: ignore[attr-defined]
    trainable = tune.with_resources(
        tune.with_parameters(EvaluateTrial, objective=spec.objective, keeper=keeper),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    runs = exploration.out_dir / "tune"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=TuneSearcher(exploration, keeper),
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
        _log.info("trial actors: %d expected, %d ran a trial", expected, ray.get(keeper.count.remote()))
    finally:
        ray.kill(keeper)
    _wait_for_cpus(cpus_before)


def _workers_expected(exploration: Exploration, cpus_free: float) -> int:
    """How many trial actors this run can have at once (the actors' rendezvous): the
    concurrency, capped by the trials left and the free CPU (and GPU) slots."""
    spec = exploration.spec
    n = min(spec.concurrency, int(cpus_free / spec.resources.cpu))
    if spec.resources.gpu:
        n = min(n, int(ray.available_resources().get("GPU", 0.0) / spec.resources.gpu))
    if spec.budget.trials is not None:
        n = min(n, spec.budget.trials - len(exploration.results))
    return max(n, 1)


def _wait_for_cpus(level: float, timeout_s: float = 10.0) -> None:
    """Return once the cluster has `level` CPUs free again (at most `timeout_s`).

    Tune's trial actors release their CPUs after `fit()` returns; a next exploration in
    the same driver that starts meanwhile sees fewer CPUs and runs at lower concurrency
    for its whole length (measured: 2x slower at concurrency 2 on 2 cores).
    """
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < level and time.monotonic() < deadline:
        time.sleep(0.05)
