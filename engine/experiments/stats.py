"""The statistics of an A/B test, as pure functions over summary statistics or samples.

The unit of analysis is the user, the unit of randomisation: each user contributes one
value (their mean rating, say), so users' many ratings do not pass for independent
samples. SciPy and statsmodels do what they have (the t distribution, chi-square, Holm,
power, winsorising); the rest is written here after its source, as GrowthBook's gbstats
is, so each is cross-checked in tests/unit/test_ab_stats.py:

- the relative lift's variance by the delta method (gbstats' `TTest.variance`);
- the probability to beat control and the expected loss under a flat prior, from the
  normal posterior of the difference (the closed forms of E[max(0, -D)]);
- the sequential test: the asymptotic confidence sequence of Waudby-Smith et al. (2023,
  "Time-uniform central limit theory and asymptotic confidence sequences", eq. 9, with
  the mixing parameter of eq. 161), which GrowthBook also uses; no maintained Python
  package computes it (confseq needs C++ and is early-stage);
- CUPED (Deng et al. 2013): the pre-experiment covariate's pooled regression slope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.stats import mstats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

__all__ = [
    "SRM_P_THRESHOLD",
    "Interval",
    "Lift",
    "SampleRatio",
    "Summary",
    "Welch",
    "cohens_d",
    "confidence_sequence",
    "cuped",
    "expected_loss",
    "holm",
    "lift",
    "minimum_detectable_effect",
    "power",
    "prob_beat_control",
    "sample_ratio",
    "sequential_p_value",
    "users_needed",
    "welch",
    "winsorize",
]

SRM_P_THRESHOLD = 0.001  # GrowthBook's and Statsig's default: a mismatch this unlikely is a bug


@dataclass(frozen=True)
class Summary:
    """n values' mean and sample variance (ddof 1)."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Summary:
        v = np.asarray(values, dtype=float)
        return cls(
            len(v),
            float(v.mean()) if len(v) else float("nan"),
            float(v.var(ddof=1)) if len(v) > 1 else float("nan"),
        )

    @classmethod
    def from_sums(cls, n: int, total: float, squares: float) -> Summary:
        """From a count, a sum and a sum of squares (what a store aggregates)."""
        mean = total / n
        return cls(n, mean, (squares - n * mean**2) / (n - 1) if n > 1 else float("nan"))

    @property
    def se2(self) -> float:
        """The squared standard error of the mean."""
        return self.var / self.n


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of treatment - control."""

    difference: float
    se: float
    df: float
    t: float
    p_value: float


@dataclass(frozen=True)
class Lift:
    absolute: float
    absolute_ci: Interval
    relative: float  # (treatment - control) / control
    relative_ci: Interval
    relative_se: float


@dataclass(frozen=True)
class SampleRatio:
    """Observed against expected assignment counts (chi-square goodness of fit)."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P_THRESHOLD


def welch(control: Summary, treatment: Summary) -> Welch:
    """The t-test SciPy's `ttest_ind(equal_var=False)` computes, from summaries."""
    a, b = control.se2, treatment.se2
    se = float(np.sqrt(a + b))
    df = (a + b) ** 2 / (a**2 / (control.n - 1) + b**2 / (treatment.n - 1))
    diff = treatment.mean - control.mean
    t = diff / se
    return Welch(diff, se, float(df), t, float(2 * stats.t.sf(abs(t), df)))


def lift(control: Summary, treatment: Summary, confidence: float = 0.95) -> Lift:
    """The absolute lift with Welch's interval, the relative one by the delta method."""
    w = welch(control, treatment)
    q = float(stats.t.ppf(0.5 + confidence / 2, w.df))
    relative = w.difference / control.mean
    rel_var = treatment.se2 / control.mean**2 + control.se2 * treatment.mean**2 / control.mean**4
    rel_se = float(np.sqrt(rel_var))
    return Lift(
        w.difference,
        Interval(w.difference - q * w.se, w.difference + q * w.se),
        relative,
        Interval(relative - q * rel_se, relative + q * rel_se),
        rel_se,
    )


def cohens_d(control: Summary, treatment: Summary) -> float:
    """The difference in units of the pooled standard deviation."""
    pooled = ((control.n - 1) * control.var + (treatment.n - 1) * treatment.var) / (
        control.n + treatment.n - 2
    )
    return (treatment.mean - control.mean) / float(np.sqrt(pooled))


def prob_beat_control(control: Summary, treatment: Summary) -> float:
    """P(treatment's mean > control's) under a flat prior: the difference's posterior is
    normal with the Welch standard error."""
    diff = treatment.mean - control.mean
    return float(stats.norm.cdf(diff / np.sqrt(control.se2 + treatment.se2)))


def expected_loss(control: Summary, treatment: Summary) -> float:
    """E[max(0, control - treatment)]: what choosing the treatment costs, on average over
    the posterior, when it is in fact worse (in the metric's units)."""
    mu = treatment.mean - control.mean
    sd = float(np.sqrt(control.se2 + treatment.se2))
    return float(sd * stats.norm.pdf(mu / sd) - mu * stats.norm.cdf(-mu / sd))


