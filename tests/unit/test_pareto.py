"""Pareto tools against hand-checkable fronts and SciPy/pymoo-free brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from engine.offline.pareto import front, hypervolume, hypervolume_history, knee, select_by_weights
from engine.spec import MetricSpec

QUALITY = MetricSpec.model_validate(
    {"name": "quality", "direction": "max", "reference": 0.0, "constraint": ">= 0.5"}
)
SPEED = MetricSpec(name="speed", direction="min", reference=100.0)
METRICS = [QUALITY, SPEED]


def table(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "metric.quality": [r[0] for r in rows],
            "metric.speed": [r[1] for r in rows],
            "status": [r[2] for r in rows],
        }
    )


def test_front_respects_directions_constraints_and_failures() -> None:
    trials = table(
        [
            (0.9, 50.0, "completed"),  # front
            (0.8, 20.0, "completed"),  # front
            (0.8, 30.0, "completed"),  # dominated by the one above
            (0.99, 10.0, "failed"),  # would dominate everything, but failed
            (0.4, 1.0, "completed"),  # violates quality >= 0.5
            (0.6, 5.0, "completed"),  # front
        ]
    )
    assert sorted(front(trials, METRICS).index) == [0, 1, 5]


def test_hypervolume_matches_the_rectangles() -> None:
    # minimised: (-0.9, 50), (-0.8, 20), (-0.6, 5) against ref (0, 100)
    trials = table([(0.9, 50.0, "completed"), (0.8, 20.0, "completed"), (0.6, 5.0, "completed")])
    expected = 0.9 * 50 + 0.8 * 30 + 0.6 * 15
    assert hypervolume(trials, METRICS) == pytest.approx(expected)
    assert hypervolume_history(trials, METRICS) == pytest.approx([45.0, 45.0 + 24.0, expected])


def test_hypervolume_agrees_with_monte_carlo_in_3d() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(30, 3))
    metrics = [MetricSpec(name=f"f{i}", direction="min", reference=1.0) for i in range(3)]
    trials = pd.DataFrame({f"metric.f{i}": pts[:, i] for i in range(3)})
    samples = rng.uniform(0, 1, size=(200_000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for p in pts:
        dominated |= np.all(samples >= p, axis=1)
    mc, se = dominated.mean(), dominated.std() / np.sqrt(len(samples))
    assert abs(hypervolume(trials, metrics) - mc) < 4 * se


def test_front_is_exactly_the_non_dominated_set() -> None:
    rng = np.random.default_rng(1)
    trials = table([(q, s, "completed") for q, s in rng.uniform([0.5, 0], [1, 100], (40, 2))])
    got = set(front(trials, METRICS).index)
    brute = {
        i
        for i in trials.index
        if not any(
            trials.at[j, "metric.quality"] >= trials.at[i, "metric.quality"]
            and trials.at[j, "metric.speed"] <= trials.at[i, "metric.speed"]
            and j != i
            for j in trials.index
        )
    }
    assert got == brute


def test_selection_by_weights_and_knee() -> None:
    trials = table([(1.0, 100.0, "completed"), (0.9, 20.0, "completed"), (0.6, 0.0, "completed")])
    pts = front(trials, METRICS)
    assert select_by_weights(pts, METRICS, {"quality": 1.0, "speed": 0.0}) == 0
    assert select_by_weights(pts, METRICS, {"quality": 0.0, "speed": 1.0}) == 2
    assert knee(pts, METRICS) == 1
    with pytest.raises(ValueError, match="sum to 0"):
        select_by_weights(pts, METRICS, {"quality": 0.0})
    with pytest.raises(ValueError, match="no feasible point"):
        knee(pts.iloc[0:0], METRICS)


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_hypervolume_does_not_depend_on_order(perm: tuple[int, ...]) -> None:
    rows = [(0.9, 50.0, "completed"), (0.8, 20.0, "completed"), (0.6, 5.0, "completed")]
    assert hypervolume(table([rows[i] for i in perm]), METRICS) == pytest.approx(78.0)
