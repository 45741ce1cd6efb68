"""Simulated users come from the spec's objective, by its import reference."""

from __future__ import annotations

import pytest

from engine.sim import simulated_users
from engine.spec import load_spec
from objectives.users import population


def test_users_are_the_objectives_population_seeded_by_the_spec() -> None:
    spec = load_spec("configs/genai.yaml").model_copy(update={"seed": 7})
    users = simulated_users(spec, 4)
    expected = population(4, seed=7)
    assert [u.user_id for u in users] == [u.user_id for u in expected]
    best = expected[2].best("portrait")
    assert users[2].expected_stars(best, "portrait") == expected[2].expected_stars(best, "portrait") == 5.0


def test_an_objective_without_users_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"objectives.vectorize:Vectorize has no simulated_users"):
        simulated_users(load_spec("configs/vectorize.yaml"), 3)
