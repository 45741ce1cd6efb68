"""The online model on simulated users: warm starts, pending points, noisy repeats."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from engine.online import OnlineModel, PopulationModel, Priors, Rater, UserHistory
from engine.online.rewards import Feedback, judged_metric, metric_score, quality_reward, utility
from engine.spec import MetricSpec, load_spec
from objectives.users import population

GENAI = load_spec("configs/genai.yaml").search_space()
CONTEXT = "portrait"


def train(
    model: OnlineModel, users: list, rounds: int, rng: np.random.Generator
) -> dict[str, tuple[Rater, UserHistory]]:
    states = {u.user_id: (Rater(), UserHistory()) for u in users}
    for _ in range(rounds):
        for u in users:
            rater, history = states[u.user_id]
            params = model.suggest(rater, history, CONTEXT, rng)
            model.observe(rater, history, CONTEXT, params, (u.rate(params, CONTEXT) - 3) / 2)
    return states


def test_new_users_start_from_what_the_population_taught() -> None:
    users = population(50, seed=1)
    cold, warm = OnlineModel(GENAI, seed=1), OnlineModel(GENAI, seed=1)
    train(warm, users[:40], rounds=8, rng=np.random.default_rng(1))
    newcomers = users[40:]
    cold_pick, _, _ = cold.recommend(Rater(), UserHistory(), CONTEXT)
    warm_pick, _, _ = warm.recommend(Rater(), UserHistory(), CONTEXT)
    warm_stars = np.mean([u.expected_stars(warm_pick, CONTEXT) for u in newcomers])
    cold_stars = np.mean([u.expected_stars(cold_pick, CONTEXT) for u in newcomers])
    # each newcomer's own taste is offset from the context's: ~4 stars before any rating
    assert warm_stars > cold_stars + 1.5
    assert warm_stars >= 3.5


def test_pending_suggestions_are_not_repeated() -> None:
    model, state = OnlineModel(GENAI, seed=3), (Rater(), UserHistory())
    first = model.suggest(*state, CONTEXT, np.random.default_rng(0))
    again = model.suggest(*state, CONTEXT, np.random.default_rng(0))
    other = model.suggest(*state, CONTEXT, np.random.default_rng(0), pending=[first])
    assert first == again and other != first


def test_a_pending_suggestion_is_not_repeated_where_the_population_peaks() -> None:
    """Where everyone loved the same settings, a pending point's fantasy alone does not
    move a new user's pick (the peak outweighs it); the pick must still not repeat it."""
    model, rng = OnlineModel(GENAI, seed=0), np.random.default_rng(0)
    for _ in range(200):
        loved = model.suggest(Rater(), UserHistory(), CONTEXT, np.random.default_rng(1))
        rater = Rater()
        model.learn(rater, CONTEXT, loved, 1.0)
        model.learn(rater, CONTEXT, GENAI.from_unit(rng.uniform(size=4)), -1.0)
    state = (Rater(), UserHistory())
    first = model.suggest(*state, CONTEXT, np.random.default_rng(1))
    second = model.suggest(*state, CONTEXT, np.random.default_rng(1), pending=[first])
    assert second != first
    third = model.suggest(*state, CONTEXT, np.random.default_rng(1), pending=[first, second])
    assert third not in (first, second)


def test_conflicting_ratings_of_the_same_settings_average_not_overwrite() -> None:
    model, rater, history = OnlineModel(GENAI, seed=4), Rater(), UserHistory()
    params = GENAI.from_unit(np.full(4, 0.5))
    model.observe(rater, history, CONTEXT, params, 1.0)
    model.observe(rater, history, CONTEXT, params, -1.0)
    x, arm = model.encoding.encode(params)
    mean, _ = model.posterior(rater, history, CONTEXT, x[None, :], np.array([arm]))
    assert -0.5 < mean[0] < 0.5
    assert len(history) == 2


def test_replaying_the_same_ratings_gives_the_same_model_whatever_was_asked_between() -> None:
    """Refits and batched precision updates happen at counts fixed by the data, never per request."""
    users = population(12, seed=5)
    busy, quiet = OnlineModel(GENAI, seed=5), OnlineModel(GENAI, seed=5)
    states = {m: {u.user_id: (Rater(), UserHistory()) for u in users} for m in (busy, quiet)}
    rng = np.random.default_rng(5)
    for round_ in range(12):  # 144 ratings per model: several folds and refits
        for u in users:
            params = busy.suggest(*states[busy][u.user_id], CONTEXT, rng)
            busy.recommend(*states[busy][u.user_id], "elsewhere")
            reward = (u.rate(params, CONTEXT) - 3) / 2
            for m in (busy, quiet):
                m.observe(*states[m][u.user_id], CONTEXT, params, reward)
                if round_ % 3 == 0:
                    m.learn(states[m][u.user_id][0], "anonymous", params, -reward)
    for context in (CONTEXT, "anonymous"):
        assert np.array_equal(busy.context(context).weights(), quiet.context(context).weights())
    assert np.array_equal(busy.global_model.weights(), quiet.global_model.weights())
    for u in users[:4]:
        picks = [m.suggest(*states[m][u.user_id], CONTEXT, np.random.default_rng(9)) for m in (busy, quiet)]
        assert picks[0] == picks[1]


