"""`frontier simulate`: simulated users against the online engine on Ray shards.

Each round, every user asks for a suggestion, rates it (1-5 stars, noisy, on their own
scale) and the rating goes back as feedback. After each rating we read the user's
profile: the settings the engine now believes they like best, and score them with the
user's hidden taste. "Ratings to target" is when that score first reaches 4.5 stars.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from engine.online import Feedback
from engine.spec import ExperimentSpec

__all__ = ["OnlineAPI", "SimulatedPerson", "SimulationResult", "drive_users", "simulate", "simulated_users"]

TARGET_STARS = 4.5


@dataclass(frozen=True)
class SimulationResult:
    rounds: pd.DataFrame  # one row per (user, round)
    ratings_to_target: pd.Series  # per user; rounds + 1 when never reached
    out_dir: Path


def simulate(
    spec: ExperimentSpec,
    users: int,
    rounds: int,
    out_dir: Path,
    *,
    store_url: str | None = None,
    shards: int = 2,
    context: str = "portrait",
    progress: bool = True,
    population_seed: int | None = None,
) -> SimulationResult:
    from engine.ray.shards import ShardRouter  # Ray starts only when a simulation does

    if users < 1 or rounds < 1:
        raise ValueError(f"--users {users} and --rounds {rounds} must both be at least 1")
    # before Ray starts: a spec without users fails at once
    people = simulated_users(spec, users, population_seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if store_url is None:
        db = out_dir / "online.db"
        for stale in out_dir.glob("online.db*"):
            stale.unlink()
        store_url = f"sqlite:///{db}"
    router = ShardRouter(store_url, shards=shards)
    router.register(spec)
    table, to_target = drive_users(router, spec.name, people, rounds, context, progress)
    table.to_parquet(out_dir / "simulation.parquet", index=False)
    for name in ("suggestions", "feedback"):
        router.store.export(name, out_dir / f"{name}.parquet")
    return SimulationResult(table, to_target, out_dir)


class SimulatedPerson(Protocol):
    """One simulated person: rates settings on their own scale, knows their true taste."""

    user_id: str
    arrival: int  # rounds the simulation runs before their first request (staggered arrivals)

    def rate(self, params: dict[str, Any], context: str) -> int: ...

    def expected_stars(self, params: dict[str, Any], context: str) -> float: ...


def simulated_users(spec: ExperimentSpec, n: int, seed: int | None = None) -> list[SimulatedPerson]:
    """`n` users from the spec's objective (its `simulated_users(n, seed)`); `seed` (the
    population's) defaults to the spec's, which also seeds the model: vary them apart to
    judge the model on populations it was not tuned to."""
    if not hasattr(spec.objective.load_class(), "simulated_users"):  # before building it
        raise ValueError(
            f"objective {spec.objective.ref} has no simulated_users(n, seed): name one that "
            "simulates users (e.g. objectives.users:GenAIUsers) to simulate this experiment"
        )
    make = spec.objective.build().simulated_users
    return list(make(n, spec.seed if seed is None else seed))


class OnlineAPI(Protocol):
    """What simulated users talk to: Ray shards in process, or the HTTP API."""

    def suggest(self, experiment: str, user_id: str, context: str | None = None) -> Any: ...

    def feedback(self, suggestion_id: str, feedback: Feedback, idempotency_key: str | None = None) -> Any: ...

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]: ...


def drive_users(
    online: OnlineAPI,
    experiment: str,
    people: Sequence[SimulatedPerson],
    rounds: int,
    context: str = "portrait",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.Series]:
    """Rounds of suggest, rate, feedback; returns one row per rating and ratings to target.

    Every user rates `rounds` times, starting after their `arrival` rounds; a row's
    `round` is the user's own count of ratings.
    """
    rows = []
    last = max((u.arrival for u in people), default=0) + rounds
    with tqdm(
        total=len(people) * rounds, desc="simulate", unit="rating", file=sys.stderr, disable=not progress
    ) as bar:
        for step in range(1, last + 1):
            active = [u for u in people if 1 <= step - u.arrival <= rounds]
            for u in active:
                s = online.suggest(experiment, u.user_id, context)
                stars = u.rate(s.params, context)
                online.feedback(s.suggestion_id, Feedback(rating=stars), f"{s.suggestion_id}:sim")
                best = online.profile(experiment, u.user_id)["contexts"][context]["preferred"]
                rows.append(
                    {
                        "user_id": u.user_id,
                        "round": step - u.arrival,
                        "stars": stars,
                        "expected_stars": u.expected_stars(s.params, context),
                        "recommended_stars": u.expected_stars(best, context),
                    }
                )
                bar.update()
            if active:
                bar.set_postfix(mean_stars=f"{np.mean([x['stars'] for x in rows[-len(active) :]]):.2f}")
    table = pd.DataFrame(rows)
    reached = table[table["recommended_stars"] >= TARGET_STARS].groupby("user_id")["round"].min()
    to_target = reached.reindex([u.user_id for u in people]).fillna(rounds + 1).astype(int)
    return table, to_target
