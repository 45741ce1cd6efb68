"""Bayesian linear regression for the global and context levels, refitted at counts fixed by the data.

See docs/online-model.md, 'Global and context levels' and 'Memory and replay'.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsyrk

from engine.online.priors import Priors

__all__ = ["PopulationModel"]

_FOLD_ROWS = 32  # ratings buffered before they enter a population model's precision matrix


def _epoch(count: int) -> int:
    """Which refit a model with `count` ratings is at: one per rating up to 10, then one
    each time the data grows by a tenth."""
    return count if count <= 10 else 10 + int(math.log(count / 10) / math.log(1.1))


class PopulationModel:
    """Bayesian linear regression of calibrated rewards on a point's features (the global
    and context levels of docs/online-model.md).

    Weights ~ N(the parent's weights, weight_scale^2 I) (N(0, ...) for the global model),
    rewards = features . weights + N(0, population_noise^2); only the posterior mean of
    the weights is used.

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
            self.refit()
        elif self._buffered == _FOLD_ROWS:
            if self._stale:  # the solve owed since the parent's refit, on the data it saw
                self._solve()
            self._fold()

    def refit(self) -> None:
        """Fold every rating in and solve for the weights now (it happens by itself at
        counts fixed by the data; a rebuilt model asks for it once at its end)."""
        self._fold()
        self._solve()

    def weights(self) -> np.ndarray:
        """Posterior mean weights as of the last refit (the parent's before any data)."""
        if self._stale:
            self._solve()
        if self._weights is None:
            assert self.parent is not None  # a root starts at zero weights
            return self.parent.weights()
        return self._weights

    def _fold(self) -> None:
        if self._rows is not None and self._buffered:
            rows = self._rows[: self._buffered]
            self.precision = dsyrk(1.0, rows.T, beta=1.0, c=self.precision, overwrite_c=True)
            self.target += rows.T @ self._rewards[: self._buffered]
            self._buffered = 0

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
