"""Search-space parameters and the one converter to Optuna, Tune and pymoo.

Every searcher sees the same space; the unit-cube encoding here is how pymoo (and any
vector-based algorithm) works on mixed int/categorical/float spaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = bool | int | float | str


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatParam(_Param):
    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        return self


class IntParam(_Param):
    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"] = "categorical"
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices {self.choices!r} repeat a value; list each choice once")
        return self


class FixedParam(_Param):
    type: Literal["fixed"] = "fixed"
    value: Scalar


Param = Annotated[FloatParam | IntParam | CategoricalParam | FixedParam, Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low={low} must be below high={high}; swap them or use type: fixed")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got low={low}; raise low or set log: false")


class Space:
    """An ordered mapping of parameter names to validated parameters."""

    def __init__(self, params: Mapping[str, Param]) -> None:
        if not params:
            raise ValueError("the search space is empty; add at least one parameter under `space`")
        self.params: dict[str, Param] = dict(params)
        self.free = [n for n, p in self.params.items() if not isinstance(p, FixedParam)]
        if not self.free:
            raise ValueError("every parameter is fixed; make at least one float, int or categorical")

    @property
    def fixed(self) -> dict[str, Scalar]:
        return {n: p.value for n, p in self.params.items() if isinstance(p, FixedParam)}

    def optuna_distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for name in self.free:
            p = self.params[name]
            if isinstance(p, FloatParam):
                out[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                out[name] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log)
            elif isinstance(p, CategoricalParam):
                out[name] = optuna.distributions.CategoricalDistribution(p.choices)
        return out

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Decode a point of [0, 1]^d (d = free parameters) into parameters."""
        params: dict[str, Any] = {}
        for name, x in zip(self.free, np.clip(np.asarray(u, dtype=float), 0.0, 1.0), strict=True):
            p = self.params[name]
            if isinstance(p, CategoricalParam):
                params[name] = p.choices[min(int(x * len(p.choices)), len(p.choices) - 1)]
            elif isinstance(p, FloatParam | IntParam):
                value = _scale(float(x), p.low, p.high, p.log)
                if isinstance(p, IntParam):
                    value = int(min(max(round(value), p.low), p.high))
                params[name] = value
        return params

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encode parameters into [0, 1]^d; the inverse of `from_unit` up to rounding."""
        u = []
        for name in self.free:
            p, v = self.params[name], params[name]
            if isinstance(p, CategoricalParam):
                u.append((p.choices.index(v) + 0.5) / len(p.choices))
            elif isinstance(p, FloatParam | IntParam):
                if p.log:
                    u.append((math.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low)))
                else:
                    u.append((v - p.low) / (p.high - p.low))
        return np.asarray(u, dtype=float)

    def moves(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
        """How far each free parameter moved, in [0, 1] terms (a categorical change is 1)."""
        steps = np.abs(self.to_unit(after) - self.to_unit(before))
        for i, n in enumerate(self.free):
            if isinstance(self.params[n], CategoricalParam):
                steps[i] = float(before[n] != after[n])
        return {n: float(step) for n, step in zip(self.free, steps, strict=True)}

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether `params` holds every parameter, each within its bounds or choices."""
        for name, p in self.params.items():
            if name not in params:
                return False
            v = params[name]
            if isinstance(p, FixedParam | CategoricalParam):
                allowed = [p.value] if isinstance(p, FixedParam) else p.choices
                if v not in allowed:
                    return False
            elif isinstance(p, IntParam | FloatParam) and not _in_range(p, v):
                return False
        return True


def _in_range(p: IntParam | FloatParam, v: Any) -> bool:
    return p.low <= v <= p.high and (isinstance(p, FloatParam) or int(v) == v)


def _scale(x: float, low: float, high: float, log: bool) -> float:
    """x in [0, 1] onto [low, high]; clipped, since exp(log(high)) may round just past high."""
    if log:
        value = float(math.exp(math.log(low) + x * (math.log(high) - math.log(low))))
    else:
        value = low + x * (high - low)
    return min(max(value, low), high)
