"""Random Fourier features of the kernel the population levels share, and a mean through them.

See docs/online-model.md, 'Global and context levels'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.online.priors import Priors

__all__ = ["ContextMean", "RandomFourierFeatures"]


class RandomFourierFeatures:
    """Random Fourier features of the RBF x arm kernel used everywhere here.

    A point's features: its cosines scaled by sqrt(share), again by sqrt(1 - share) in its
    arm's block, and a constant for its arm. Means at many points skip the full vectors:
    `per_arm` folds a weight vector onto the bare cosines, once per arm.
    """

    def __init__(self, dim: int, n_arms: int, priors: Priors, rng: np.random.Generator) -> None:
        omega = rng.normal(0.0, 1.0 / priors.lengthscale, size=(priors.features, max(dim, 1)))
        self.omega_t = np.ascontiguousarray(omega.T[:dim])  # no rows without continuous params
        self.phase = rng.uniform(0.0, 2 * np.pi, size=priors.features)
        self.n_arms = n_arms
        self.scale = np.sqrt(2.0 / priors.features)
        self.shared, self.own = np.sqrt(priors.arm_share), np.sqrt(1 - priors.arm_share)
        self.size = priors.features * (1 + n_arms) + n_arms

    def cosines(self, x: np.ndarray) -> np.ndarray:
        """cos(omega x + phase) at points x (n x dim)."""
        return np.cos(x @ self.omega_t + self.phase)

    def __call__(self, x: np.ndarray, arm: int) -> np.ndarray:
        """The features of one point."""
        base = self.scale * self.cosines(x)
        f = len(base)
        phi = np.zeros(self.size)
        phi[:f] = self.shared * base
        phi[f * (1 + arm) : f * (2 + arm)] = self.own * base
        # a constant per arm: one arm better everywhere is learnt from every rating of it
        phi[f * (1 + self.n_arms) + arm] = 1.0
        return phi

    def per_arm(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`weights` as (weights of the cosines, features x arms; the arms' constants)."""
        f = len(self.phase)
        own = weights[f : f * (1 + self.n_arms)].reshape(self.n_arms, f)
        per_arm = self.scale * (self.shared * weights[:f] + self.own * own)
        return np.ascontiguousarray(per_arm.T), weights[f * (1 + self.n_arms) :]


@dataclass(frozen=True)
class ContextMean:
    """A context model's mean: its weights folded per arm, and its value at the fixed candidates."""

    weights: np.ndarray  # the PopulationModel.weights() array these were derived from
    per_arm: np.ndarray
    offsets: np.ndarray
    candidates: np.ndarray

    def mean(self, features: RandomFourierFeatures, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """The mean at points x, each in its arm."""
        by_arm = features.cosines(x) @ self.per_arm
        return by_arm[np.arange(len(arms)), arms] + self.offsets[arms]
