"""Contexts from feature vectors: online clustering whose number of clusters follows the data.

DP-means (Kulis & Jordan, 2012): a point joins the nearest cluster unless every centroid
is farther than `radius`, in which case it opens a new one; centroids are running means.
Distances are measured on features standardised by running statistics, so no scale has
to be known in advance. Assignments depend only on the order of the points, so replaying
the stored contexts rebuilds the same clusters. Our own code: scikit-learn's online
k-means (MiniBatchKMeans) needs the number of clusters up front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ContextClusters"]


class ContextClusters:
    def __init__(self, radius: float = 1.5, transform: str = "log1p") -> None:
        """`radius`: how far (in standard deviations) a point may sit from its cluster."""
        if radius <= 0:
            raise ValueError(f"radius={radius} must be positive")
        self.radius = radius
        self.transform = transform
        self.centroids: list[np.ndarray] = []
        self.sizes: list[int] = []
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def _prepare(self, features: Sequence[float]) -> np.ndarray:
        x = np.asarray(features, dtype=float)
        if x.ndim != 1 or not len(x) or not np.all(np.isfinite(x)):
            raise ValueError("context features must be a non-empty list of finite numbers")
        if self._mean is not None and len(x) != len(self._mean):
            raise ValueError(f"context features have {len(x)} values; this experiment uses {len(self._mean)}")
        # counts and sizes span orders of magnitude: compare them on a log scale
        return np.sign(x) * np.log1p(np.abs(x)) if self.transform == "log1p" else x

    def _scale(self) -> np.ndarray:
        assert self._m2 is not None
        if self._count < 2:
            return np.ones_like(self._m2)
        std = np.sqrt(self._m2 / (self._count - 1))
        return np.where(std > 1e-9, std, 1.0)

    def label_for(self, features: Sequence[float]) -> str:
        """The label `assign` would give these features now, without learning from them."""
        x = self._prepare(features)
        best = self._nearest(x)
        return f"cluster-{len(self.centroids) if best is None else best}"

    def assign(self, features: Sequence[float]) -> str:
        """The cluster label for these features, learning from them (call in event order)."""
        x = self._prepare(features)
        self._observe(x)
        best = self._nearest(x)
        if best is None:
            self.centroids.append(x.copy())
            self.sizes.append(1)
            return f"cluster-{len(self.centroids) - 1}"
        self.sizes[best] += 1
        self.centroids[best] += (x - self.centroids[best]) / self.sizes[best]
        return f"cluster-{best}"

    def _nearest(self, x: np.ndarray) -> int | None:
        """Index of the nearest centroid within `radius`, or None (a new cluster)."""
        if not self.centroids:
            return None
        scale = self._scale() if self._m2 is not None else np.ones_like(x)
        distances = [float(np.linalg.norm((x - c) / scale)) for c in self.centroids]
        best = int(np.argmin(distances))
        return best if distances[best] <= self.radius else None

    def _observe(self, x: np.ndarray) -> None:
        """Welford's running mean and variance of the (transformed) features."""
        if self._mean is None or self._m2 is None:
            self._mean, self._m2 = np.zeros_like(x), np.zeros_like(x)
        self._count += 1
        delta = x - self._mean
        self._mean += delta / self._count
        self._m2 += delta * (x - self._mean)
