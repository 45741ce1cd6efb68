"""The learner on a grid of seeds, not one pair: population seed x model seed, users spread
over the contexts and taking turns, as benchmarks/online.py runs them (the full grid, the
other families and the baselines are the benchmark's)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.online import OnlineModel, Rater, UserHistory
from engine.sim import TARGET_STARS
from engine.spec import load_spec
from objectives.families import family
from objectives.users import population

GENAI = load_spec("configs/genai.yaml").search_space()
USERS, RATINGS = 30, 40
GRID = list(itertools.product((0, 1, 2), (0, 1, 2)))  # population seed x model seed


def share_reaching(pop_seed: int, model_seed: int) -> float:
    """Share of users whose recommendation reaches the target within RATINGS ratings."""
    contexts = family("default").contexts
    users = population(USERS, seed=pop_seed)
    model, rng = OnlineModel(GENAI, seed=model_seed), np.random.default_rng(model_seed)
    raters = [Rater() for _ in users]
    histories = [UserHistory() for _ in users]
    reached = set()
    for _ in range(RATINGS):
        for i, user in enumerate(users):
            context = contexts[i % len(contexts)]
            params = model.suggest(raters[i], histories[i], context, rng)
            reward = (user.rate(params, context) - 3) / 2
            model.observe(raters[i], histories[i], context, params, reward)
            best, _, _ = model.recommend(raters[i], histories[i], context)
            if user.expected_stars(best, context) >= TARGET_STARS:
                reached.add(i)
    return len(reached) / USERS


@pytest.fixture(scope="module")
def shares() -> dict[tuple[int, int], float]:
    return {cell: share_reaching(*cell) for cell in GRID}


def test_the_worst_cell_of_a_seed_grid_brings_most_users_to_the_target(
    shares: dict[tuple[int, int], float],
) -> None:
    worst = min(shares, key=lambda cell: shares[cell])
    assert shares[worst] >= 0.6, f"cell (population, model seed) {worst}: {shares[worst]:.0%} reached"


def test_the_target_is_not_reached_by_chance() -> None:
    """Random settings rarely score the target: the grid's shares measure learning."""
    rng = np.random.default_rng(0)
    users, contexts = population(USERS, seed=0), family("default").contexts
    stars = [
        u.expected_stars(GENAI.from_unit(rng.uniform(size=len(GENAI.free))), contexts[i % len(contexts)])
        for i, u in enumerate(users)
        for _ in range(RATINGS)
    ]
    assert np.mean(np.array(stars) >= TARGET_STARS) < 0.01
