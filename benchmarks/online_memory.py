"""Online memory: what the engine holds per idle user, projected to 100 000 users.

    .venv/bin/python -m benchmarks.online_memory [--quick] [--users 500] [--ratings 20]
                                                 [--out benchmarks/results/online-memory.md]

Simulated users rate suggestions through `OnlineEngine` into a SQLite store; then a fresh
engine replays the store and loads every user (`profile`), as a replica does, under
tracemalloc. Doing that for N and for 2N users and dividing the difference by N leaves what
the engine holds per user, whatever its layout, without the experiment's population models,
which are measured apart.
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.harness import Report, arguments, at_least_one, log, md_table
from benchmarks.online_methods import CONTEXT, GENAI, GENAI_SPEC
from engine.online import Feedback, OnlineEngine, OnlineModel, Rater
from engine.spec import load_spec
from engine.store import EventStore
from objectives.users import CONTEXTS, SimulatedUser, population

TARGET_BYTES_100K = 2e9
SHARDS = 8  # every shard holding the experiment holds its population models


@dataclass(frozen=True)
class Memory:
    per_user: float
    model_one_context: int
    model_all_contexts: int


def traced(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after `build()` returns, and what it built (kept alive)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, built


def rate(engine: OnlineEngine, users: Sequence[SimulatedUser], ratings: int) -> None:
    """Each user rates `ratings` suggestions, in CONTEXT."""
    for user in users:
        for _ in range(ratings):
            s = engine.suggest("genai", user.user_id, CONTEXT)
            engine.feedback(s.suggestion_id, Feedback(rating=user.rate(s.params, CONTEXT)))


def loaded(url: str, user_ids: Sequence[str]) -> OnlineEngine:
    """A fresh engine on the store, these users loaded into memory, idle (no open suggestion)."""
    engine = OnlineEngine(EventStore(url))
    for user_id in user_ids:
        engine.profile("genai", user_id)
    return engine


def per_user(url: str, users: int, ratings: int) -> float:
    """Bytes per idle user: (engine holding 2N users - engine holding N) / N."""
    people = population(2 * users, seed=0)
    filler = OnlineEngine(EventStore(url))
    filler.register(load_spec(GENAI_SPEC))
    totals = []
    for n in (users, 2 * users):
        rate(filler, people[n - users : n], ratings)
        log(f"{n} users rated {ratings} times each")
        total, engine = traced(functools.partial(loaded, url, [u.user_id for u in people[:n]]))
        engine.store.close()
        totals.append(total)
    filler.store.close()
    return (totals[1] - totals[0]) / users


def population_models(contexts: Sequence[str]) -> OnlineModel:
    """An experiment's shared model after a few ratings in each context (weights cached)."""
    model, rng = OnlineModel(GENAI, seed=0), np.random.default_rng(0)
    for c in contexts:
        for _ in range(20):
            model.learn(Rater(), c, GENAI.from_unit(rng.uniform(size=len(GENAI.free))), 0.0)
        model.context(c).weights()
    return model


def measure(users: int, ratings: int) -> Memory:
    # SQLite on tmpfs when there is one: filling the store waits for no disk
    where = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="online-memory-", dir=where) as tmp:
        bytes_per_user = per_user(f"sqlite:///{tmp}/online.db", users, ratings)
    one, _ = traced(lambda: population_models((CONTEXT,)))
    every, _ = traced(lambda: population_models(CONTEXTS))
    return Memory(bytes_per_user, one, every)


def mb_text(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


def section(memory: Memory, users: int, ratings: int) -> list[str]:
    """The measured sizes and the 100 000-user projection, every shard holding the experiment's models."""
    users_100k = memory.per_user * 100_000
    total = users_100k + SHARDS * memory.model_all_contexts
    verdict = "meets" if total <= TARGET_BYTES_100K else "misses"
    rows = [
        [f"one idle user (1 context, {ratings} ratings)", f"{memory.per_user:,.0f} B"],
        ["100 000 such users", mb_text(users_100k)],
        ["population models of one experiment, 1 context", mb_text(memory.model_one_context)],
        ["population models of one experiment, 4 contexts", mb_text(memory.model_all_contexts)],
    ]
    return [
        "",
        "## Memory per idle user",
        "",
        f"{users} and {2 * users} simulated users, each with {ratings} ratings in one context "
        "(`OnlineEngine.suggest` and `feedback` on a SQLite store): tracemalloc's bytes still "
        "allocated after a fresh `OnlineEngine` replays the store and loads every user "
        f"(`profile`), the difference divided by {users}. That is everything the engine keeps "
        "per idle user (its rater, its history, what it keeps per rating), and none of the "
        "shared population models, measured apart.",
        "",
        *md_table(["what", "size"], rows),
        "",
        f"**100 000 users: {mb_text(users_100k)} of user state, plus {mb_text(memory.model_all_contexts)} "
        f"of population models in each shard holding the experiment** (with {SHARDS} shards: "
        f"{mb_text(total)}; {verdict} the ≤ 2 GB target). tracemalloc counts Python-heap and numpy "
        "allocations; interpreter, library and Ray worker baselines are not included.",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = arguments(__doc__, "online-memory.md")
    parser.add_argument("--quick", action="store_true", help="smoke run of seconds")
    parser.add_argument("--users", type=at_least_one, help="N, the users measured (default 500, quick 20)")
    parser.add_argument("--ratings", type=at_least_one, default=20, help="ratings per user (default 20)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    users = args.users or (20 if args.quick else 500)
    setup = f"{users} users, {args.ratings} ratings each; BLAS limited to one thread"
    report = Report("Online memory benchmark", ("numpy", "scipy"), [setup])
    threadpool_limits(1)  # the model's refits while the store fills: BLAS threads only contend
    report.add(section(measure(users, args.ratings), users, args.ratings))
    report.write(args.out, ["--quick smoke run: too small to conclude anything."] if args.quick else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
