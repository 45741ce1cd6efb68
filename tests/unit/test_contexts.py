"""Context clusters over the bundled images' features."""

from __future__ import annotations

import numpy as np
import pytest

from engine.online.contexts import ContextClusters
from objectives.vectorize import Vectorize

KEYS = ("colors", "edge_density", "entropy", "width", "height")


@pytest.fixture(scope="module")
def features() -> list[list[float]]:
    return [[f[k] for k in KEYS] for f in Vectorize(max_side=128).features()]


def stream(
    features: list[list[float]], repeats: int = 5, jitter: float = 0.01
) -> list[tuple[int, list[float]]]:
    """Each image several times, slightly perturbed, in a seeded shuffled order."""
    rng = np.random.default_rng(0)
    items = [
        (i, list(np.asarray(f) * (1 + rng.normal(0, jitter, len(f))))) for i, f in enumerate(features)
    ] * repeats
    order = rng.permutation(len(items))
    return [items[j] for j in order]


def test_bundled_images_form_at_least_four_clusters_and_repeats_stay_put(features: list[list[float]]) -> None:
    clusters = ContextClusters()
    labels: dict[int, set[str]] = {}
    for image, f in stream(features):
        labels.setdefault(image, set()).add(clusters.assign(f))
    distinct = {label for ls in labels.values() for label in ls}
    assert 4 <= len(distinct) < len(features)
    stable = sum(len(ls) == 1 for ls in labels.values())
    assert stable >= len(features) - 1, labels  # an image's copies share one cluster


def test_replay_in_the_same_order_gives_the_same_labels(features: list[list[float]]) -> None:
    items = stream(features)
    first, second = ContextClusters(), ContextClusters()
    assert [first.assign(f) for _, f in items] == [second.assign(f) for _, f in items]


def test_bad_features_are_clear_errors() -> None:
    clusters = ContextClusters()
    clusters.assign([1.0, 2.0])
    for bad in ([], [1.0, float("nan")], [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match="features"):
            clusters.assign(bad)
    with pytest.raises(ValueError, match="radius"):
        ContextClusters(radius=0)
