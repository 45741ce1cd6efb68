"""Per-user, per-context preference learning that needs few ratings (no Ray here).

Our own model, because no maintained library does hierarchical warm starts for many
small per-user problems:

- a *population* model per context, Bayesian linear regression on random Fourier
  features of the parameters, whose prior mean is a global model over every context;
- a *user* model, an exact Gaussian process on that user's own ratings in that context
  whose prior mean is the context model plus the user's rating bias. A new user gets
  the context's (or global) optimum; as their ratings accumulate the GP takes over.

The continuous parameters are modelled jointly with the categorical arm (e.g. provider)
by a kernel that shares part of the signal between arms. Continuous settings are picked
by an upper confidence bound within each arm and the arm by Thompson sampling. Pending
suggestions enter the GP as pessimistic fantasies (a constant liar), so concurrent
requests of one user get different points. Older ratings count less (recency), and a repeated rating
of the same settings is one more noisy observation, never an overwrite.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import qmc

from engine.space import CategoricalParam, FloatParam, IntParam, Space

__all__ = ["OnlineModel", "PopulationModel", "Priors", "Rater", "UserHistory"]


@dataclass(frozen=True)
class Priors:
    """Model constants, in reward units (rewards live in [-1, 1])."""

    lengthscale: float = 0.2  # in the unit cube of the continuous parameters
    arm_share: float = 0.8  # how much of the shape is shared between arms
    arm_offset: float = 0.3  # prior std of a user's own offset for an arm (e.g. a provider)
    user_amplitude: float = 0.35  # how far a user's taste departs from the context's
    noise: float = 0.3  # rating noise
    population_noise: float = 0.45  # rating noise plus between-user spread
    weight_scale: float = 1.0  # prior std of the population model's weights
    bias_shrinkage: float = 3.0  # pseudo-ratings pulling a user's bias towards 0
    half_life: float = 50.0  # ratings after which an old one counts half
    features: int = 96
    candidates: int = 256


class _Encoding:
    """Parameters as (unit vector of continuous ones, arm index over categorical ones)."""

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


class _Features:
    """Random Fourier features of the RBF x arm kernel used everywhere here."""

    def __init__(self, dim: int, n_arms: int, priors: Priors, rng: np.random.Generator) -> None:
        self.omega = rng.normal(0.0, 1.0 / priors.lengthscale, size=(priors.features, max(dim, 1)))
        self.phase = rng.uniform(0.0, 2 * np.pi, size=priors.features)
        self.n_arms = n_arms
        self.share = priors.arm_share
        self.size = priors.features * (1 + n_arms) + n_arms

    def __call__(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        x = x.reshape(len(arms), -1)
        if x.shape[1] == 0:
            x = np.zeros((len(arms), 1))
        base = np.sqrt(2.0 / len(self.phase)) * np.cos(x @ self.omega.T + self.phase)
        per_arm = np.zeros((len(arms), self.n_arms, base.shape[1]))
        per_arm[np.arange(len(arms)), arms] = base
        shared = np.sqrt(self.share) * base
        # a constant per arm: one arm better everywhere is learnt from every rating of it
        offset = np.eye(self.n_arms)[arms]
        return np.hstack([shared, np.sqrt(1 - self.share) * per_arm.reshape(len(arms), -1), offset])


class PopulationModel:
    """Bayesian linear regression whose prior mean is a parent model's weights.

    Weights are refitted when the data has grown by a tenth (every point while small),
    and children with their parent: at moments fixed by the data alone, so replaying the
    same events gives the same model whatever requests came in between, and refits stay
    amortised O(1).
    """

    def __init__(self, size: int, priors: Priors, parent: PopulationModel | None = None) -> None:
        self.precision = np.zeros((size, size))
        self.target = np.zeros(size)
        self.count = 0
        self.priors = priors
        self.parent = parent
        self.children: list[PopulationModel] = []
        if parent is not None:
            parent.children.append(self)
        self._weights: np.ndarray | None = None

    def add(self, phi: np.ndarray, reward: float) -> None:
        self.precision += np.outer(phi, phi)
        self.target += phi * reward
        self.count += 1
        if _epoch(self.count) != _epoch(self.count - 1):
            self._refit()

    def _refit(self) -> None:
        prior = self.parent.weights() if self.parent else np.zeros(len(self.target))
        s2, t2 = self.priors.population_noise**2, self.priors.weight_scale**2
        a = self.precision / s2 + np.eye(len(self.target)) / t2
        self._weights = cho_solve(cho_factor(a), self.target / s2 + prior / t2)
        for child in self.children:  # their prior moved
            if child.count:
                child._refit()

    def weights(self) -> np.ndarray:
        """Posterior mean weights as of the last refit (the parent's before any data)."""
        if self._weights is not None:
            return self._weights
        return self.parent.weights() if self.parent else np.zeros(len(self.target))


def _epoch(count: int) -> int:
    return count if count <= 10 else 10 + int(np.log(count / 10) / np.log(1.1))


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
        return float(np.clip(np.sqrt(max(spread, 1e-12) / typical), 0.5, 2.0))


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


class OnlineModel:
    """One experiment's population models and the maths of suggesting for a user."""

    def __init__(self, space: Space, seed: int = 0, priors: Priors | None = None) -> None:
        self.priors = priors or Priors()
        self.encoding = _Encoding(space)
        rng = np.random.default_rng(seed)
        dim = len(self.encoding.continuous)
        self.features = _Features(dim, len(self.encoding.arms), self.priors, rng)
        self.global_model = PopulationModel(self.features.size, self.priors)
        self.contexts: dict[str, PopulationModel] = {}
        sobol = qmc.Sobol(max(dim, 1), seed=seed).random(self.priors.candidates)[:, :dim]
        n_arms = len(self.encoding.arms)
        self._cand_x = np.repeat(sobol, n_arms, axis=0)
        self._cand_arms = np.tile(np.arange(n_arms), len(sobol))
        self._cand_phi = self.features(self._cand_x, self._cand_arms)

    def context(self, name: str | None) -> PopulationModel:
        key = name or ""
        if key not in self.contexts:
            self.contexts[key] = PopulationModel(self.features.size, self.priors, self.global_model)
        return self.contexts[key]

    # -- learning ---------------------------------------------------------------------------

    def learn(self, rater: Rater, context: str | None, params: Mapping[str, Any], reward: float) -> None:
        """Teach the population one reward, on the rater's calibrated scale."""
        x, arm = self.encoding.encode(params)
        phi = self.features(x[None, :], np.array([arm]))[0]
        predicted = float(phi @ self.context(context).weights())
        calibrated = (reward - rater.bias(self.priors)) / rater.scale(self.priors)
        self.context(context).add(phi, calibrated)
        self.global_model.add(phi, calibrated)
        rater.add(reward - predicted)

    def observe(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        params: Mapping[str, Any],
        reward: float,
        own_reward: float | None = None,
    ) -> None:
        """One rating of this user: to the population, and to their own history.

        `own_reward`: the reward under the user's own preference weights, when they set
        some; the population learns every user on the experiment's weights.
        """
        self.learn(rater, context, params, reward)
        x, arm = self.encoding.encode(params)
        history.add(x, arm, reward if own_reward is None else own_reward)

    # -- predicting -------------------------------------------------------------------------

    def _prior_mean(
        self, context: str | None, x: np.ndarray, arms: np.ndarray, phi: np.ndarray | None = None
    ) -> np.ndarray:
        model = self.context(context)
        if phi is None:
            phi = self.features(np.asarray(x, dtype=float), arms)
        return np.asarray(phi @ model.weights())

    def _kernel(self, xa: np.ndarray, aa: np.ndarray, xb: np.ndarray, ab: np.ndarray) -> np.ndarray:
        d2 = ((xa[:, None, :] - xb[None, :, :]) ** 2).sum(-1) / self.priors.lengthscale**2
        same = aa[:, None] == ab[None, :]
        share = self.priors.arm_share
        shape = self.priors.user_amplitude**2 * np.exp(-0.5 * d2) * np.where(same, 1.0, share)
        return shape + self.priors.arm_offset**2 * same

    @property
    def prior_std(self) -> float:
        """A user's reward std at a point before any of their ratings."""
        return float(np.hypot(self.priors.user_amplitude, self.priors.arm_offset))

    def posterior(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        x: np.ndarray,
        arms: np.ndarray,
        pending: Sequence[Mapping[str, Any]] = (),
        phi: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the user's reward at (x, arms), pending points as fantasies.

        `phi`, the features of (x, arms), saves recomputing them for cached candidates.
        """
        prior = self._prior_mean(context, x, arms, phi)
        bias = rater.bias(self.priors)
        hx, ha, y = history.x.astype(float), history.arms.astype(int), history.rewards.astype(float)
        n = len(y)
        noise = self.priors.noise**2 * np.exp2((n - 1 - np.arange(n)) / self.priors.half_life)
        residual = y - self._prior_mean(context, hx, ha) - bias if n else np.zeros(0)
        if pending:
            px, pa = zip(*(self.encoding.encode(p) for p in pending), strict=True)
            hx = np.vstack([hx.reshape(n, -1), np.array(px)]) if n else np.array(px)
            ha = np.concatenate([ha, np.array(pa)])
            # constant liar: a pending point is assumed to disappoint, so the next pick for
            # this user moves elsewhere until its real rating arrives
            residual = np.concatenate([residual, np.full(len(pa), -self.priors.user_amplitude)])
            noise = np.concatenate([noise, np.full(len(pa), self.priors.noise**2)])
        amp2 = self.prior_std**2
        if not len(residual):
            return prior + bias, np.full(len(arms), np.sqrt(amp2))
        k = self._kernel(hx, ha, hx, ha) + np.diag(noise)
        ks = self._kernel(x, arms, hx, ha)
        factor = cho_factor(k)
        mean = prior + bias + ks @ cho_solve(factor, residual)
        var = amp2 - np.einsum("ij,ji->i", ks, cho_solve(factor, ks.T))
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def _candidates(
        self, history: UserHistory, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fixed quasi-random set plus points around the user's best-rated ones."""
        if not len(history) or not self.encoding.continuous:
            return self._cand_x, self._cand_arms, self._cand_phi
        top = np.argsort(history.rewards)[-3:]
        noise = rng.normal(0, 0.05, (len(top) * 16, history.x.shape[1]))
        local_x = np.clip(history.x[np.repeat(top, 16)] + noise, 0, 1)
        local_arms = history.arms[np.repeat(top, 16)].astype(int)
        return (
            np.vstack([self._cand_x, local_x]),
            np.concatenate([self._cand_arms, local_arms]),
            np.vstack([self._cand_phi, self.features(local_x, local_arms)]),
        )

    def suggest(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        rng: np.random.Generator,
        pending: Sequence[Mapping[str, Any]] = (),
        beta: float = 1.0,
    ) -> dict[str, Any]:
        """UCB within each arm, Thompson sampling between arms."""
        x, arms, phi = self._candidates(history, rng)
        mean, std = self.posterior(rater, history, context, x, arms, pending, phi)
        ucb = mean + beta * std
        best_draw, choice = -np.inf, 0
        for arm in range(len(self.encoding.arms)):
            idx = np.flatnonzero(arms == arm)
            i = idx[int(np.argmax(ucb[idx]))]
            draw = rng.normal(mean[i], std[i])
            if draw > best_draw:
                best_draw, choice = draw, i
        return self.encoding.decode(x[choice], int(arms[choice]))

    def recommend(
        self, rater: Rater, history: UserHistory, context: str | None
    ) -> tuple[dict[str, Any], float, float]:
        """The settings this user most likely likes best: params, expected reward, its std."""
        x, arms, phi = self._candidates(history, np.random.default_rng(0))
        mean, std = self.posterior(rater, history, context, x, arms, phi=phi)
        i = int(np.argmax(mean))
        return self.encoding.decode(x[i], int(arms[i])), float(mean[i]), float(std[i])
