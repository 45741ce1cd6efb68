"""The user level: an exact GP on one user's residuals from the context model, in one context.

See docs/online-model.md, 'User level'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg.lapack import dpotrf, dtrtri

from engine.online.priors import Priors

__all__ = ["UserGP", "UserHistory", "UserKernel", "lifted"]


@dataclass
class UserHistory:
    """A user's observations in one context: unit points, arms, rewards (compact)."""

    x: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    arms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def add(self, x: np.ndarray, arm: int, reward: float) -> None:
        xs = self.x if len(self.rewards) else np.zeros((0, len(x)), dtype=np.float32)
        self.x = np.vstack([xs, x.astype(np.float32)])
        self.arms = np.append(self.arms, np.int16(arm))
        self.rewards = np.append(self.rewards, np.float32(reward))

    def __len__(self) -> int:
        return len(self.rewards)


def lifted(x: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows lifted to (left, right) so that left(a) @ right(b).T = -g |a - b|^2.

    All the squared distances of a kernel matrix in one matrix product (|a|^2 and |b|^2
    ride along as extra columns), with no n x m x dim array.
    """
    scaled_sq = -g * np.einsum("ij,ij->i", x, x)[:, None]
    ones = np.ones((len(x), 1))
    return np.concatenate([2 * g * x, scaled_sq, ones], 1), np.concatenate([x, ones, scaled_sq], 1)


class UserGP:
    """A user's GP on their residuals from the context model, factorised once per request.

    Kernel: an RBF shape shared between arms in part, plus an offset per arm. Covariances
    with the n conditioning points are whitened, w = k L^-T for K = L L^T, so at any point
    the mean shift is w (L^-1 r) and the variance the prior's minus |w|^2. Each arm's
    scale and offset are folded into L^-T, so w in every arm is one product of a point's
    RBF row.
    """

    def __init__(
        self,
        priors: Priors,
        arm_ids: np.ndarray,
        rbf: np.ndarray,
        arms: np.ndarray,
        residual: np.ndarray,
        noise: np.ndarray,
    ) -> None:
        """`rbf`: the RBF shape between the conditioning points, at `arms`; `arm_ids`: every
        arm's index, as a column."""
        same = arm_ids == arms  # arm x point
        amp2 = priors.user_amplitude**2
        scale, offset = np.where(same, amp2, amp2 * priors.arm_share), priors.arm_offset**2 * same
        k = rbf * scale[arms] + offset[arms]
        k.flat[:: len(k) + 1] += noise
        chol, info = dpotrf(k, lower=True, clean=True, overwrite_a=True)
        if info:
            raise np.linalg.LinAlgError(f"kernel matrix not positive definite (LAPACK info {info})")
        inv_chol_t = dtrtri(chol, lower=True, overwrite_c=True)[0].T
        n = len(arms)
        self.by_arm = (scale[:, :, None] * inv_chol_t).transpose(1, 0, 2).reshape(n, len(same) * n)
        self.offset = offset @ inv_chol_t
        self.alpha = residual @ inv_chol_t
        self.prior_var = amp2 + priors.arm_offset**2

    def whitened(self, rbf: np.ndarray) -> np.ndarray:
        """w of points with these RBF rows, in every arm: points x arms x n."""
        return (rbf @ self.by_arm).reshape(len(rbf), *self.offset.shape) + self.offset

    def moments(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean shift and std at points with whitened covariances w."""
        var = self.prior_var - np.einsum("ij,ij->i", w, w)
        return w @ self.alpha, np.sqrt(np.maximum(var, 1e-12))


class UserKernel:
    """The user level's prior: its RBF x arm kernel, recency-weighted rating noise, and
    pending points as fantasies; `posterior` conditions it on one user's residuals."""

    def __init__(self, priors: Priors, n_arms: int) -> None:
        self.priors = priors
        self.g = 0.5 / priors.lengthscale**2  # the RBF is exp(-g d^2)
        self.arm_ids = np.arange(n_arms)[:, None]

    def posterior(
        self,
        points: np.ndarray,
        point_arms: np.ndarray,
        n_queried: int,
        residual: np.ndarray,
        pending: Sequence[tuple[np.ndarray, int]],
        fixed_left: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean shift and std of the user's GP at the first `n_queried` of `points`, preceded
        by the fixed candidates' (their lifted rows `fixed_left`) when given.

        The rest of `points` are the user's rated ones, oldest first, with their
        `residual`s; `pending` (encoded) are added as fantasies.
        """
        points, point_arms, residual, noise = self._conditioning(points, point_arms, residual, pending)
        m = n_queried
        left, right = lifted(points, self.g)
        if fixed_left is not None:
            left = np.concatenate([fixed_left, left])
        rbf = np.exp(left @ right[m:].T)  # rows: fixed, queried, then the conditioning points
        n_cond = len(residual)
        gp = UserGP(self.priors, self.arm_ids, rbf[-n_cond:], point_arms[m:], residual, noise)
        w = gp.whitened(rbf[:-n_cond])  # points x arms x n_cond
        at_queried = w[len(w) - m :][np.arange(m), point_arms[:m]]
        if fixed_left is not None:
            at_queried = np.concatenate([w[: len(w) - m].reshape(-1, n_cond), at_queried])
        return gp.moments(at_queried)

    def covariance(
        self,
        x: np.ndarray,
        arms: np.ndarray,
        history: UserHistory,
        pending: Sequence[tuple[np.ndarray, int]],
    ) -> np.ndarray:
        """The user's posterior covariance between the points (x, arms): how much what they
        think of one tells of the others (ratings' values do not matter, only where they are)."""
        m = len(arms)
        points = np.concatenate([x, history.x.reshape(len(history), x.shape[1])])
        point_arms = np.concatenate([arms, history.arms])
        points, point_arms, residual, noise = self._conditioning(
            points, point_arms, np.zeros(len(history)), pending
        )
        left, right = lifted(points, self.g)
        rbf = np.exp(left @ right.T)
        same = arms[:, None] == arms[None]
        amp2 = self.priors.user_amplitude**2
        prior = (
            rbf[:m, :m] * np.where(same, amp2, amp2 * self.priors.arm_share)
            + self.priors.arm_offset**2 * same
        )
        if len(residual) == 0:
            return prior
        gp = UserGP(self.priors, self.arm_ids, rbf[m:, m:], point_arms[m:], residual, noise)
        w = gp.whitened(rbf[:m, m:])[np.arange(m), arms]
        return prior - w @ w.T

    def _conditioning(
        self,
        points: np.ndarray,
        point_arms: np.ndarray,
        residual: np.ndarray,
        pending: Sequence[tuple[np.ndarray, int]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The last len(residual) points are the rated ones, oldest first: with the pending
        ones appended as fantasies, the points, arms, residuals and noise variances."""
        priors, n = self.priors, len(residual)
        # recency: an older rating is a noisier one, its variance doubling every half_life ratings
        noise = priors.noise**2 * np.exp2(np.arange(n - 1, -1, -1) / priors.half_life)
        if pending:
            px, pa = zip(*pending, strict=True)
            points = np.concatenate([points, px])
            point_arms = np.concatenate([point_arms, pa])
            # constant liar: a pending point is assumed to disappoint, so the next pick for
            # this user moves elsewhere until its real rating arrives
            residual = np.concatenate([residual, np.full(len(pa), -priors.user_amplitude)])
            noise = np.concatenate([noise, np.full(len(pa), priors.noise**2)])
        return points, point_arms, residual, noise
