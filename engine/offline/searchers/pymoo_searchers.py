"""pymoo's NSGA-II through pymoo's own ask/tell, on the space's unit-cube encoding.

pymoo evaluates whole generations: `ask` hands out the current population one trial at
a time and returns nothing more until every member has been told. Trials it did not ask
(`learn`) join its population too: before its first generation they are the population its
first parents come from, later they join the next generation told.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from engine.offline.searchers.base import Searcher, Trial
from engine.spec import MetricSpec, Space

# A failed trial is the worst feasible-looking point pymoo can rank: finite, far away,
# and with a large constraint violation so every real trial dominates it.
_FAILED_F = 1e12
_FAILED_G = 1e9


class PymooNSGA2Searcher(Searcher):
    name = "pymoo-nsga2"

    def __init__(
        self,
        space: Space,
        metrics: Sequence[MetricSpec],
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, metrics, seed)
        opts = dict(options or {})
        opts.setdefault("pop_size", 20)
        unknown = set(opts) - set(inspect.signature(NSGA2.__init__).parameters)
        if unknown:
            raise ValueError(
                f"searcher.options for 'pymoo-nsga2': unknown {sorted(unknown)}; "
                "see pymoo.algorithms.moo.nsga2.NSGA2 for the accepted ones"
            )
        self._algorithm = NSGA2(**opts)
        self._problem = Problem(
            n_var=len(space.free), n_obj=len(self.metrics), n_ieq_constr=1, xl=0.0, xu=1.0
        )
        self._algorithm.setup(self._problem, termination=NoTermination(), seed=seed, verbose=False)
        self._population: Population | None = None
        self._ids: list[str] = []
        self._results: dict[str, tuple[np.ndarray, float]] = {}
        self._learnt: list[tuple[np.ndarray, np.ndarray, float]] = []  # (x, f, g) not asked here
        self._next = 0  # index of the next population member to hand out
        self._counter = 0

    def learn(self, params: Mapping[str, Any], values: Mapping[str, float] | None) -> None:
        """An evaluated trial this searcher did not ask (a portfolio's shared history)."""
        self._learnt.append((self.space.to_unit(params), *self._objectives("learnt", values)))

    def ask(self, n: int = 1) -> list[Trial]:
        if self._population is None and not self._algorithm.is_initialized and self._learnt:
            self._algorithm.tell(infills=self._evaluated(Population.new(), {}))
        if self._population is None:
            self._population = self._algorithm.ask()
            self._ids = [str(self._counter + i) for i in range(len(self._population))]
            self._counter += len(self._population)
            self._next = 0
        out: list[Trial] = []
        while len(out) < n and self._next < len(self._population):
            out.append(self._trial(self._next))
            self._next += 1
        return out

    def _trial(self, i: int) -> Trial:
        assert self._population is not None
        x = self._population[i].X
        return Trial(self._ids[i], {**self.space.fixed, **self.space.from_unit(x)})

    def tell(self, trial_id: str, values: Mapping[str, float] | None) -> None:
        if trial_id not in self._ids[: self._next] or trial_id in self._results:
            raise KeyError(f"trial {trial_id!r} is not pending in this searcher")
        self._results[trial_id] = self._objectives(trial_id, values)
        if len(self._results) == len(self._ids):
            assert self._population is not None
            self._algorithm.tell(infills=self._evaluated(self._population, self._results))
            self._population, self._ids, self._results = None, [], {}

    def _objectives(self, trial_id: str, values: Mapping[str, float] | None) -> tuple[np.ndarray, float]:
        """pymoo's F (minimised) and G (total violation) of a result; a failure ranks last."""
        if values is None:
            return np.full(len(self.metrics), _FAILED_F), _FAILED_G
        ordered = self._check_values(trial_id, values)
        f = np.array([v * m.sign() for v, m in zip(ordered, self.metrics, strict=True)])
        return f, float(sum(self._violations(values)))

    def _evaluated(self, asked: Population, results: Mapping[str, tuple[np.ndarray, float]]) -> Population:
        """The asked individuals with their results, and every learnt trial not yet told."""
        learnt = Population.new(X=np.array([x for x, _, _ in self._learnt]).reshape(-1, self._problem.n_var))
        population = Population.merge(asked, learnt)
        rows = [results[i] for i in self._ids[: len(asked)]] + [(f, g) for _, f, g in self._learnt]
        F = np.vstack([f for f, _ in rows])
        G = np.array([[g] for _, g in rows])
        Evaluator().eval(StaticProblem(self._problem, F=F, G=G), population)
        self._learnt = []
        return population

    def pending(self) -> list[Trial]:
        return [self._trial(i) for i in range(self._next) if self._ids[i] not in self._results]
