"""The online model: global, context and user levels, learning from ratings and suggesting.

A population model per context (Bayesian linear regression whose prior mean is a global
model over every context) and, per user and context, an exact GP on the user's residuals
from it; a new user gets the context's (or global) optimum, and as their ratings
accumulate their GP takes over. Our own model: no maintained library does hierarchical
warm starts for many small per-user problems. Every request pays for its user's own
points only. No Ray here. See docs/online-model.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.online.acquisition import Candidates
from engine.online.encoding import Encoding
from engine.online.features import ContextMean, RandomFourierFeatures
from engine.online.front_prior import Front, FrontPrior
from engine.online.priors import Priors
from engine.online.rater import Rater
from engine.online.regression import PopulationModel
from engine.online.user_gp import UserHistory, UserKernel
from engine.spec import Space

__all__ = ["OnlineModel"]


class OnlineModel:
    """One experiment's population models and the maths of suggesting for a user."""

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        priors: Priors | None = None,
        max_contexts: int = 64,
        front: Front | None = None,
    ) -> None:
        """`max_contexts`: context models held in memory; the least recently used beyond
        them is dropped, and rebuilt from its ratings (`rebuild`) when needed again.
        `front`: the experiment's published trials, the model's starting point
        (engine/online/front_prior.py)."""
        if max_contexts < 1:
            raise ValueError(f"max_contexts={max_contexts} must be at least 1")
        self.priors = priors or Priors()
        self.max_contexts = max_contexts
        self.encoding = Encoding(space)
        dim, n_arms = len(self.encoding.continuous), len(self.encoding.arms)
        self.features = RandomFourierFeatures(dim, n_arms, self.priors, np.random.default_rng(seed))
        self.front = FrontPrior(front, self.encoding, self.features) if front and front.trials else None
        basis = self.front.basis() if self.front else None
        self.global_model = PopulationModel(self.features.size, self.priors, prior_basis=basis)
        self.contexts: OrderedDict[str, PopulationModel] = OrderedDict()  # least recently used first
        self.rated: set[str] = set()  # contexts with ratings, held in memory or not
        self.user_kernel = UserKernel(self.priors, n_arms)
        self.candidates = Candidates(
            dim, n_arms, self.priors.candidates, seed, self.features, self.user_kernel.g
        )
        self._means: dict[str, ContextMean] = {}
        # dropped context -> its ratings in the global model's snapshot then, and the
        # global model's refits then (what `rebuild` needs to hold the same ratings out)
        self._dropped: dict[str, tuple[int, int]] = {}
        self.evictions = 0  # context models dropped from memory so far

    # -- the context models -----------------------------------------------------------------

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
        calibrated reward `learn` returned for it; as it would be had it never been dropped."""
        key = name or ""
        in_snapshot, refits = self._dropped.pop(key, (0, self.global_model.refits))
        if self.global_model.refits > refits:  # the global model refitted on all of them since
            in_snapshot = len(ratings)
        rows = np.array([self.features(*self.encoding.encode(params)) for params, _ in ratings])
        rewards = np.array([calibrated for _, calibrated in ratings], dtype=float)
        self._learning(name).replay(rows.reshape(len(ratings), self.features.size), rewards, in_snapshot)

    def _learning(self, name: str | None) -> PopulationModel:
        """The context's model, made on its first rating; the least recently used beyond
        `max_contexts` is dropped (from the parent's children too, so its memory goes)."""
        key = name or ""
        model = self.contexts.get(key)
        if model is not None:
            self.contexts.move_to_end(key)
            return model
        model = self.contexts[key] = PopulationModel(
            self.features.size, self.priors, self.global_model, constants=self.features.n_arms
        )
        self.rated.add(key)
        self._evict()
        return model

    def limit(self, max_contexts: int) -> None:
        """Hold at most `max_contexts` context models from now on (the least recently used
        beyond are dropped now, and rebuilt from their ratings when needed)."""
        self.max_contexts = max(1, max_contexts)
        self._evict()

    def _evict(self) -> None:
        while len(self.contexts) > self.max_contexts:
            old_key, old = self.contexts.popitem(last=False)
            self.global_model.children.remove(old)
            self._dropped[old_key] = (old.in_snapshot, self.global_model.refits)
            self._means.pop(old_key, None)
            self.evictions += 1

    def _context_mean(self, context: str | None) -> ContextMean:
        """The context model's mean, recomputed at the fixed candidates only after a refit."""
        weights = self.context(context).weights()
        cached = self._means.get(context or "")
        if cached is None or cached.weights is not weights:
            per_arm, offsets = self.features.per_arm(weights)
            at_candidates = self.candidates.fixed_mean(per_arm, offsets)
            cached = self._means[context or ""] = ContextMean(weights, per_arm, offsets, at_candidates)
        return cached

    # -- learning ---------------------------------------------------------------------------

    def learn(self, rater: Rater, context: str | None, params: Mapping[str, Any], reward: float) -> float:
        """Teach the population one reward, on the rater's calibrated scale; returns that
        calibrated reward (what `rebuild` needs to rebuild the context model exactly)."""
        phi = self.features(*self.encoding.encode(params))
        model = self._learning(context)
        predicted = float(phi @ model.weights())
        calibrated = rater.calibrated(reward, self.global_model.priors)
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
        weights: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the user's reward at (x, arms), pending points as fantasies;
        `weights`: the user's own preference weights, if they set some."""
        x = np.asarray(x, dtype=float).reshape(len(arms), len(self.encoding.continuous))
        return self._posterior(rater, history, context, x, arms, pending, weights, with_fixed=False)

    def _user_shift(self, weights: Mapping[str, float] | None) -> ContextMean | None:
        """How the front's utility surface under the user's own weights departs from the
        one under the experiment's (None without a front or own weights)."""
        if self.front is None or weights is None:
            return None
        shift = self.front.shift(weights, self.global_model.scales)
        if not shift.any():
            return None
        per_arm, offsets = self.features.per_arm(shift)
        return ContextMean(shift, per_arm, offsets, self.candidates.fixed_mean(per_arm, offsets))

    def _posterior(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        x: np.ndarray,
        arms: np.ndarray,
        pending: Sequence[Mapping[str, Any]],
        weights: Mapping[str, float] | None,
        with_fixed: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`posterior`, preceded by the fixed candidates' when `with_fixed` (their prior mean
        and lifted points are cached). The queried, rated and pending points go through each
        step together: one cosine, one distance product."""
        prior, bias = self._context_mean(context), rater.bias(self.global_model.priors)
        n, m = len(history), len(arms)
        points = np.concatenate([x, history.x.reshape(n, x.shape[1])])
        point_arms = np.concatenate([arms, history.arms])
        means, at_candidates = prior.mean(self.features, points, point_arms), prior.candidates
        own = self._user_shift(weights)
        if own is not None:
            means = means + own.mean(self.features, points, point_arms)
            at_candidates = at_candidates + own.candidates
        prior_mean = np.concatenate([at_candidates, means[:m]]) if with_fixed else means[:m]
        if not n and not pending:
            return prior_mean + bias, np.full(len(prior_mean), self.prior_std)
        residual = history.rewards - means[m:] - bias
        fantasies = [self.encoding.encode(p) for p in pending]
        fixed_left = self.candidates.left if with_fixed else None
        shift, std = self.user_kernel.posterior(points, point_arms, m, residual, fantasies, fixed_left)
        return prior_mean + bias + shift, std

    # -- suggesting -------------------------------------------------------------------------

    def _scored(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        rng: np.random.Generator,
        pending: Sequence[Mapping[str, Any]] = (),
        weights: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidates (fixed, then local to the user's best-rated points, then the
        published trials' settings), with the user's posterior mean and std there."""
        local_x, local_arms = self.candidates.local(history, rng)
        if self.front is not None and len(self.front):
            local_x = np.concatenate([local_x, self.front.x])
            local_arms = np.concatenate([local_arms, self.front.arms])
        x, arms = self.candidates.x, self.candidates.arms
        if len(local_arms):
            x, arms = np.concatenate([x, local_x]), np.concatenate([arms, local_arms])
        mean, std = self._posterior(
            rater, history, context, local_x, local_arms, pending, weights, with_fixed=True
        )
        return x, arms, mean, std

    def suggest(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        rng: np.random.Generator,
        pending: Sequence[Mapping[str, Any]] = (),
        beta: float = 1.0,
        weights: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """UCB within each arm, Thompson sampling between arms (one joint draw from the
        user's posterior at each arm's best candidate); never the settings of one of
        the user's pending suggestions (their fantasies lower the mean there, but a peaked
        population mean can still win: a repeat is then skipped for the next best).
        `weights`: the user's own preference weights, if they set some."""
        x, arms, mean, std = self._scored(rater, history, context, rng, pending, weights)
        fantasies = [self.encoding.encode(p) for p in pending]
        excluded: list[int] = []
        while True:
            best = self.candidates.arm_best(arms, mean, std, beta, excluded)
            cov = self.user_kernel.covariance(x[best], arms[best], history, fantasies)
            choice = int(best[self.candidates.thompson(mean[best], cov, rng)])
            params = self.encoding.decode(x[choice], int(arms[choice]))
            if params not in pending or len(excluded) + 1 >= len(arms):
                return params
            excluded.append(choice)

    def recommend(
        self,
        rater: Rater,
        history: UserHistory,
        context: str | None,
        weights: Mapping[str, float] | None = None,
    ) -> tuple[dict[str, Any], float, float]:
        """The settings this user most likely likes best: params, expected reward, its std."""
        x, arms, mean, std = self._scored(rater, history, context, np.random.default_rng(0), (), weights)
        i = int(np.argmax(mean))
        return self.encoding.decode(x[i], int(arms[i])), float(mean[i]), float(std[i])

    def for_new_user(self, context: str | None) -> tuple[dict[str, Any], float, float]:
        """`recommend` for a user it knows nothing of: the context's (or global) optimum."""
        return self.recommend(Rater(), UserHistory(), context)

    def confidence(self, std: float) -> float:
        """How much a user's ratings narrowed a prediction: 1 - std / prior std, at least 0."""
        return float(max(0.0, 1.0 - std / self.prior_std))
