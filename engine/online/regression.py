"""Bayesian linear regression for the global and context levels, refitted at counts fixed by the data.

See docs/online-model.md, 'Global and context levels' and 'Memory and replay'.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsymm, dsymv, dsyrk
from scipy.optimize import minimize

from engine.online.priors import Priors

__all__ = ["PopulationModel"]

_FOLD_ROWS = 32  # ratings buffered before they enter a population model's precision matrix
_HYPER_SD = 1.0  # sd of the log-normal hyperpriors on the noise and weight scale, around the defaults


def _epoch(count: int) -> int:
    """Which refit a model with `count` ratings is at: one per rating up to 10, then one
    each time the data grows by a tenth."""
    return count if count <= 10 else 10 + int(math.log(count / 10) / math.log(1.1))


class PopulationModel:
    """Bayesian linear regression of calibrated rewards on a point's features (the global
    and context levels of docs/online-model.md).

    Weights ~ N(prior mean, weight_scale^2 I), rewards = features . weights +
    N(0, population_noise^2), both variances fitted to the global model's ratings by
    marginal likelihood at its refits once the data has doubled (`_fit_variances`; its
    contexts use them); only the posterior mean of the weights is used. The global
    model's prior mean is 0, or the offline front's utility surface when the experiment
    has one (engine/online/front_prior.py). A context's is the global model fitted
    without the context's own ratings (so no rating counts twice), its shape scaled by a
    pull in [0, 1] fitted by marginal likelihood on the context's ratings (empirical
    Bayes, closed form; see `_pulled`): contexts whose users like what other contexts like
    keep the global shape, contexts that disagree drop it, and a context without ratings
    starts from it (pull 1).

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

    def __init__(
        self,
        size: int,
        priors: Priors,
        parent: PopulationModel | None = None,
        constants: int = 0,
        prior_basis: np.ndarray | None = None,
    ) -> None:
        """`constants`: how many trailing features are constants (an arm's level): a
        context inherits them from the global model whole, and the pull scales the rest.
        `prior_basis` (size x k): the global model's prior mean is its columns times scales
        fitted by marginal likelihood (0 without one; an offline front gives one per
        metric, engine/online/front_prior.py); a context's is the global model's weights."""
        self.precision = np.zeros((size, size), order="F")  # upper triangle only (BLAS syrk)
        self.target = np.zeros(size)
        self.squares = 0.0  # sum of the folded rewards' squares (the marginal likelihood needs it)
        self.folded = 0
        self.fitted_on = 0  # ratings folded at the last fit of the noise and weight scale
        self.count = 0
        self.defaults = priors
        # a root's noise and weight scale, refitted by marginal likelihood once its data has
        # doubled (`_fit_variances`); its children use the root's
        self.priors = priors
        self.parent = parent
        self.children: list[PopulationModel] = []
        if parent is not None:
            parent.children.append(self)
        self._rows: np.ndarray | None = None  # buffered features, allocated at the first add
        self._rewards = np.zeros(_FOLD_ROWS)
        self._buffered = 0
        # one array per refit, so what is derived from it can be cached on its identity
        self.prior_basis = np.zeros((size, 0)) if prior_basis is None else prior_basis
        self.scales = np.ones(self.prior_basis.shape[1])  # fitted at each solve with data
        self.prior_mean = self.prior_basis.sum(1)
        self._weights = self.prior_mean if parent is None else None
        self._stale = False  # the parent refitted since this model's last solve
        self.constants = constants
        self.pull = 1.0  # how much of the global shape this context keeps (fitted at each solve)
        # the global model's folded data at its last refit (kept by a model with children)
        self._snapshot: tuple[np.ndarray, np.ndarray] | None = None
        self.refits = 0
        self.in_snapshot = 0  # how many of this model's ratings the parent's snapshot holds
        self._held_out: np.ndarray | None = None  # the parent's weights without this model's data

    def add(self, phi: np.ndarray, reward: float) -> None:
        if self._rows is None:
            self._rows = np.empty((_FOLD_ROWS, len(self.target)))
        self._rows[self._buffered] = phi
        self._rewards[self._buffered] = reward
        self._buffered += 1
        self.count += 1
        if _epoch(self.count) != _epoch(self.count - 1):
            self.refit()
        elif self._buffered == _FOLD_ROWS:
            if self._stale:  # the solve owed since the parent's refit, on the data it saw
                self._solve()
            self._held_out_weights()
            self._fold()

    def refit(self) -> None:
        """Fold every rating in and solve for the weights now (it happens by itself at
        counts fixed by the data)."""
        self._held_out_weights()  # while this model's data is still what the parent's snapshot saw
        self._fold()
        self._solve()

    def replay(self, rows: np.ndarray, rewards: np.ndarray, in_snapshot: int) -> None:
        """A dropped model's ratings again, in their order, solved once at the end; the
        first `in_snapshot` of them were in the parent's data at its last refit."""
        self.in_snapshot, self._held_out = in_snapshot, None
        self._accumulate(rows[:in_snapshot], rewards[:in_snapshot])
        self._held_out_weights()
        self._accumulate(rows[in_snapshot:], rewards[in_snapshot:])
        self.count = len(rewards)
        self._solve()

    def _accumulate(self, rows: np.ndarray, rewards: np.ndarray) -> None:
        if len(rows):
            self.precision = dsyrk(1.0, rows.T, beta=1.0, c=self.precision, overwrite_c=True)
            self.target += rows.T @ rewards
            self.squares += float(rewards @ rewards)
            self.folded += len(rewards)

    def weights(self) -> np.ndarray:
        """Posterior mean weights as of the last refit (the parent's before any data)."""
        if self._stale:
            self._solve()
        if self._weights is None:
            assert self.parent is not None  # a root starts at its prior mean
            return self.parent.weights()
        return self._weights

    def _fold(self) -> None:
        if self._rows is not None and self._buffered:
            self._accumulate(self._rows[: self._buffered], self._rewards[: self._buffered])
            self._buffered = 0

    def variances(self) -> tuple[float, float]:
        """Rating noise and weight prior variances in force: the global model's, fitted."""
        fitted = (self if self.parent is None else self.parent).priors
        return fitted.population_noise**2, fitted.weight_scale**2

    def _held_out_weights(self) -> np.ndarray | None:
        """The parent's weights fitted without this model's ratings (None for the global
        model): from the parent's snapshot at its last refit minus this model's data as it
        was then, so it must be read before this model folds again (it is cached)."""
        if self.parent is None:
            return None
        if self._held_out is None:
            snapshot = self.parent._snapshot
            if not self.in_snapshot or snapshot is None:
                # the parent has not refitted since this model's first rating
                self._held_out = self.parent.weights()
            else:
                precision, target = snapshot
                s2, t2 = self.variances()
                a = (precision - self.precision) / s2
                a[np.diag_indices_from(a)] += 1 / t2
                factor = cho_factor(a, overwrite_a=True)  # upper triangles, like the matrices
                own_prior = self.parent.prior_mean / t2
                self._held_out = cho_solve(factor, (target - self.target) / s2 + own_prior)
        return self._held_out

    def _solve(self) -> None:
        if self.parent is None and self.folded and self.folded >= 2 * self.fitted_on:
            self._fit_variances()
        s2, t2 = self.variances()
        a = self.precision / s2  # Fortran order like LAPACK's: factorised in place
        a[np.diag_indices_from(a)] += 1 / t2
        factor = cho_factor(a, overwrite_a=True)
        prior = self._held_out_weights()
        if prior is None:
            if self.count and self.scales.size:
                self._fit_scales(factor)
            prior = self.prior_mean
        elif self.count:
            prior = self._pulled(prior, factor)
        self._weights = cho_solve(factor, self.target / s2 + prior / t2)
        self._stale = False
        self.refits += 1
        if self.children:
            self._snapshot = (self.precision.copy(order="F"), self.target.copy())
        for child in self.children:  # their prior moved: they refit, solving when next needed
            if child.count:
                child._fold()
                child._stale = True
                child.in_snapshot = child.count
                child._held_out = None

    def _fit_variances(self) -> None:
        """The global model's rating noise and weight scale by marginal likelihood (type-II
        MAP, log-normal hyperpriors of sd _HYPER_SD around the defaults, so a model with few
        ratings keeps them). Rewards r = y - F m are N(0, s^2 I + t^2 F F^T); with
        F^T F = V diag(l) V^T, z = V^T F^T r and c = s^2 / t^2,
        -2 log p = (r.r - sum z^2 / (c + l)) / s^2 + n log s^2 + sum log(1 + l / c),
        O(size) per evaluation (and its gradient) after one eigendecomposition, which costs
        several Cholesky factorisations (0.2 s at 1,260 features, one thread): so it runs
        only when the data has doubled since the last fit, log2(ratings) times in all."""
        eigvals, eigvecs = np.linalg.eigh(self.precision, UPLO="U")
        eigvals = np.clip(eigvals, 0.0, None)
        m = self.prior_mean
        pm = dsymv(1.0, self.precision, m)
        rr = max(self.squares - 2 * m @ self.target + m @ pm, 0.0)
        z2 = (eigvecs.T @ (self.target - pm)) ** 2
        n = self.folded
        centre = np.log([self.defaults.population_noise, self.defaults.weight_scale])

        def objective(log_sd: np.ndarray) -> tuple[float, np.ndarray]:
            u, v = 2 * log_sd  # log s^2, log t^2
            c = math.exp(u - v)
            g = 1 / (c + eigvals)
            fitted = float(z2 @ g)
            quad = (rr - fitted) * math.exp(-u)
            curvature = float(z2 @ g**2) * c * math.exp(-u)
            spread = float(eigvals @ g)
            value = 0.5 * (quad + n * u + float(np.log1p(eigvals / c).sum()))
            d_u = 0.5 * (-quad + curvature + n - spread)
            d_v = 0.5 * (-curvature + spread)
            off = (log_sd - centre) / _HYPER_SD**2
            value += 0.5 * float((log_sd - centre) @ off)
            return value, 2 * np.array([d_u, d_v]) + off

        low, high = centre - 4 * _HYPER_SD, centre + 4 * _HYPER_SD
        x = minimize(
            objective, centre, jac=True, method="L-BFGS-B", bounds=list(zip(low, high, strict=True))
        ).x
        # Newton steps on the exact gradient (Hessian by central differences): a stopping
        # rule on function values leaves x off by ~1e-8, which ratings equal to rounding
        # would turn into replicas that disagree
        for _ in range(3):
            step = 1e-5 * np.eye(2)
            hessian = np.array([(objective(x + h)[1] - objective(x - h)[1]) / 2e-5 for h in step])
            newton = np.clip(x - np.linalg.solve(hessian, objective(x)[1]), low, high)
            if not np.isfinite(newton).all():
                break
            x = newton
        noise, scale = np.exp(x)
        self.fitted_on = n
        self.priors = replace(self.priors, population_noise=float(noise), weight_scale=float(scale))

    def _fit_scales(self, factor: tuple[np.ndarray, bool]) -> None:
        """The prior basis' scales by marginal likelihood, as `_pulled` fits the pull: the
        rewards are N(F B scales, s^2 I + t^2 F F^T), Gaussian in the scales, so with a
        N(1, I) prior their most likely value solves a k x k system (clipped at 0).
        An offline metric's scale says how many reward units its score is worth in
        ratings: a column the ratings say nothing of keeps scale 1."""
        s2 = self.variances()[0]
        basis = self.prior_basis
        rows = dsymm(1.0, self.precision, basis)  # F^T F B (upper triangle stored)
        solved = cho_solve(factor, rows)
        gram = (basis.T @ rows - rows.T @ solved / s2) / s2
        moment = (basis.T @ self.target - solved.T @ self.target / s2) / s2
        scales = np.linalg.solve(gram + np.eye(len(gram)), moment + 1.0)
        self.scales = np.clip(scales, 0.0, None)
        self.prior_mean = basis @ self.scales

    def _pulled(self, held_out: np.ndarray, factor: tuple[np.ndarray, bool]) -> np.ndarray:
        """The prior mean: the held-out weights' constants, plus their shape times the pull.

        Rewards y of this model's ratings (features F) are, with the weights integrated
        out, N(F (level + pull shape), s^2 I + t^2 F F^T): Gaussian in the pull, so its
        maximum-likelihood value is a ratio of two quadratic forms, computed in feature
        space through Woodbury's identity with the factor of F^T F / s^2 + I / t^2 that
        the solve needs anyway. A N(1, 1) prior on the pull keeps a context with few
        ratings near the global shape; the result is clipped to [0, 1].
        """
        s2 = self.variances()[0]
        level = np.zeros_like(held_out)
        if self.constants:
            level[-self.constants :] = held_out[-self.constants :]
        shape = held_out - level
        rows_shape = dsymv(1.0, self.precision, shape)  # F^T F shape (upper triangle stored)
        rows_rest = self.target - dsymv(1.0, self.precision, level)  # F^T (y - F level)
        solved = cho_solve(factor, rows_shape)
        num = (shape @ rows_rest - solved @ rows_rest / s2) / s2
        den = (shape @ rows_shape - solved @ rows_shape / s2) / s2
        self.pull = float(np.clip((num + 1.0) / (den + 1.0), 0.0, 1.0))
        return level + self.pull * shape
