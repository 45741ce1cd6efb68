"""The A/B statistics against SciPy and statsmodels (to 1e-6), published gbstats values,
or Monte Carlo (within 3 standard errors)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from engine.experiments.stats import (
    Summary,
    cohens_d,
    confidence_sequence,
    cuped,
    expected_loss,
    holm,
    lift,
    minimum_detectable_effect,
    power,
    prob_beat_control,
    sample_ratio,
    sequential_p_value,
    users_needed,
    welch,
    winsorize,
)

RNG = np.random.default_rng(20261201)
A = RNG.normal(3.2, 0.9, 140)
B = RNG.normal(3.45, 1.3, 95)


def test_welch_matches_scipy() -> None:
    ours = welch(Summary.of(A), Summary.of(B))
    ref = stats.ttest_ind(B, A, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert ours.df == pytest.approx(ref.df, rel=1e-9)


def test_summary_from_sums_matches_samples() -> None:
    s = Summary.from_sums(len(A), A.sum(), (A**2).sum())
    assert s.mean == pytest.approx(A.mean()) and s.var == pytest.approx(A.var(ddof=1), rel=1e-9)


def test_absolute_lift_interval_matches_statsmodels() -> None:
    ours = lift(Summary.of(A), Summary.of(B), confidence=0.9)
    low, high = CompareMeans(DescrStatsW(B), DescrStatsW(A)).tconfint_diff(alpha=0.1, usevar="unequal")
    assert ours.absolute_ci.low == pytest.approx(low, abs=1e-6)
    assert ours.absolute_ci.high == pytest.approx(high, abs=1e-6)


def test_relative_lift_matches_gbstats_published_values() -> None:
    # gbstats' test_two_sided_ttest_binom: 14/28 against 16/30 converting (variance p(1-p))
    control, treatment = Summary(28, 0.5, 0.25), Summary(30, 16 / 30, 16 / 30 * 14 / 30)
    ours = lift(control, treatment)
    assert ours.relative == pytest.approx(1 / 15)
    assert ours.relative_se == pytest.approx(0.2717, abs=5e-5)
    assert ours.relative_ci.low == pytest.approx(-0.47767, abs=5e-6)
    assert ours.relative_ci.high == pytest.approx(0.61101, abs=5e-6)


def test_relative_lift_interval_covers_at_its_level() -> None:
    """Monte Carlo: the delta-method interval covers the true relative lift ~95% of the time."""
    rng = np.random.default_rng(1)
    trials, covered = 2000, 0
    for _ in range(trials):
        a, b = rng.normal(3.0, 1.0, 200), rng.normal(3.3, 1.0, 200)
        ci = lift(Summary.of(a), Summary.of(b)).relative_ci
        covered += ci.low <= 0.1 <= ci.high
    se = np.sqrt(0.95 * 0.05 / trials)
    assert abs(covered / trials - 0.95) <= 3 * se


def test_cohens_d_agrees_with_the_pooled_t_test() -> None:
    d = cohens_d(Summary.of(A), Summary.of(B))
    t = stats.ttest_ind(B, A, equal_var=True).statistic
    assert d * np.sqrt(len(A) * len(B) / (len(A) + len(B))) == pytest.approx(t, rel=1e-9)


def test_probability_to_beat_and_expected_loss_match_integration() -> None:
    control, treatment = Summary.of(A), Summary.of(B)
    mu = treatment.mean - control.mean
    sd = np.sqrt(control.se2 + treatment.se2)
    density = stats.norm(mu, sd).pdf
    beat = integrate.quad(density, 0, np.inf)[0]
    loss = integrate.quad(lambda d: -d * density(d), -np.inf, 0)[0]
    assert prob_beat_control(control, treatment) == pytest.approx(beat, abs=1e-6)
    assert expected_loss(control, treatment) == pytest.approx(loss, abs=1e-6)
    assert expected_loss(treatment, control) == pytest.approx(loss + mu, abs=1e-6)  # E[max(0, D)]


def test_confidence_sequence_matches_gbstats_published_values() -> None:
    # gbstats' test_sequential_test_runs (relative lift, tuning parameter 1000, alpha 0.05)
    control = Summary.from_sums(3000, 1396.87, 52377.9767)
    treatment = Summary.from_sums(3461, 2422.7, 134698.29)
    ci = confidence_sequence(control, treatment, 0.05, tuning=1000, relative=True)
    assert lift(control, treatment).relative == pytest.approx(0.50336, abs=5e-6)
    assert lift(control, treatment).relative_se == pytest.approx(0.33341, abs=5e-6)
    assert ci.low == pytest.approx(-0.55844, abs=5e-6)
    assert ci.high == pytest.approx(1.56516, abs=5e-6)
    assert sequential_p_value(control, treatment, 0.05, 1000) == 1.0  # gbstats: pValue 1


def test_sequential_p_value_is_below_alpha_exactly_when_the_sequence_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(10, 3000))
        a, b = rng.normal(0, 1, n), rng.normal(rng.normal(0, 0.1), 1, n)
        c, t = Summary.of(a), Summary.of(b)
        assert (sequential_p_value(c, t, 0.05, 500) < 0.05) == confidence_sequence(c, t, 0.05, 500).excludes(
            0
        )


def _per_user_means(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Users' mean stars over 1-6 ratings each, from a skewed 1-5 distribution."""
    ratings = rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.1, 0.2, 0.35, 0.25], size=(*shape, 6))
    counts = rng.integers(1, 7, size=shape)
    mask = np.arange(6) < counts[..., None]
    return np.asarray((ratings * mask).sum(-1) / counts)


