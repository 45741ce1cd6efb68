"""Where the model looks and what it picks: candidate points and the choice rule.

See docs/online-model.md, 'What explores'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import qmc

from engine.online.features import RandomFourierFeatures
from engine.online.user_gp import UserHistory, lifted

__all__ = ["Candidates"]

LOCAL_TOP = 3  # the user's best-rated points refined around
LOCAL_PER_POINT = 16  # local points per best-rated one
LOCAL_STD = 0.05  # their spread, in the unit cube


class Candidates:
    """A fixed quasi-random set (every Sobol point in every arm, arms innermost), plus
    points around the user's best-rated ones; and the choice among them.

    The fixed set's cosines and lifted rows are computed once, so a request pays only for
    its user's own points.
    """

    def __init__(
        self, dim: int, n_arms: int, count: int, seed: int, features: RandomFourierFeatures, g: float
    ) -> None:
        sobol = qmc.Sobol(max(dim, 1), seed=seed).random(count)[:, :dim]
        self.dim = dim
        self.x = np.repeat(sobol, n_arms, axis=0)
        self.arms = np.tile(np.arange(n_arms), len(sobol))
        self.arm_ids = np.arange(n_arms)[:, None]
        self.cosines = features.cosines(sobol)
        self.left = lifted(sobol, g)[0]

    def fixed_mean(self, per_arm: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """A mean folded per arm (`RandomFourierFeatures.per_arm`) at the fixed set."""
        return (self.cosines @ per_arm + offsets).ravel()

    def local(self, history: UserHistory, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian perturbations of the user's best-rated points, in their arms (none
        before a rating or without continuous parameters)."""
        if not len(history) or not self.dim:
            return self.x[:0], self.arms[:0]
        top = np.repeat(np.argsort(history.rewards)[-LOCAL_TOP:], LOCAL_PER_POINT)
        noise = rng.normal(0, LOCAL_STD, (len(top), history.x.shape[1]))
        return np.clip(history.x[top] + noise, 0, 1), history.arms[top]

    def arm_best(
        self, arms: np.ndarray, mean: np.ndarray, std: np.ndarray, beta: float, excluded: Sequence[int] = ()
    ) -> np.ndarray:
        """UCB within each arm: each arm's best candidate, never one of `excluded` (an arm
        with every candidate excluded takes no part)."""
        ucb = mean + beta * std
        ucb[list(excluded)] = -np.inf
        best = np.where(arms == self.arm_ids, ucb, -np.inf).argmax(1)  # each arm's first best
        return best[np.isfinite(ucb[best])] if excluded else best

    @staticmethod
    def thompson(mean: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> int:
        """Thompson sampling between arms: one joint draw of the user's rewards at each arm's
        best candidate (correlated as the user's posterior says: arms share most of a
        taste's shape), the position of the highest."""
        eigvals, eigvecs = np.linalg.eigh(cov)
        draws = mean + eigvecs @ (np.sqrt(np.clip(eigvals, 0.0, None)) * rng.standard_normal(len(mean)))
        return int(np.argmax(draws))
