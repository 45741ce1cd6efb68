"""The offline front as the online model's starting point (engine/online/front_prior.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal, norm, qmc

from engine.online import Feedback, OnlineEngine, OnlineModel, PopulationModel, Priors, Rater, UserHistory
from engine.online.front_prior import Front, _posterior_mean
from engine.spec import ExperimentSpec
from engine.store import EventStore

SPEC = ExperimentSpec.model_validate(
    {
        "name": "trace",
        "objective": {"ref": "objectives.synthetic:ZDT1"},  # never run online
        "space": {
            "a": {"type": "float", "low": 0.0, "high": 1.0},
            "b": {"type": "float", "low": 0.0, "high": 1.0},
            "mode": {"type": "categorical", "choices": ["spline", "polygon"]},
        },
        "metrics": [
            {"name": "quality", "direction": "max", "reference": 0.0},
            {"name": "speed", "direction": "min", "reference": 100.0},
        ],
        "preference": {"quality": 1.0, "speed": 0.0},
        "budget": {"trials": 64},
    }
)
FAITHFUL = np.array([0.2, 0.8])  # where quality peaks, in mode "spline"
FAST = np.array([0.8, 0.3])  # where tracing is fastest, in mode "polygon"
SPEED_FIRST = {"quality": 0.1, "speed": 0.9}
PRIORS = Priors()


def measured(x: np.ndarray, mode: str) -> dict[str, float]:
    """Quality (an SSIM-like score) and time in ms of synthetic settings."""
    quality = 0.6 + 0.3 * np.exp(-np.sum((x - FAITHFUL) ** 2) / 0.05) * (mode == "spline")
    speed = 20 + 60 * min(1.0, np.sum((x - FAST) ** 2) / 0.1) + 15 * (mode == "spline")
    return {"quality": float(quality), "speed": float(speed)}


def trials(n: int, seed: int) -> list[dict[str, Any]]:
    points = qmc.Sobol(2, seed=seed).random(n)
    rows = []
    for i, x in enumerate(points):
        mode = ("spline", "polygon")[i % 2]
        rows.append(
            {
                "trial_id": f"t{i}",
                "status": "ok",
                "params": {"a": float(x[0]), "b": float(x[1]), "mode": mode},
                "metrics": measured(x, mode),
            }
        )
    return rows


def best_guess(model: OnlineModel, weights: dict[str, float] | None) -> tuple[np.ndarray, str]:
    """The settings the model expects a new user to like best (its prior mean's maximum)."""
    params = model.recommend(Rater(), UserHistory(), None, weights)[0]
    return np.array([params["a"], params["b"]]), params["mode"]


def test_each_metric_surface_maximises_the_marginal_likelihood() -> None:
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(14, 6))
    y = phi @ rng.normal(0, 0.5, 6) + rng.normal(0, 0.3, 14)

    def log_likelihood(log_vars: np.ndarray) -> float:
        signal, noise = np.exp(log_vars)
        return float(
            multivariate_normal(np.zeros(len(y)), signal * phi @ phi.T + noise * np.eye(len(y))).logpdf(y)
        )

    brute = minimize(
        lambda v: -log_likelihood(v),
        np.zeros(2),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12},
    )
    weights = _posterior_mean(phi, y)
    signal, noise = np.exp(brute.x)
    expected = signal * phi.T @ np.linalg.solve(signal * phi @ phi.T + noise * np.eye(len(y)), y)
    np.testing.assert_allclose(weights, expected, rtol=1e-3, atol=1e-6)


def test_a_new_user_starts_at_the_fronts_point_preferred_under_their_weights() -> None:
    front = Front(trials(64, seed=1), SPEC.metrics, SPEC.weights())
    model = OnlineModel(SPEC.search_space(), seed=0, front=front)
    assert model.front is not None and len(model.front) == 64

    x, mode = best_guess(model, None)  # the experiment's weights: quality
    assert mode == "spline" and np.linalg.norm(x - FAITHFUL) < 0.15
    x, mode = best_guess(model, SPEED_FIRST)
    assert mode == "polygon" and np.linalg.norm(x - FAST) < 0.2

    # the published point preferred under each weighting is on the front, near its optimum
    quality_best, speed_best = model.front.preferred(), model.front.preferred(SPEED_FIRST)
    assert quality_best is not None and speed_best is not None
    assert quality_best["mode"] == "spline" and speed_best["mode"] == "polygon"

    cold = OnlineModel(SPEC.search_space(), seed=0)  # no front: both users start alike
    assert cold.front is None
    assert best_guess(cold, None)[1] == best_guess(cold, SPEED_FIRST)[1]


