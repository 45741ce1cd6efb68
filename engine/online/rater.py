"""Rater calibration: how one user rates against the population, shrunk towards the population.

See docs/online-model.md, 'Rewards and calibration'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.online.priors import Priors

__all__ = ["Rater"]


@dataclass
class Rater:
    """How one user rates against the population: running residual sums (all contexts).

    Bias and scale are shrunk towards the population's (0 and 1) by pseudo-ratings, so a
    user with two ratings is barely recalibrated and one with fifty mostly is.
    """

    total: float = 0.0
    squares: float = 0.0
    count: int = 0

    def add(self, residual: float) -> None:
        self.total += residual
        self.squares += residual * residual
        self.count += 1

    def bias(self, priors: Priors) -> float:
        return self.total / (self.count + priors.bias_shrinkage)

    def scale(self, priors: Priors) -> float:
        """Residual spread relative to the population's, in [0.5, 2]."""
        k, typical = priors.bias_shrinkage, priors.population_noise**2
        spread = (self.squares - self.count * self.bias(priors) ** 2 + k * typical) / (self.count + k)
        return min(max(math.sqrt(max(spread, 1e-12) / typical), 0.5), 2.0)

    def calibrated(self, reward: float, priors: Priors) -> float:
        """A reward of this rater's on the population's scale."""
        return (reward - self.bias(priors)) / self.scale(priors)
