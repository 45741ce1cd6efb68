"""Optuna's samplers (TPE, NSGA-II, GP, random, QMC) behind our ask/tell protocol.

We wrap an in-memory Optuna study and its ask-and-tell interface; the algorithms are
Optuna's, untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.offline.searchers.base import Searcher, Trial
from engine.spec import MetricSpec, Space

__all__ = ["OptunaSearcher", "tell_optuna"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def optuna_sampler(name: str, seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """The Optuna sampler behind searcher `name`, configured as Frontier runs it (`auto` runs
    these too). Optuna reads constraints from `Trial.set_constraint`; samplers need no hook."""
    opts = dict(options)
    if name == "tpe":
        opts.setdefault("multivariate", True)
        opts.setdefault("constant_liar", True)
        return optuna.samplers.TPESampler(seed=seed, **opts)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **opts)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **opts)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed, **opts)
    if name == "qmc":
        opts.setdefault("scramble", True)
        opts.setdefault("warn_asynchronous_seeding", False)
        return optuna.samplers.QMCSampler(seed=seed, **opts)
    raise ValueError(f"unknown Optuna searcher {name!r}")


def tell_optuna(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    metrics: Sequence[MetricSpec],
    values: Mapping[str, float] | None,
    ordered: list[float] | None,
) -> None:
    """Tell Optuna a finished trial: failed (`values` None), or its values in the study's
    order with each constraint's violation, which Optuna's samplers read."""
    if values is None or ordered is None:
        study.tell(trial, state=TrialState.FAIL)
        return
    for m in metrics:
        if m.constraint:
            trial.set_constraint(m.name, m.constraint.violation(values[m.name]))
    study.tell(trial, ordered)


class OptunaSearcher(Searcher):
    def __init__(
        self,
        name: str,
        space: Space,
        metrics: Sequence[MetricSpec],
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, metrics, seed)
        self.name = name
        try:
            sampler = optuna_sampler(name, seed, options or {})
        except TypeError as e:
            raise ValueError(f"searcher.options for {name!r}: {e}") from e
        self._study = optuna.create_study(
            sampler=sampler,
            directions=["minimize" if m.direction == "min" else "maximize" for m in self.metrics],
        )
        self._dists = space.optuna_distributions()
        self._running: dict[str, optuna.trial.Trial] = {}

    def ask(self, n: int = 1) -> list[Trial]:
        out = []
        for _ in range(n):
            trial = self._study.ask(self._dists)
            trial_id = str(trial.number)
            self._running[trial_id] = trial
            out.append(Trial(trial_id, {**self.space.fixed, **trial.params}))
        return out

    def tell(self, trial_id: str, values: Mapping[str, float] | None) -> None:
        trial = self._running.pop(trial_id, None)
        if trial is None:
            raise KeyError(f"trial {trial_id!r} is not pending in this searcher")
        ordered = None if values is None else self._check_values(trial_id, values)
        tell_optuna(self._study, trial, self.metrics, values, ordered)

    def pending(self) -> list[Trial]:
        return [Trial(tid, {**self.space.fixed, **t.params}) for tid, t in self._running.items()]
