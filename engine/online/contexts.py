"""Contexts from feature vectors: online clustering whose number of clusters follows the data.

DP-means (Kulis & Jordan, 2012): a point joins the nearest cluster unless every centroid
is farther than `radius`, in which case it opens a new one; centroids are running means.
Distances are measured on features standardised by running statistics, so no scale has
to be known in advance. Assignments depend only on the order of the points, so replaying
the stored contexts rebuilds the same clusters. A cluster is named after the point that
opened it (a hash of its features), so replicas that each open a cluster before they
have read the other's never give one name to two different clusters. Our own code:
scikit-learn's online k-means (MiniBatchKMeans) needs the number of clusters up front.
Where contexts sit in the online model: docs/online-model.md, "Levels".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["ContextClusters"]


class ContextClusters:
    def __init__(
        self,
        radius: float = 1.5,
        transform: str = "log1p",
        max_clusters: int = 256,
        features: int | None = None,
    ) -> None:
        """`radius`: how far (in standard deviations) a point may sit from its cluster;
        beyond `max_clusters` clusters, a point joins the nearest one however far;
        `features`: the vectors' length (None: the first vector's)."""
        if radius <= 0:
            raise ValueError(f"radius={radius} must be positive")
        self.radius = radius
        self.transform = transform
        self.max_clusters = max_clusters
        self.features = features
        self.centroids = np.zeros((0, 0))
        self.labels: list[str] = []
        self.sizes: list[int] = []
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def _prepare(self, features: Sequence[float]) -> np.ndarray:
        x = np.asarray(features, dtype=float)
        if x.ndim != 1 or not len(x) or not np.all(np.isfinite(x)):
            raise ValueError("context features must be a non-empty list of finite numbers")
        expected = self.features or (len(self._mean) if self._mean is not None else len(x))
        if len(x) != expected:
            raise ValueError(f"context features have {len(x)} values; this experiment uses {expected}")
        # counts and sizes span orders of magnitude: compare them on a log scale
        return np.sign(x) * np.log1p(np.abs(x)) if self.transform == "log1p" else x

    def _scale(self, x: np.ndarray) -> np.ndarray:
        if self._m2 is None or self._count < 2:
            return np.ones_like(x)
        std = np.sqrt(self._m2 / (self._count - 1))
        return np.where(std > 1e-9, std, 1.0)

    def label_for(self, features: Sequence[float]) -> str:
        """The label `assign` would give these features now, without learning from them."""
        x = self._prepare(features)
        best = self._nearest(x)
        return _name(features) if best is None else self.labels[best]

    def assign(self, features: Sequence[float]) -> str:
        """The cluster label for these features, learning from them (call in event order)."""
        x = self._prepare(features)
        self._observe(x)
        best = self._nearest(x)
        if best is None:
            self.centroids = np.vstack([self.centroids.reshape(-1, len(x)), x])
            self.labels.append(_name(features))
            self.sizes.append(1)
            return self.labels[-1]
        self.sizes[best] += 1
        self.centroids[best] += (x - self.centroids[best]) / self.sizes[best]
        return self.labels[best]

    def _nearest(self, x: np.ndarray) -> int | None:
        """Index of the nearest centroid within `radius` (any, when full), or None (a new cluster)."""
        if not self.labels:
            return None
        distances = np.linalg.norm((self.centroids - x) / self._scale(x), axis=1)
        best = int(np.argmin(distances))
        full = len(self.labels) >= self.max_clusters
        return best if full or distances[best] <= self.radius else None

    def _observe(self, x: np.ndarray) -> None:
        """Welford's running mean and variance of the (transformed) features."""
        if self._mean is None or self._m2 is None:
            self._mean, self._m2 = np.zeros_like(x), np.zeros_like(x)
        self._count += 1
        delta = x - self._mean
        self._mean += delta / self._count
        self._m2 += delta * (x - self._mean)


def _name(features: Sequence[float]) -> str:
    """A cluster's name: that of the point that opens it, as sent. Not of its transform:
    log1p's last bit differs between CPUs (seen 2026-12-07), and replicas on different
    machines must name a cluster alike."""
    return (
        "cluster-" + hashlib.blake2b(np.asarray(features, dtype=float).tobytes(), digest_size=4).hexdigest()
    )
