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

Every request pays for its user's own points only: the context model's mean at the fixed
candidates is cached until that model's next refit, and ratings reach the population
models in batches.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dpotrf, dtrtri
from scipy.stats import qmc

from engine.spec.space import CategoricalParam, FloatParam, IntParam, Space

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


_FOLD_ROWS = 32  # ratings buffered before they enter a population model's precision matrix


class PopulationModel:
    """Bayesian linear regression whose prior mean is a parent model's weights.

    Weights are refitted when the data has grown by a tenth (every point while small),
    and children with their parent: at moments fixed by the data alone, so replaying the
    same events gives the same model whatever requests came in between, and refits stay
    amortised O(1). New ratings wait in a small buffer and enter the precision matrix
    _FOLD_ROWS at a time, and before each refit (again at counts fixed by the data): one
    rank-k update instead of a pass over the whole matrix per rating.

    When the parent refits, a child folds its buffer at once, as its refit would, but
    solves only when its weights are next read or before its next fold, whichever is
    first: the solve it then does is the one it would have done at once, on the same
    numbers, so nothing changes but the cost. A parent's refit no longer costs one
    factorisation per context, only per context in use.
    """

    def __init__(self, size: int, priors: Priors, parent: PopulationModel | None = None) -> None:
        self.precision = np.zeros((size, size), order="F")  # upper triangle only (BLAS syrk)
        self.target = np.zeros(size)
        self.count = 0
        self.priors = priors
        self.parent = parent
        self.children: list[PopulationModel] = []
        if parent is not None:
            parent.children.append(self)
        self._rows: np.ndarray | None = None  # buffered features, allocated at the first add
        self._rewards = np.zeros(_FOLD_ROWS)
        self._buffered = 0
        # one array per refit, so what is derived from it can be cached on its identity
        self._weights = np.zeros(size) if parent is None else None
        self._stale = False  # the parent refitted since this model's last solve

    def add(self, phi: np.ndarray, reward: float) -> None:
        if self._rows is None:
            self._rows = np.empty((_FOLD_ROWS, len(self.target)))
        self._rows[self._buffered] = phi
        self._rewards[self._buffered] = reward
        self._buffered += 1
        self.count += 1
        if _epoch(self.count) != _epoch(self.count - 1):
            self._refit()
        elif self._buffered == _FOLD_ROWS:
            if self._stale:  # the solve owed since the parent's refit, on the data it saw
                self._solve()
            self._fold()

    def _fold(self) -> None:
        if self._rows is not None and self._buffered:
            rows = self._rows[: self._buffered]
            self.precision = dsyrk(1.0, rows.T, beta=1.0, c=self.precision, overwrite_c=True)
            self.target += rows.T @ self._rewards[: self._buffered]
            self._buffered = 0

    def refit(self) -> None:
        """Fold every rating in and solve for the weights now (it happens by itself at
        counts fixed by the data; a rebuilt model asks for it once at its end)."""
        self._refit()

    def _refit(self) -> None:
        self._fold()
        self._solve()

    def _solve(self) -> None:
        prior = self.parent.weights() if self.parent else np.zeros(len(self.target))
        s2, t2 = self.priors.population_noise**2, self.priors.weight_scale**2
        a = self.precision / s2  # Fortran order like LAPACK's: factorised in place
        a[np.diag_indices_from(a)] += 1 / t2
        self._weights = cho_solve(cho_factor(a, overwrite_a=True), self.target / s2 + prior / t2)
        self._stale = False
        for child in self.children:  # their prior moved: they refit, solving when next needed
            if child.count:
                child._fold()
                child._stale = True

    def weights(self) -> np.ndarray:
        """Posterior mean weights as of the last refit (the parent's before any data)."""
        if self._stale:
            self._solve()
        if self._weights is None:
            assert self.parent is not None  # a root starts at zero weights
            return self.parent.weights()
        return self._weights


def _epoch(count: int) -> int:
    return count if count <= 10 else 10 + int(math.log(count / 10) / math.log(1.1))


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