def _rho(alpha: float, tuning: float) -> float:
    """The mixing parameter that makes the sequence tightest near `tuning` observations
    (Waudby-Smith et al. 2023, eq. 161)."""
    la = -2 * np.log(alpha)
    return float(np.sqrt((la + np.log(la + 1)) / tuning))


def _estimate(control: Summary, treatment: Summary, relative: bool) -> tuple[float, float, int]:
    """The difference (or relative lift), its per-observation variance, and n: the
    sequence's terms for a two-sample estimate whose squared SE is s2 / n."""
    n = control.n + treatment.n
    if relative:
        found = lift(control, treatment)
        return found.relative, found.relative_se**2 * n, n
    return treatment.mean - control.mean, (control.se2 + treatment.se2) * n, n


def confidence_sequence(
    control: Summary,
    treatment: Summary,
    alpha: float = 0.05,
    tuning: float = 1000.0,
    relative: bool = False,
) -> Interval:
    """A (1 - alpha) interval for treatment - control (or the relative lift) that holds at
    every look at once: stopping when it excludes 0, whenever that happens, keeps the error
    rate at alpha. `tuning`: the total users at which it is tightest (GrowthBook's
    sequential tuning parameter)."""
    estimate, s2, n = _estimate(control, treatment, relative)
    rho2 = _rho(alpha, tuning) ** 2
    half = np.sqrt(s2 * 2 * (n * rho2 + 1) * np.log(np.sqrt(n * rho2 + 1) / alpha) / (n**2 * rho2))
    return Interval(estimate - float(half), estimate + float(half))


def sequential_p_value(
    control: Summary, treatment: Summary, alpha: float = 0.05, tuning: float = 1000.0
) -> float:
    """The smallest level whose confidence sequence (mixing parameter fixed at `alpha`'s)
    excludes 0: below `alpha` exactly when `confidence_sequence` excludes 0, and valid under
    continuous monitoring, so Holm's correction may take it."""
    diff, s2, n = _estimate(control, treatment, relative=False)
    rho2 = _rho(alpha, tuning) ** 2
    log_p = 0.5 * np.log(n * rho2 + 1) - diff**2 * n**2 * rho2 / (2 * s2 * (n * rho2 + 1))
    return float(min(1.0, np.exp(log_p)))


def sample_ratio(observed: Sequence[int] | np.ndarray, expected_shares: Sequence[float]) -> SampleRatio:
    """Chi-square test of assignment counts against the shares the allocation meant
    (fixed weights, or the sum of each user's assignment probabilities under a bandit)."""
    obs = np.asarray(observed, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    expected = shares / shares.sum() * obs.sum()
    result = stats.chisquare(obs, expected)
    return SampleRatio(
        tuple(int(o) for o in obs),
        tuple(float(e) for e in expected),
        float(result.statistic),
        float(result.pvalue),
    )


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels), for several variants against one control."""
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), alpha=alpha, method="holm")[1]]


def power(effect: float, sd: float, n_per_arm: float, alpha: float = 0.05) -> float:
    """The chance a two-sided two-sample t-test at `alpha` detects a true difference
    `effect` between arms of `n_per_arm` users each (statsmodels)."""
    return float(TTestIndPower().power(effect_size=effect / sd, nobs1=n_per_arm, alpha=alpha, ratio=1.0))


def minimum_detectable_effect(sd: float, n_per_arm: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference detected with probability `power` (statsmodels)."""
    d = TTestIndPower().solve_power(nobs1=n_per_arm, alpha=alpha, power=power, ratio=1.0)
    return float(np.ravel(d)[0]) * sd  # statsmodels answers with a scalar or a 1-element array


def users_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm for a two-sided t-test at `alpha` to detect `effect` with `power`."""
    n = TTestIndPower().solve_power(effect_size=effect / sd, alpha=alpha, power=power, ratio=1.0)
    return int(np.ceil(np.ravel(n)[0]))


def cuped(post: np.ndarray, pre: np.ndarray) -> tuple[np.ndarray, float]:
    """Each user's metric less theta x their pre-experiment covariate's deviation from its
    mean (Deng et al. 2013); theta is the slope of post on pre, pooled over every arm, so
    the adjustment is the same for all and leaves the difference unbiased. Users without
    a pre-experiment value (NaN) are left as they are. Returns the values and theta."""
    post, pre = np.asarray(post, dtype=float), np.asarray(pre, dtype=float)
    has = ~np.isnan(pre)
    if has.sum() < 2 or np.var(pre[has]) == 0:
        return post.copy(), 0.0
    x, y = pre[has], post[has]
    theta = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1))
    adjusted = post.copy()
    adjusted[has] = y - theta * (x - x.mean())
    return adjusted, theta


def winsorize(values: np.ndarray, upper: float = 0.01, lower: float = 0.0) -> np.ndarray:
    """The `upper` share of the largest values set to the largest one left (and `lower`
    of the smallest), so a few extreme latencies cannot dominate a mean (SciPy's
    `mstats.winsorize`). Apply it to every arm's values pooled, so all share one cap."""
    capped = mstats.winsorize(np.asarray(values, dtype=float), limits=(lower, upper))
    return np.asarray(capped.filled(np.nan), dtype=float)