def _monitored_rejections(
    test: Callable[[Summary, Summary], float], experiments: int = 1000, users: int = 2000, every: int = 20
) -> float:
    """Share of A/A experiments (both arms alike) rejected at any look, looking after every
    `every` users per arm from 20 on: continuous monitoring."""
    rng = np.random.default_rng(3)
    a, b = _per_user_means(rng, (experiments, users)), _per_user_means(rng, (experiments, users))
    ca, cb = np.cumsum(a, 1), np.cumsum(b, 1)
    qa, qb = np.cumsum(a**2, 1), np.cumsum(b**2, 1)
    rejected = np.zeros(experiments, dtype=bool)
    for n in range(20, users + 1, every):
        for e in np.flatnonzero(~rejected):
            c = Summary.from_sums(n, ca[e, n - 1], qa[e, n - 1])
            t = Summary.from_sums(n, cb[e, n - 1], qb[e, n - 1])
            rejected[e] = test(c, t) < 0.05
    return float(rejected.mean())


def test_a_a_false_positive_rate_under_continuous_monitoring() -> None:
    """1,000 A/A experiments, looked at 100 times each: the sequential test stops wrongly at
    most alpha + 2 standard errors of the time; the fixed-horizon t-test, peeked at so,
    far more (the reason the sequential test exists)."""
    alpha, experiments = 0.05, 1000
    bound = alpha + 2 * np.sqrt(alpha * (1 - alpha) / experiments)
    sequential = _monitored_rejections(lambda c, t: sequential_p_value(c, t, alpha, 1000), experiments)
    assert sequential <= bound
    peeking = _monitored_rejections(lambda c, t: welch(c, t).p_value, experiments)
    assert peeking > 2 * bound


def test_sample_ratio_mismatch_is_found_on_a_skewed_split_only() -> None:
    rng = np.random.default_rng(4)
    fair = rng.multinomial(10_000, [0.5, 0.3, 0.2])
    assert not sample_ratio(fair, [5, 3, 2]).mismatch
    skewed = rng.multinomial(10_000, [0.53, 0.28, 0.19])
    found = sample_ratio(skewed, [5, 3, 2])
    assert found.mismatch
    ref = stats.chisquare(skewed, np.array([0.5, 0.3, 0.2]) * 10_000)
    assert found.chi2 == pytest.approx(ref.statistic) and found.p_value == pytest.approx(ref.pvalue)


def test_holm_matches_a_worked_example() -> None:
    # sorted p 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> made monotone: 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_power_matches_monte_carlo_and_the_mde_inverts_it() -> None:
    rng = np.random.default_rng(5)
    sims, n, effect = 4000, 50, 0.5
    a, b = rng.normal(0, 1, (sims, n)), rng.normal(effect, 1, (sims, n))
    hits = (stats.ttest_ind(b, a, axis=1).pvalue < 0.05).mean()
    expected = power(effect, 1.0, n)
    assert abs(hits - expected) <= 3 * np.sqrt(expected * (1 - expected) / sims)
    mde = minimum_detectable_effect(1.2, 300, power=0.8)
    assert power(mde, 1.2, 300) == pytest.approx(0.8, abs=1e-6)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert mde == pytest.approx(z * 1.2 * np.sqrt(2 / 300), rel=0.01)  # the normal approximation
    needed = users_needed(0.2, 1.0)
    assert power(0.2, 1.0, needed) >= 0.8 > power(0.2, 1.0, needed - 1)


def test_cuped_slope_is_the_regression_slope_and_reduces_variance() -> None:
    rng = np.random.default_rng(6)
    pre = rng.normal(3.5, 0.8, 4000)
    post = 0.7 * pre + rng.normal(0, 0.5, 4000) + 1.0
    adjusted, theta = cuped(post, pre)
    assert theta == pytest.approx(sm.OLS(post, sm.add_constant(pre)).fit().params[1], rel=1e-9)
    rho2 = np.corrcoef(pre, post)[0, 1] ** 2
    assert adjusted.var() == pytest.approx(post.var() * (1 - rho2), rel=1e-9)
    assert adjusted.mean() == pytest.approx(post.mean())


def test_cuped_keeps_the_difference_unbiased_with_missing_pre_data() -> None:
    """Monte Carlo: over many experiments the adjusted difference averages the true one,
    with a smaller spread than the raw one."""
    rng = np.random.default_rng(7)
    raw, adj = [], []
    for _ in range(600):
        pre = rng.normal(3.5, 0.8, 400)
        arm = np.arange(400) % 2 == 1
        post = 0.8 * pre + rng.normal(0, 0.4, 400) + 0.1 * arm
        pre[rng.random(400) < 0.2] = np.nan  # users new to the product have no history
        adjusted, _ = cuped(post, pre)
        raw.append(post[arm].mean() - post[~arm].mean())
        adj.append(adjusted[arm].mean() - adjusted[~arm].mean())
    assert abs(np.mean(adj) - 0.1) <= 3 * np.std(adj) / np.sqrt(len(adj))
    assert np.std(adj) < 0.7 * np.std(raw)


def test_winsorize_caps_the_top_share_at_the_next_value() -> None:
    values = np.concatenate([np.arange(1.0, 100.0), [10_000.0]])
    capped = winsorize(values, upper=0.01)
    assert capped.max() == 99.0 and capped[:99].tolist() == values[:99].tolist()
