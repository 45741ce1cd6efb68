"""`auto`: a portfolio of Optuna's samplers on one shared history, switched by budget.

No single searcher wins at every budget (benchmarks/results/pareto.md): Optuna's GP is far
ahead at 100 evaluations and too slow beyond a few hundred, NSGA-II needs a population
before it pays, TPE sits between. `auto` runs, by trials told so far:

1. `startup` trials of scrambled Sobol points (Optuna's QMCSampler): space-filling;
2. Optuna's GPSampler until `gp_until` trials are told, fitted on every trial so far;
3. Optuna's NSGAIISampler after, whose first parents are the best `population_size` of
   everything told before (each earlier trial enters its study as generation 0).

Each phase is an Optuna study whose sampler is that phase's, holding every trial told so
far (failed and infeasible ones included), so no phase starts cold. A trial asked in one
phase and told in the next is told to its own study, then added to the current one. The
phase depends only on how many trials were told, never on time, so a replayed journal
(resume) makes the same choices; pending trials are Optuna's own running trials.
The algorithms are Optuna's, untouched: only the schedule is ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.offline.searchers.base import Searcher, Trial
from engine.offline.searchers.optuna_searchers import tell_optuna
from engine.spec import MetricSpec, Space

__all__ = ["AUTO_DEFAULTS", "AutoSearcher"]

AUTO_DEFAULTS: dict[str, int] = {"startup": 10, "gp_until": 100, "population_size": 20}
GENERATION_KEY = "NSGAIISampler:generation"  # where Optuna's NSGA-II keeps a trial's generation


class AutoSearcher(Searcher):
    name = "auto"

    def __init__(
        self,
        space: Space,
        metrics: Sequence[MetricSpec],
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, metrics, seed)
        opts = {**AUTO_DEFAULTS, **(options or {})}
        unknown = sorted(set(opts) - set(AUTO_DEFAULTS))
        if unknown:
            raise ValueError(
                f"searcher.options for 'auto': unknown {unknown}; known: {sorted(AUTO_DEFAULTS)}"
            )
        lowest = {"startup": 0, "gp_until": 0, "population_size": 2}
        bad = {
            k: v for k, v in opts.items() if isinstance(v, bool) or not isinstance(v, int) or v < lowest[k]
        }
        if bad:
            raise ValueError(f"searcher.options for 'auto': {bad} must be whole numbers of at least {lowest}")
        self.startup, self.gp_until = opts["startup"], opts["gp_until"]
        self.population_size = opts["population_size"]
        self._dists = space.optuna_distributions()
        self._directions = [
            optuna.study.StudyDirection.MINIMIZE
            if m.direction == "min"
            else optuna.study.StudyDirection.MAXIMIZE
            for m in self.metrics
        ]
        self._told: list[FrozenTrial] = []  # the shared history, in the order told
        self._phase = ""
        self._study = self._new_study(self._phase_now())
        self._running: dict[str, tuple[optuna.Study, optuna.trial.Trial]] = {}
        self._counter = 0

    def _phase_now(self) -> str:
        told = len(self._told)
        return "qmc" if told < self.startup else "gp" if told < self.gp_until else "nsga2"

    def _sampler(self, phase: str) -> optuna.samplers.BaseSampler:
        seed = self.seed + {"qmc": 0, "gp": 1, "nsga2": 2}[phase]  # each phase its own stream
        if phase == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_asynchronous_seeding=False)
        if phase == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=0)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)

    def _new_study(self, phase: str) -> optuna.Study:
        """The phase's study, holding every trial told so far."""
        self._phase = phase
        study = optuna.create_study(sampler=self._sampler(phase), directions=self._directions)
        for past in self._told:
            attrs = {k: v for k, v in past.system_attrs.items() if not k.endswith(":generation")}
            if phase == "nsga2":
                attrs[GENERATION_KEY] = 0  # the first parents are chosen from all of them
            study.add_trial(_copy(past, attrs))
        return study

    def ask(self, n: int = 1) -> list[Trial]:
        out = []
        for _ in range(n):
            if self._phase_now() != self._phase:
                self._study = self._new_study(self._phase_now())
            trial = self._study.ask(self._dists)
            trial_id = str(self._counter)
            self._counter += 1
            self._running[trial_id] = (self._study, trial)
            out.append(Trial(trial_id, {**self.space.fixed, **trial.params}))
        return out

    def tell(self, trial_id: str, values: Mapping[str, float] | None) -> None:
        found = self._running.pop(trial_id, None)
        if found is None:
            raise KeyError(f"trial {trial_id!r} is not pending in this searcher")
        study, trial = found
        ordered = None if values is None else self._check_values(trial_id, values)
        tell_optuna(study, trial, self.metrics, values, ordered)
        frozen = study._storage.get_trial(trial._trial_id)  # as told, constraints included
        self._told.append(frozen)
        if study is not self._study:  # asked in an earlier phase: the current one learns it too
            attrs = {k: v for k, v in frozen.system_attrs.items() if not k.endswith(":generation")}
            self._study.add_trial(_copy(frozen, attrs))

    def pending(self) -> list[Trial]:
        return [Trial(tid, {**self.space.fixed, **t.params}) for tid, (_, t) in self._running.items()]

    @property
    def phase(self) -> str:
        """The sampler the next trial comes from: qmc, gp or nsga2."""
        return self._phase_now()


def _copy(trial: FrozenTrial, system_attrs: dict[str, Any]) -> FrozenTrial:
    return optuna.trial.create_trial(
        state=trial.state,
        params=trial.params,
        distributions=trial.distributions,
        values=trial.values if trial.state == TrialState.COMPLETE else None,
        system_attrs=system_attrs,
    )
