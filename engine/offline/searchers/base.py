"""The one ask/tell protocol every searcher family implements.

A trial id is the only key. A searcher never runs objectives: it proposes parameters
and learns from what it is told, so it works the same in a loop, in Ray Tune or online.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.spec import MetricSpec, Space


@dataclass(frozen=True)
class Trial:
    trial_id: str
    params: dict[str, Any] = field(hash=False)


class Searcher(ABC):
    """Ask for trials, tell their metrics (or their failure).

    `ask(n)` may return fewer than `n` trials when the algorithm must first hear back
    (a generation-based searcher waiting for its population).
    """

    name: str

    def __init__(self, space: Space, metrics: Sequence[MetricSpec], seed: int = 0) -> None:
        self.space = space
        self.metrics = list(metrics)
        self.seed = seed

    @abstractmethod
    def ask(self, n: int = 1) -> list[Trial]: ...

    @abstractmethod
    def tell(self, trial_id: str, values: Mapping[str, float] | None) -> None:
        """Report a finished trial; `values=None` means it failed.

        Constraint violations are read from the metrics' constraints: an infeasible
        trial is told with its values, and the searcher prefers feasible ones.
        """

    @abstractmethod
    def pending(self) -> list[Trial]:
        """Trials asked and not yet told (re-run them after a restore)."""

    def state(self) -> bytes:
        """Everything needed to continue later, RNG included."""
        return pickle.dumps(self)

    @staticmethod
    def restore(blob: bytes) -> Searcher:
        searcher = pickle.loads(blob)
        if not isinstance(searcher, Searcher):
            raise ValueError("blob does not hold a searcher state")
        return searcher

    def _check_values(self, trial_id: str, values: Mapping[str, float]) -> list[float]:
        missing = [m.name for m in self.metrics if m.name not in values]
        if missing:
            raise ValueError(f"trial {trial_id}: values lack metrics {missing}; report them all")
        return [float(values[m.name]) for m in self.metrics]

    def _violations(self, values: Mapping[str, float]) -> list[float]:
        return [m.constraint.violation(values[m.name]) for m in self.metrics if m.constraint]
