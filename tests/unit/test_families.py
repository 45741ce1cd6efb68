"""Each named population family changes what its table says, and only that."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.online import OnlineEngine
from engine.sim import drive_users
from engine.spec import load_spec
from engine.store import EventStore
from objectives.families import FAMILIES
from objectives.users import UNIT, GenAIUsers, population

N = 2000


def tastes(preset: str, context: str = "portrait") -> np.ndarray:
    return np.array([u.preferred[context] for u in population(N, seed=4, preset=preset)])


def spread(points: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(points - np.median(points, axis=0), axis=1)))


def far_share(preset: str) -> float:
    """The share of users whose taste is over 0.25 from the population's median taste."""
    points = tastes(preset)
    return float((np.linalg.norm(points - np.median(points, axis=0), axis=1) > 0.25).mean())


def test_every_family_is_seeded_and_its_own() -> None:
    for name in FAMILIES:
        a, b = population(5, seed=1, preset=name), population(5, seed=1, preset=name)
        assert [u.bias for u in a] == [u.bias for u in b]
    assert [u.bias for u in population(5, 1)] == [u.bias for u in population(5, 1, "default")]
    with pytest.raises(ValueError, match=r"unknown population family 'nope'.*default.*staggered"):
        population(5, preset="nope")


def test_spread_narrow_and_harsh_change_their_own_parameter() -> None:
    assert spread(tastes("spread")) > 2 * spread(tastes("default"))
    narrow, default = population(1, seed=2, preset="narrow")[0], population(1, seed=2)[0]
    near = {"provider": default.provider["portrait"], **UNIT.from_unit(default.preferred["portrait"] + 0.1)}
    narrow.preferred, narrow.provider = default.preferred, default.provider
    assert narrow.expected_stars(near, "portrait") < 3.0 < default.expected_stars(near, "portrait")
    harsh = population(N, seed=3, preset="harsh")
    assert {u.noise for u in harsh} == {1.0}
    assert np.std([u.bias for u in harsh]) == pytest.approx(0.8, abs=0.04)


def test_contexts8_and_outliers() -> None:
    (user,) = population(1, seed=0, preset="contexts8")
    assert len(user.preferred) == 8 and "logo" in user.preferred
    assert GenAIUsers(users=3, context="logo", family="contexts8").evaluate(user.best("logo"))["quality"] > 1
    # 20% placed 0.3 from every centre (a few moved nearer by the cube's faces)
    assert 0.15 < far_share("outliers") < 0.25
    assert far_share("default") < 0.03


def test_drift_moves_a_taste_every_20_ratings() -> None:
    users = [u for u in population(50, seed=6, preset="drift") if u.preferred["portrait"].min() > 0.2]
    user = next(u for u in users if u.preferred["portrait"].max() < 0.8)
    start = user.taste("portrait").copy()
    for _ in range(19):
        user.rate(user.best("portrait"), "portrait")
    assert np.array_equal(user.taste("portrait"), start)
    user.rate(user.best("portrait"), "portrait")
    assert np.linalg.norm(user.taste("portrait") - start) == pytest.approx(0.1)


def test_staggered_users_arrive_in_waves_and_each_rates_every_round(tmp_path: Path) -> None:
    people = population(4, seed=0, preset="staggered")
    assert [u.arrival for u in people] == [0, 10, 20, 30]
    engine = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"))
    engine.register(load_spec("configs/genai.yaml"))
    table, to_target = drive_users(engine, "genai", people, rounds=2, progress=False)
    assert table["user_id"].tolist() == [
        "user-0",
        "user-0",
        "user-1",
        "user-1",
        "user-2",
        "user-2",
        "user-3",
        "user-3",
    ]
    assert table["round"].tolist() == [1, 2] * 4 and len(to_target) == 4
