"""A context model's prior: the global model without the context's own ratings, its shape
pulled by a factor fitted by marginal likelihood (engine/online/regression.py)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import multivariate_normal, norm

from engine.online import Priors
from engine.online.features import RandomFourierFeatures
from engine.online.regression import PopulationModel, _epoch

PRIORS = Priors()
S2, T2 = PRIORS.population_noise**2, PRIORS.weight_scale**2


def ridge(phis: np.ndarray, rewards: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The posterior mean of Bayesian linear regression, by the textbook formula."""
    a = phis.T @ phis / S2 + np.eye(phis.shape[1]) / T2
    return np.linalg.solve(a, phis.T @ rewards / S2 + prior / T2)


def test_a_context_starts_from_the_others_ratings_and_fits_its_pull_by_marginal_likelihood() -> None:
    rng = np.random.default_rng(3)
    size, constants = 8, 2
    parent = PopulationModel(size, PRIORS)
    one, other = (PopulationModel(size, PRIORS, parent, constants=constants) for _ in range(2))
    total = next(n for n in range(60, 200) if _epoch(n) != _epoch(n - 1))  # the parent refits at its last
    phis, rewards = rng.normal(size=(total, size)), rng.normal(size=total)
    mine = np.arange(total) % 3 == 0
    for phi, reward, is_mine in zip(phis, rewards, mine, strict=True):
        (one if is_mine else other).add(phi, reward)
        parent.add(phi, reward)
    weights = one.weights()  # solved now, against the parent's refit on every rating

    held_out = ridge(phis[~mine], rewards[~mine], np.zeros(size))  # no rating of its own
    level = np.where(np.arange(size) >= size - constants, held_out, 0.0)
    shape = held_out - level
    f, y = phis[mine], rewards[mine]
    cov = S2 * np.eye(len(y)) + T2 * f @ f.T  # the weights integrated out

    def minus_log_posterior(pull: float) -> float:
        likelihood = multivariate_normal(f @ (level + pull * shape), cov).logpdf(y)
        return -(likelihood + norm(1.0, 1.0).logpdf(pull))

    best = minimize_scalar(minus_log_posterior, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
    assert abs(one.pull - best.x) < 1e-6
    np.testing.assert_allclose(weights, ridge(f, y, level + best.x * shape), rtol=1e-8, atol=1e-10)


def bump_ratings(
    features: RandomFourierFeatures, centre: float, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Ratings of points on a line by people who like `centre` (rewards in [-1, 1] plus noise)."""
    x = rng.uniform(0, 1, size=(n, 1))
    rewards = 2 * np.exp(-0.5 * ((x[:, 0] - centre) / 0.1) ** 2) - 1 + rng.normal(0, 0.3, n)
    return np.array([features(point, 0) for point in x]), rewards


def test_contexts_that_like_what_the_others_like_keep_the_global_shape_and_others_drop_it() -> None:
    rng = np.random.default_rng(0)
    features = RandomFourierFeatures(1, 1, PRIORS, rng)
    parent = PopulationModel(features.size, PRIORS)
    contexts = {c: PopulationModel(features.size, PRIORS, parent, constants=1) for c in "abc"}
    centres = {"a": 0.2, "b": 0.8, "c": 0.2}  # b's people like what a's and c's do not
    for _ in range(4):
        for name, model in contexts.items():
            for phi, reward in zip(*bump_ratings(features, centres[name], 50, rng), strict=True):
                model.add(phi, reward)
                parent.add(phi, reward)
    for model in contexts.values():
        model.weights()
    assert contexts["b"].pull < 0.3
    assert contexts["a"].pull > 0.7 and contexts["c"].pull > 0.7
