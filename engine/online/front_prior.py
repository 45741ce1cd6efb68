"""The offline exploration's measurements as the online model's starting point.

When an experiment has published trials (`frontier explore --store`), each metric's score
(`rewards.metric_score`: the same term a measured metric adds to a reward online) is
regressed on the population model's features: Bayesian linear regression, its signal and
noise variances fitted per metric by marginal likelihood (empirical Bayes; a metric
measured with little noise, like SSIM, fits its trials closely, a noisy one, like time,
smoothly). A utility under preference weights is the weighted mean of those surfaces, so

- the global model's prior mean is the surface under the experiment's weights, each
  metric's surface scaled by how many reward units the ratings say its score is worth
  (marginal likelihood, `PopulationModel._fit_scales`: an SSIM score and stars differ in
  units): before any rating, every context starts at the front's point the experiment
  prefers;
- a user with their own weights has their prior mean moved by the surface under theirs
  minus the experiment's, at the same scales: before their first rating, a user who
  weighs speed starts at the front's fast settings, one who weighs quality at its
  faithful ones.

Scores are measured from the trials' worst: away from every trial the surface falls back
to the worst value measured, so settings the exploration never tried are not presumed
average (an exploration goes where it looks promising). The published settings are also
candidates for every user, so the front's own points can be suggested as they are. The
offline metrics say which settings are better than which, not how many stars people give:
the population levels learn that. Our own code: no library fits a prior mean in a given
random-feature space. See docs/online-model.md, 'The offline front as the prior'.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from engine.online.encoding import Encoding
from engine.online.features import RandomFourierFeatures
from engine.online.rewards import metric_score
from engine.spec import MetricSpec

__all__ = ["Front", "FrontPrior"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Front:
    """Published trials (each with `params`, `metrics` and `status`), the experiment's
    metrics and its preference weights."""

    trials: Sequence[Mapping[str, Any]]
    metrics: Sequence[MetricSpec]
    weights: Mapping[str, float]


class FrontPrior:
    """Per metric, the posterior mean weights of its score above the trials' worst, on the
    model's features; and the trials' settings as candidates."""

    def __init__(self, front: Front, encoding: Encoding, features: RandomFourierFeatures) -> None:
        rows, points, scores, encoded = [], [], [], []
        for trial in front.trials:
            measured = trial.get("metrics") or {}
            if trial.get("status") == "failed" or not all(
                _finite(measured.get(m.name)) for m in front.metrics
            ):
                continue
            try:
                x, arm = encoding.encode(trial["params"])
            except (KeyError, ValueError, TypeError):
                continue  # explored in another space: says nothing of this one
            rows.append(features(x, arm))
            encoded.append((x, arm))
            points.append(trial["params"])
            scores.append([metric_score(float(measured[m.name]), m) for m in front.metrics])
        skipped = len(front.trials) - len(rows)
        if skipped:
            log.info(
                "front prior: %d of %d published trials skipped (failed or not in this space)",
                skipped,
                len(front.trials),
            )
        self.names = [m.name for m in front.metrics]
        self.base = self.coefficients(front.weights)
        self.trials = points
        # the trials' settings, in the unit cube and their arms: candidates for every user
        self.x = np.array([x for x, _ in encoded]).reshape(len(encoded), len(encoding.continuous))
        self.arms = np.array([arm for _, arm in encoded], dtype=int)
        self.scores = np.array(scores, dtype=float).reshape(len(points), len(self.names))
        self.metric_weights = np.zeros((len(self.names), features.size))
        if points:
            phi = np.array(rows)
            above_worst = self.scores - self.scores.min(0)
            self.metric_weights = np.array([_posterior_mean(phi, y) for y in above_worst.T])

    def __len__(self) -> int:
        return len(self.trials)

    def coefficients(self, weights: Mapping[str, float]) -> np.ndarray:
        """Weights over the metrics, normalised as `rewards.utility` does."""
        w = np.array([float(weights.get(name, 0.0)) for name in self.names])
        return w / w.sum()

    def basis(self) -> np.ndarray:
        """The global model's prior basis (features x metrics): each metric's surface
        times its weight under the experiment's preference; the model scales each column
        to the ratings (`PopulationModel._fit_scales`)."""
        return (self.metric_weights * self.base[:, None]).T

    def shift(self, preference: Mapping[str, float], scales: np.ndarray) -> np.ndarray:
        """Feature weights of the utility surface under `preference` minus the one under
        the experiment's, each metric's surface at the scale the ratings gave it."""
        return ((self.coefficients(preference) - self.base) * scales) @ self.metric_weights

    def preferred(self, preference: Mapping[str, float] | None = None) -> dict[str, Any] | None:
        """The published settings of highest utility under `preference`: a point of the front."""
        if not self.trials:
            return None
        c = self.base if preference is None else self.coefficients(preference)
        return dict(self.trials[int(np.argmax(self.scores @ c))])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _posterior_mean(phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Posterior mean weights of y ~ phi w + noise, w ~ N(0, signal I), with the signal and
    noise variances maximising the marginal likelihood (one eigendecomposition of
    phi phi^T, then each evaluation is O(n))."""
    eigvals, eigvecs = np.linalg.eigh(phi @ phi.T)
    eigvals = np.clip(eigvals, 0.0, None)
    projected = eigvecs.T @ y

    def negative_log_likelihood(log_vars: np.ndarray) -> float:
        signal, noise = np.exp(log_vars)
        total = signal * eigvals + noise
        return 0.5 * float(projected**2 @ (1 / total) + np.log(total).sum())

    spread = max(float(y.var()), 1e-12)
    start = np.log([spread / max(float(eigvals.mean()), 1e-12), spread / 10])
    bounds = [(math.log(spread) - 20, math.log(spread) + 10), (math.log(spread) - 20, math.log(spread) + 2)]
    signal, noise = np.exp(minimize(negative_log_likelihood, start, bounds=bounds, method="L-BFGS-B").x)
    alpha = eigvecs @ (projected / (signal * eigvals + noise))
    return signal * (phi.T @ alpha)