@dataclass(frozen=True)
class _ContextMean:
    """A context model's mean: its weights folded per arm, and its value at the fixed candidates."""

    weights: np.ndarray  # the PopulationModel.weights() array these were derived from
    per_arm: np.ndarray
    offsets: np.ndarray
    candidates: np.ndarray

    def mean(self, features: _Features, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """The mean at points x, each in its arm."""
        by_arm = features.cosines(x) @ self.per_arm
        return by_arm[np.arange(len(arms)), arms] + self.offsets[arms]


def _lifted(x: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows lifted to (left, right) so that left(a) @ right(b).T = -g |a - b|^2.

    All the squared distances of a kernel matrix in one matrix product (|a|^2 and |b|^2
    ride along as extra columns), with no n x m x dim array.
    """
    scaled_sq = -g * np.einsum("ij,ij->i", x, x)[:, None]
    ones = np.ones((len(x), 1))
    return np.concatenate([2 * g * x, scaled_sq, ones], 1), np.concatenate([x, ones, scaled_sq], 1)


class _UserGP:
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


class OnlineModel:
    """One experiment's population models and the maths of suggesting for a user."""

    def __init__(
        self, space: Space, seed: int = 0, priors: Priors | None = None, max_contexts: int = 64
    ) -> None:
        """`max_contexts`: context models held in memory; the least recently used beyond
        them is dropped, and rebuilt from its ratings (`rebuild`) when needed again."""
        if max_contexts < 1:
            raise ValueError(f"max_contexts={max_contexts} must be at least 1")
        self.priors = priors or Priors()
        self.max_contexts = max_contexts
        self.encoding = _Encoding(space)
        rng = np.random.default_rng(seed)
        dim = len(self.encoding.continuous)
        self.features = _Features(dim, len(self.encoding.arms), self.priors, rng)
        self.global_model = PopulationModel(self.features.size, self.priors)
        self.contexts: OrderedDict[str, PopulationModel] = OrderedDict()  # least recently used first
        self.rated: set[str] = set()  # contexts with ratings, held in memory or not
        sobol = qmc.Sobol(max(dim, 1), seed=seed).random(self.priors.candidates)[:, :dim]
        n_arms = len(self.encoding.arms)
        # every Sobol point in every arm, arms innermost
        self._cand_x = np.repeat(sobol, n_arms, axis=0)
        self._cand_arms = np.tile(np.arange(n_arms), len(sobol))
        self._cand_cosines = self.features.cosines(sobol)
        self._arm_ids = np.arange(n_arms)[:, None]
        self._g = 0.5 / self.priors.lengthscale**2  # the RBF is exp(-g d^2)
        self._cand_left = _lifted(sobol, self._g)[0]
        self._means: dict[str, _ContextMean] = {}

    def context(self, name: str | None) -> PopulationModel:
        """The context's model; a context without ratings predicts as the global model, and
        costs no memory (clients name contexts: only rated ones get a model)."""
        key = name or ""
        model = self.contexts.get(key)
        if model is None:
            return self.global_model
        self.contexts.move_to_end(key)
        return model

    def evicted(self, name: str | None) -> bool:
        """Whether the context has ratings but its model was dropped (see `rebuild`)."""
        key = name or ""
        return key in self.rated and key not in self.contexts

    def rebuild(self, name: str | None, ratings: Sequence[tuple[Mapping[str, Any], float]]) -> None:
        """A dropped context model again, from its ratings in their order, each with the
        calibrated reward `learn` returned for it; refitted on all of them at the end."""
        model = self._learning(name)
        for params, calibrated in ratings:
            model.add(self.features(*self.encoding.encode(params)), calibrated)
        model.refit()

    def _learning(self, name: str | None) -> PopulationModel:
        """The context's model, made on its first rating; the least recently used beyond
        `max_contexts` is dropped (from the parent's children too, so its memory goes)."""
        key = name or ""
        model = self.contexts.get(key)
        if model is not None:
            self.contexts.move_to_end(key)
            return model
        model = self.contexts[key] = PopulationModel(self.features.size, self.priors, self.global_model)
        self.rated.add(key)
        while len(self.contexts) > self.max_contexts:
            old_key, old = self.contexts.popitem(last=False)
            self.global_model.children.remove(old)
            self._means.pop(old_key, None)
        return model

    def _context_mean(self, context: str | None) -> _ContextMean:
        """The context model's mean, recomputed at the fixed candidates only after a refit."""
        weights = self.context(context).weights()
        cached = self._means.get(context or "")
        if cached is None or cached.weights is not weights:
            per_arm, offsets = self.features.per_arm(weights)
            at_candidates = (self._cand_cosines @ per_arm + offsets).ravel()
            cached = self._means[context or ""] = _ContextMean(weights, per_arm, offsets, at_candidates)
        return cached

    # -- learning ---------------------------------------------------------------------------

    def learn(self, rater: Rater, context: str | None, params: Mapping[str, Any], reward: float) -> float:
        """Teach the population one reward, on the rater's calibrated scale; returns that
        calibrated reward (what `rebuild` needs to rebuild the context model exactly)."""
        phi = self.features(*self.encoding.encode(params))
        model = self._learning(context)
        predicted = float(phi @ model.weights())
        calibrated = rater.calibrated(reward, self.priors)
        model.add(phi, calibrated)
        self.global_model.add(phi, calibrated)
        rater.add(reward - predicted)
        return calibrated

    def observe(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        params: Mapping[str, Any],
        reward: float,
    ) -> None:
        """One rating of this user: to the population, and to their own history."""
        self.learn(rater, context, params, reward)
        self.remember(history, params, reward)

    def remember(self, history: UserHistory, params: Mapping[str, Any], reward: float) -> None:
        """One rating to the user's own history only (e.g. on the user's own weights)."""
        history.add(*self.encoding.encode(params), reward)

    # -- predicting -------------------------------------------------------------------------

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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the user's reward at (x, arms), pending points as fantasies."""
        x = np.asarray(x, dtype=float).reshape(len(arms), len(self.encoding.continuous))
        return self._posterior(rater, history, context, x, arms, pending, with_fixed=False)

    def _posterior(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        x: np.ndarray,
        arms: np.ndarray,
        pending: Sequence[Mapping[str, Any]],
        with_fixed: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`posterior`, preceded by the fixed candidates' when `with_fixed` (their prior mean
        and lifted points are cached). The queried, rated and pending points go through each
        step together: one cosine, one distance product."""
        prior, bias = self._context_mean(context), rater.bias(self.priors)
        n, m = len(history), len(arms)
        points = np.concatenate([x, history.x.reshape(n, x.shape[1])])
        point_arms = np.concatenate([arms, history.arms])
        means = prior.mean(self.features, points, point_arms)
        prior_mean = np.concatenate([prior.candidates, means[:m]]) if with_fixed else means[:m]
        if not n and not pending:
            return prior_mean + bias, np.full(len(prior_mean), self.prior_std)
        residual = history.rewards - means[m:] - bias
        noise = self.priors.noise**2 * np.exp2(np.arange(n - 1, -1, -1) / self.priors.half_life)
        if pending:
            px, pa = zip(*(self.encoding.encode(p) for p in pending), strict=True)
            points = np.concatenate([points, px])
            point_arms = np.concatenate([point_arms, pa])
            # constant liar: a pending point is assumed to disappoint, so the next pick for
            # this user moves elsewhere until its real rating arrives
            residual = np.concatenate([residual, np.full(len(pa), -self.priors.user_amplitude)])
            noise = np.concatenate([noise, np.full(len(pa), self.priors.noise**2)])
        left, right = _lifted(points, self._g)
        if with_fixed:
            left = np.concatenate([self._cand_left, left])
        rbf = np.exp(left @ right[m:].T)  # rows: fixed, queried, then the conditioning points
        n_cond = len(residual)
        gp = _UserGP(self.priors, self._arm_ids, rbf[-n_cond:], point_arms[m:], residual, noise)
        w = gp.whitened(rbf[:-n_cond])  # points x arms x n_cond
        queried = w[len(w) - m :][np.arange(m), arms]
        if with_fixed:
            queried = np.concatenate([w[: len(w) - m].reshape(-1, n_cond), queried])
        shift, std = gp.moments(queried)
        return prior_mean + bias + shift, std

    def _candidates(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        rng: np.random.Generator,
        pending: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fixed quasi-random set plus points around the user's best-rated ones, with the
        user's posterior mean and std there."""
        x, arms = self._cand_x, self._cand_arms
        local_x, local_arms = x[:0], arms[:0]
        if len(history) and self.encoding.continuous:
            top = np.repeat(np.argsort(history.rewards)[-3:], 16)
            noise = rng.normal(0, 0.05, (len(top), history.x.shape[1]))
            local_x = np.clip(history.x[top] + noise, 0, 1)
            local_arms = history.arms[top]
            x, arms = np.concatenate([x, local_x]), np.concatenate([arms, local_arms])
        mean, std = self._posterior(rater, history, context, local_x, local_arms, pending, with_fixed=True)
        return x, arms, mean, std

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
        x, arms, mean, std = self._candidates(rater, history, context, rng, pending)
        ucb = mean + beta * std
        best = np.where(arms == self._arm_ids, ucb, -np.inf).argmax(1)  # each arm's first best
        draws = [rng.normal(mean[i], std[i]) for i in best]
        choice = best[draws.index(max(draws))]  # the first arm with the best draw
        return self.encoding.decode(x[choice], int(arms[choice]))

    def recommend(
        self, rater: Rater, history: UserHistory, context: str | None
    ) -> tuple[dict[str, Any], float, float]:
        """The settings this user most likely likes best: params, expected reward, its std."""
        x, arms, mean, std = self._candidates(rater, history, context, np.random.default_rng(0))
        i = int(np.argmax(mean))
        return self.encoding.decode(x[i], int(arms[i])), float(mean[i]), float(std[i])