def test_failed_trials_and_other_spaces_say_nothing() -> None:
    rows = trials(16, seed=2)
    rows[0] = {**rows[0], "status": "failed", "metrics": {"quality": 0.99, "speed": 1.0}}
    rows[1] = {**rows[1], "params": {"a": 0.5, "b": 0.5, "mode": "none"}}  # not a choice here
    rows[2] = {**rows[2], "metrics": {"quality": float("nan"), "speed": 30.0}}
    model = OnlineModel(SPEC.search_space(), seed=0, front=Front(rows, SPEC.metrics, SPEC.weights()))
    assert model.front is not None and len(model.front) == 13


@pytest.fixture
def engine(tmp_path: Path) -> OnlineEngine:
    return OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"), lease_s=60, grace_s=60)


def publish(store: EventStore, run_id: str, rows: list[dict[str, Any]]) -> None:
    store.add_trials([{"experiment": SPEC.name, "run_id": run_id, "error": None, **r} for r in rows])


def test_the_engine_starts_each_user_from_the_newest_published_run(engine: OnlineEngine) -> None:
    assert engine.register(SPEC)
    stale = [
        {**r, "metrics": measured(1 - np.array([r["params"]["a"], r["params"]["b"]]), r["params"]["mode"])}
        for r in trials(64, seed=1)
    ]
    publish(engine.store, "older", stale)  # its best quality sits at 1 - FAITHFUL
    publish(engine.store, "newer", trials(64, seed=1))
    engine.set_preferences(SPEC.name, "hurried", SPEED_FIRST)

    picks = {}
    for user in ("careful", "hurried"):
        s = engine.suggest(SPEC.name, user, now=1000.0)
        x = np.array([s.params["a"], s.params["b"]])
        engine.feedback(
            s.suggestion_id, Feedback(rating=3, metrics=measured(x, s.params["mode"])), now=1001.0
        )
        profile = engine.profile(SPEC.name, user)
        preferred = profile["contexts"]["default"]["preferred"]
        assert profile["front_preferred"]["mode"] == ("spline" if user == "careful" else "polygon")
        picks[user] = (np.array([preferred["a"], preferred["b"]]), preferred["mode"])
    assert picks["careful"][1] == "spline" and np.linalg.norm(picks["careful"][0] - FAITHFUL) < 0.15
    assert picks["hurried"][1] == "polygon" and np.linalg.norm(picks["hurried"][0] - FAST) < 0.2


def test_the_fronts_scales_maximise_the_ratings_marginal_likelihood() -> None:
    """The global model's prior mean is the front's basis times scales fitted on the ratings
    (stars and an offline metric score differ in units): checked against a brute-force
    maximisation of SciPy's multivariate normal density with the N(1, 1) priors."""
    rng = np.random.default_rng(7)
    size, n = 10, 40
    basis = rng.normal(size=(size, 2))
    phis = rng.normal(size=(n, size))
    rewards = phis @ (basis @ np.array([3.0, 0.5])) + rng.normal(0, 0.45, n)
    model = PopulationModel(size, PRIORS, prior_basis=basis)
    for phi, reward in zip(phis, rewards, strict=True):
        model.add(phi, reward)
    model.refit()
    s2, t2 = model.variances()  # fitted at this refit, before the scales
    cov = s2 * np.eye(n) + t2 * phis @ phis.T

    def minus_log_posterior(scales: np.ndarray) -> float:
        likelihood = multivariate_normal(phis @ basis @ scales, cov).logpdf(rewards)
        return -(likelihood + norm(1.0, 1.0).logpdf(scales).sum())

    best = minimize(
        minus_log_posterior, np.ones(2), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    np.testing.assert_allclose(model.scales, best.x, rtol=1e-5)
    assert model.scales[0] > 2  # the ratings say the first column is worth about 3 of its units
    a = phis.T @ phis / s2 + np.eye(size) / t2
    np.testing.assert_allclose(
        model.weights(), np.linalg.solve(a, phis.T @ rewards / s2 + basis @ best.x / t2), rtol=1e-6
    )