def test_population_refits_see_every_buffered_rating() -> None:
    priors, rng = Priors(), np.random.default_rng(0)
    model = PopulationModel(6, priors)
    phis, rewards = rng.normal(size=(200, 6)), rng.normal(size=200)
    refits = 0
    for k in range(200):
        before = model.weights()
        model.add(phis[k], rewards[k])
        if model.weights() is not before:  # a refit: all k + 1 ratings must be in
            s2, t2 = model.variances()  # fitted on the same ratings
            a = phis[: k + 1].T @ phis[: k + 1] / s2 + np.eye(6) / t2
            expected = np.linalg.solve(a, phis[: k + 1].T @ rewards[: k + 1] / s2)
            np.testing.assert_allclose(model.weights(), expected, rtol=1e-9, atol=1e-12)
            refits += 1
    assert refits > 20 and model.count == 200


def test_feedback_mapping_and_validation() -> None:
    assert [quality_reward(Feedback(rating=r)) for r in range(1, 6)] == [-1, -0.5, 0, 0.5, 1]
    assert quality_reward(Feedback(rating=5, signal="reject")) == 0
    assert quality_reward(Feedback(metrics={"latency_ms": 900})) is None
    for bad in (
        {"rating": 0},
        {"rating": 6},
        {"metrics": {"latency_ms": float("nan")}},
        {},
        {"signal": "meh"},
        {"retries": -1},
        {"time_to_accept_s": float("inf")},
    ):
        with pytest.raises(ValidationError):
            Feedback.model_validate(bad)
    # implicit signals: a quick accept or no re-generation is good, weighing half a rating
    quick, slow_accept = Feedback(time_to_accept_s=0.0), Feedback(time_to_accept_s=120.0)
    assert quality_reward(quick) == pytest.approx(0.5) and quality_reward(slow_accept) < 0  # type: ignore[operator]
    assert [quality_reward(Feedback(retries=r)) for r in (0, 1, 2, 3, 9)] == [0.5, 0, -0.5, -1, -1]
    assert quality_reward(Feedback(rating=1, retries=0)) == pytest.approx((-1 + 0.5 * 0.5) / 1.5)


def test_utility_scores_the_specs_metrics_by_name_direction_and_reference() -> None:
    metrics = [
        MetricSpec(name="quality", direction="max", reference=1.0),
        MetricSpec(name="speed", direction="min", reference=4000.0),
        MetricSpec(name="cost", direction="min", reference=0.01),
    ]
    weights = {"quality": 0.6, "speed": 0.3, "cost": 0.1}
    fast = utility(Feedback(rating=4, metrics={"speed": 1000.0, "cost": 0.01}), metrics, weights)
    slow = utility(Feedback(rating=4, metrics={"speed": 8000.0, "cost": 0.01}), metrics, weights)
    assert fast == pytest.approx((0.6 * 0.5 + 0.3 * 0.75) / 1.0)  # 1 - 1000/4000
    assert slow == pytest.approx((0.6 * 0.5 - 0.3 * 1.0) / 1.0)  # clipped at -1
    # metrics only: learnt where a weight applies, else None (nothing to learn)
    assert utility(Feedback(metrics={"speed": 0.0}), metrics, weights) == pytest.approx(0.3)
    assert utility(Feedback(metrics={"speed": 0.0}), metrics, {"quality": 1.0}) is None
    assert utility(Feedback(rating=5), metrics, {"speed": 1.0}) is None
    # a metric to maximise scores above its reference; a zero reference scales by 1
    ssim = [MetricSpec(name="ssim", direction="max", reference=0.0), metrics[1]]
    assert judged_metric(ssim) == "ssim"
    assert metric_score(0.8, ssim[0]) == pytest.approx(0.8)
    assert utility(Feedback(rating=5, metrics={"ssim": 0.6}), ssim, {"ssim": 1.0}) == pytest.approx(0.8)


def test_thompson_draws_between_arms_share_the_users_posterior_covariance() -> None:
    """The joint draw between arms uses the user GP's posterior covariance (rated and pending
    points conditioned on): checked against the textbook GP formula, and its diagonal
    against the std the UCB step sees."""
    model, rng = OnlineModel(GENAI, seed=2), np.random.default_rng(4)
    user = population(1, seed=8)[0]
    rater, history = Rater(), UserHistory()
    for _ in range(9):
        params = model.suggest(rater, history, CONTEXT, rng)
        model.observe(rater, history, CONTEXT, params, (user.rate(params, CONTEXT) - 3) / 2)
    pending = [model.suggest(rater, history, CONTEXT, rng)]
    n_arms = len(model.encoding.arms)
    x, arms = rng.uniform(size=(n_arms, len(model.encoding.continuous))), np.arange(n_arms)
    fantasies = [model.encoding.encode(p) for p in pending]
    cov = model.user_kernel.covariance(x, arms, history, fantasies)

    p = model.priors
    points = np.concatenate([x, history.x, [f[0] for f in fantasies]])
    point_arms = np.concatenate([arms, history.arms, [f[1] for f in fantasies]])
    rbf = np.exp(-((points[:, None] - points[None]) ** 2).sum(-1) / (2 * p.lengthscale**2))
    same = point_arms[:, None] == point_arms[None]
    k = p.user_amplitude**2 * rbf * np.where(same, 1.0, p.arm_share) + p.arm_offset**2 * same
    ages = np.arange(len(history) - 1, -1, -1)
    noise = np.concatenate([p.noise**2 * 2.0 ** (ages / p.half_life), [p.noise**2]])
    m = n_arms
    expected = k[:m, :m] - k[:m, m:] @ np.linalg.solve(k[m:, m:] + np.diag(noise), k[m:, :m])
    np.testing.assert_allclose(cov, expected, atol=1e-8)
    _, std = model.posterior(rater, history, CONTEXT, x, arms, pending)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std, rtol=1e-6)
    assert (cov - np.diag(np.diag(cov)) > 0.05).any()  # arms share a taste: draws are not independent
