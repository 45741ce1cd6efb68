"""Parameters as the online model sees them: a point in the unit cube and an arm.

See docs/online-model.md, 'Inputs: points and arms'.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.spec import CategoricalParam, FloatParam, IntParam, Space

__all__ = ["Encoding"]


class Encoding:
    """Parameters as (unit vector of continuous ones, arm index over categorical ones).

    An arm is one combination of every categorical parameter's choices.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        self.continuous = [n for n in space.free if isinstance(space.params[n], FloatParam | IntParam)]
        self.categorical = [n for n in space.free if isinstance(space.params[n], CategoricalParam)]
        choices = [space.params[n].choices for n in self.categorical]  # type: ignore[union-attr]
        self.arms: list[tuple[Any, ...]] = list(itertools.product(*choices)) or [()]
        self._unit_space = Space({n: space.params[n] for n in self.continuous}) if self.continuous else None

    def encode(self, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        x = self._unit_space.to_unit(params) if self._unit_space else np.zeros(0)
        arm = tuple(params[n] for n in self.categorical)
        return np.clip(x, 0.0, 1.0), self.arms.index(arm)

    def decode(self, x: np.ndarray, arm: int) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.space.fixed)
        if self._unit_space:
            params.update(self._unit_space.from_unit(x))
        params.update(zip(self.categorical, self.arms[arm], strict=True))
        return params
