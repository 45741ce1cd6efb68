"""A context model's prior: the global model without the context's own ratings, its shape
pulled by a factor fitted by marginal likelihood (engine/online/regression.py)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import multivariate_normal, norm

from engine.online import Priors
from engine.online.features import RandomFourierFeatures
from engine.online.regression import PopulationModel, _epoch

PRIORS = Priors()


def ridge(
    phis: np.ndarray, rewards: np.ndarray, prior: np.ndarray, variances: tuple[float, float]
) -> np.ndarray:
    """The posterior mean of Bayesian linear regression, by the textbook formula."""
    s2, t2 = variances
    a = phis.T @ phis / s2 + np.eye(phis.shape[1]) / t2
    return np.linalg.solve(a, phis.T @ rewards / s2 + prior / t2)


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

    variances = parent.variances()  # fitted at the parent's last refit, used by its contexts
    held_out = ridge(phis[~mine], rewards[~mine], np.zeros(size), variances)  # no rating of its own
    level = np.where(np.arange(size) >= size - constants, held_out, 0.0)
    shape = held_out - level
    f, y = phis[mine], rewards[mine]
    cov = variances[0] * np.eye(len(y)) + variances[1] * f @ f.T  # the weights integrated out

    def minus_log_posterior(pull: float) -> float:
        likelihood = multivariate_normal(f @ (level + pull * shape), cov).logpdf(y)
        return -(likelihood + norm(1.0, 1.0).logpdf(pull))

    best = minimize_scalar(minus_log_posterior, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
    assert abs(one.pull - best.x) < 1e-6
    np.testing.assert_allclose(weights, ridge(f, y, level + best.x * shape, variances), rtol=1e-6, atol=1e-9)


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


def test_the_global_models_noise_and_weight_scale_maximise_the_marginal_likelihood() -> None:
    """Type-II MAP with log-normal hyperpriors (sd 1) around the defaults: checked against a
    brute-force maximisation of SciPy's multivariate normal density."""
    rng = np.random.default_rng(11)
    size = 6
    phis = rng.normal(size=(40, size))
    rewards = phis @ rng.normal(0, 0.3, size) + rng.normal(0, 0.2, 40)
    all_of_them = phis, rewards
    model = PopulationModel(size, PRIORS)
    for phi, reward in zip(phis, rewards, strict=True):
        model.add(phi, reward)
    n = model.fitted_on  # fitted at a refit once the data had doubled since the last fit
    assert 20 <= n <= 40
    phis, rewards = phis[:n], rewards[:n]
    centre = np.log([PRIORS.population_noise, PRIORS.weight_scale])

    def minus_log_posterior(log_sd: np.ndarray) -> float:
        s2, t2 = np.exp(2 * log_sd)
        likelihood = multivariate_normal(np.zeros(n), s2 * np.eye(n) + t2 * phis @ phis.T).logpdf(rewards)
        return -(likelihood + norm(centre, 1.0).logpdf(log_sd).sum())

    options = {"xatol": 1e-10, "fatol": 1e-12}
    best = minimize(minus_log_posterior, centre, method="Nelder-Mead", options=options)
    np.testing.assert_allclose(np.sqrt(model.variances()), np.exp(best.x), rtol=1e-6)
    assert np.sqrt(model.variances()[0]) < 0.3  # the data's noise (0.2), not the default (0.45)
    model.refit()
    s2, t2 = model.variances()
    assert model.fitted_on == n  # not refitted before the data doubles again
    np.testing.assert_allclose(model.weights(), ridge(*all_of_them, np.zeros(size), (s2, t2)), rtol=1e-8)


def test_the_fitted_noise_follows_the_ratings_and_the_contexts_use_it() -> None:
    """With many ratings the population levels' noise is the ratings' own, whatever the
    default, and a context model solves with the global model's fitted values."""
    rng = np.random.default_rng(5)
    features = RandomFourierFeatures(1, 1, PRIORS, rng)
    for noise in (0.15, 0.7):
        parent = PopulationModel(features.size, PRIORS)
        child = PopulationModel(features.size, PRIORS, parent, constants=1)
        phis, rewards = bump_ratings(features, 0.4, 1500, rng)
        rewards += rng.normal(0, noise, len(rewards))  # on top of bump_ratings' own 0.3
        for phi, reward in zip(phis, rewards, strict=True):
            child.add(phi, reward)
            parent.add(phi, reward)
        parent.refit()
        child.weights()
        fitted = np.sqrt(parent.variances()[0])
        assert abs(fitted - np.hypot(noise, 0.3)) < 0.1 * np.hypot(noise, 0.3)
        assert child.variances() == parent.variances()
