"""Benchmark problems with known Pareto fronts, to measure searchers and engine overhead.

ZDT and DTLZ are evaluated by pymoo's reference implementations (not re-derived here), so
the fronts and hypervolumes Frontier reports can be checked against published values.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pymoo.problems import get_problem

N_VAR = 6
_UNIT_SPACE: dict[str, dict[str, Any]] = {
    f"x{i}": {"type": "float", "low": 0.0, "high": 1.0, "log": False} for i in range(N_VAR)
}


def _reject_options(cls_name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"unknown option(s) {sorted(options)} for {cls_name}; it takes none")


def _unit_vector(params: dict[str, Any], names: list[str], default: float) -> np.ndarray:
    """Read x0..xn from `params` (missing -> `default`), checking they lie in [0, 1]."""
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {names}")
    values = []
    for name in names:
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"parameter {name}={value!r} must be a number in [0, 1]")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"parameter {name}={value!r} must be in [0, 1]")
        values.append(float(value))
    return np.asarray(values, dtype=float)


class _PymooProblem:
    """Shared plumbing: map x0..x5 to a pymoo problem and its objectives to f1..fm."""

    _problem_name: ClassVar[str]
    _n_obj: ClassVar[int]
    metrics: ClassVar[dict[str, tuple[str, str]]]
    space: ClassVar[dict[str, dict[str, Any]]] = _UNIT_SPACE
    reference_point: ClassVar[tuple[float, ...]]
    # Missing variables default to the middle of [0, 1], a neutral point off the front.
    default_value: ClassVar[float] = 0.5

    def __init__(self, **options: Any) -> None:
        _reject_options(type(self).__name__, options)
        kwargs: dict[str, Any] = {"n_var": N_VAR}
        if not self._problem_name.startswith("zdt"):
            kwargs["n_obj"] = self._n_obj
        self.problem = get_problem(self._problem_name, **kwargs)

    def evaluate(self, params: dict[str, Any]) -> dict[str, float]:
        u = _unit_vector(params, list(self.space), self.default_value)
        x = self.problem.xl + u * (self.problem.xu - self.problem.xl)  # WFG's bounds are [0, 2i]
        f = np.asarray(self.problem.evaluate(x[None, :], return_values_of=["F"]))[0]
        return {f"f{i + 1}": float(v) for i, v in enumerate(f)}

    def true_front(self, n_points: int = 200) -> np.ndarray:
        """About `n_points` points of the analytic Pareto front, shape (n, n_obj)."""
        if n_points < 2:
            raise ValueError(f"n_points={n_points!r} must be at least 2")
        # use_cache=False: pymoo caches the first front regardless of its arguments.
        return np.asarray(self.problem.pareto_front(n_pareto_points=n_points, use_cache=False))


class _ZDT(_PymooProblem):
    """The ZDT family: two objectives, both minimised, reference point (1.1, 1.1)."""

    _n_obj = 2
    metrics: ClassVar[dict[str, tuple[str, str]]] = {"f1": ("min", ""), "f2": ("min", "")}
    reference_point: ClassVar[tuple[float, ...]] = (1.1, 1.1)


class ZDT1(_ZDT):
    """Convex two-objective front f2 = 1 - sqrt(f1)."""

    _problem_name = "zdt1"


class ZDT2(_ZDT):
    """Concave two-objective front f2 = 1 - f1^2."""

    _problem_name = "zdt2"


class ZDT3(_ZDT):
    """Disconnected front in five pieces; f2 goes negative (down to about -0.77)."""

    _problem_name = "zdt3"

    def true_front(self, n_points: int = 200) -> np.ndarray:
        if n_points < 5:
            raise ValueError(f"n_points={n_points!r} must be at least 5 (one per front piece)")
        # pymoo spreads n_points over the five pieces (rounding down per piece).
        return np.asarray(self.problem.pareto_front(n_points=n_points, use_cache=False))


class _ThreeObjectives(_PymooProblem):
    """Three minimised objectives; fronts sampled on a Das-Dennis lattice."""

    _n_obj = 3
    metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "f1": ("min", ""),
        "f2": ("min", ""),
        "f3": ("min", ""),
    }

    def true_front(self, n_points: int = 200) -> np.ndarray:
        """At most `n_points` Das-Dennis points (the largest lattice that fits; 190 for 200)."""
        from pymoo.util.ref_dirs import get_reference_directions

        if n_points < 3:
            raise ValueError(f"n_points={n_points!r} must be at least 3")
        partitions = 1
        while math.comb(partitions + 1 + 2, 2) <= n_points:
            partitions += 1
        ref_dirs = get_reference_directions("das-dennis", 3, n_partitions=partitions)
        return np.asarray(self.problem.pareto_front(ref_dirs, use_cache=False))


class DTLZ2(_ThreeObjectives):
    """Three objectives on the unit sphere octant: f1^2 + f2^2 + f3^2 = 1."""

    _problem_name = "dtlz2"
    reference_point: ClassVar[tuple[float, ...]] = (1.1, 1.1, 1.1)


class DTLZ4(_ThreeObjectives):
    """DTLZ2's sphere, reached through x^100: most points crowd onto the front's edges, so a
    searcher must keep diversity."""

    _problem_name = "dtlz4"
    reference_point: ClassVar[tuple[float, ...]] = (1.1, 1.1, 1.1)


class WFG2(_ThreeObjectives):
    """A convex, disconnected front scaled to f_m in [0, 2m] (variables in [0, 2i], read
    from the unit cube)."""

    _problem_name = "wfg2"
    reference_point: ClassVar[tuple[float, ...]] = (2.2, 4.4, 6.6)


class Trivial:
    """Microsecond-cheap problem (f1 = x, f2 = (1 - x)^2) for measuring engine overhead.

    Every x in [0, 1] is Pareto-optimal, so the whole sampled set forms the front.
    """

    metrics: ClassVar[dict[str, tuple[str, str]]] = {"f1": ("min", ""), "f2": ("min", "")}
    space: ClassVar[dict[str, dict[str, Any]]] = {
        "x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}
    }
    reference_point: ClassVar[tuple[float, ...]] = (1.1, 1.1)

    def __init__(self, **options: Any) -> None:
        _reject_options("Trivial", options)

    def evaluate(self, params: dict[str, Any]) -> dict[str, float]:
        x = float(_unit_vector(params, ["x"], 0.5)[0])
        return {"f1": x, "f2": (1.0 - x) ** 2}

    def true_front(self, n_points: int = 200) -> np.ndarray:
        x = np.linspace(0.0, 1.0, n_points)
        return np.column_stack([x, (1.0 - x) ** 2])
