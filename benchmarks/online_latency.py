"""Online latency: what one suggestion and one rating cost, in the model and in the engine.

    .venv/bin/python -m benchmarks.online_latency [--quick] [--users 50] [--calls 2000]
                                                  [--out benchmarks/results/online-latency.md]

`OnlineModel.suggest`/`observe` in process (the maths), and `OnlineEngine.suggest`/`feedback`
on a SQLite store (which include the durable write), after the same warm-up. When suggest
misses its target, the report adds a profile of it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.harness import ROOT, Report, arguments, at_least_one, log, md_table, percentile_cells
from benchmarks.online_methods import CONTEXT, GENAI_SPEC, Ours, reward
from engine.online import Feedback, OnlineEngine
from engine.spec import load_spec
from engine.store import EventStore
from objectives.users import SimulatedUser, population

TARGET_SUGGEST_MS = 5.0


@dataclass(frozen=True)
class Plan:
    users: int = 50
    warm_rounds: int = 10
    calls: int = 2000


def warm_model(plan: Plan) -> tuple[Ours, list[SimulatedUser]]:
    """A model after `warm_rounds` rounds of `users` users."""
    ours, users = Ours(seed=0), population(plan.users, seed=0)
    for _ in range(plan.warm_rounds):
        for i, u in enumerate(users):
            params = ours.ask(i, CONTEXT)
            ours.tell(i, CONTEXT, params, u.rate(params, CONTEXT))
    return ours, users


def time_model(plan: Plan) -> dict[str, np.ndarray]:
    """Seconds per `suggest` and per `observe`, users in turn, histories growing."""
    ours, users = warm_model(plan)
    times: dict[str, list[float]] = {"suggest": [], "observe": []}
    while len(times["suggest"]) < plan.calls:
        for i, u in enumerate(users):
            rater, history = ours.state(i, CONTEXT)
            t0 = time.perf_counter()
            params = ours.model.suggest(rater, history, CONTEXT, ours.rng)
            t1 = time.perf_counter()
            value = reward(u.rate(params, CONTEXT))
            t2 = time.perf_counter()
            ours.model.observe(rater, history, CONTEXT, params, value)
            times["suggest"].append(t1 - t0)
            times["observe"].append(time.perf_counter() - t2)
    return {k: np.array(v) for k, v in times.items()}


def profile_suggest(plan: Plan, calls: int = 300) -> list[str]:
    """Top functions of `suggest` by own time, on a warm model."""
    ours, users = warm_model(plan)
    profiler = cProfile.Profile()
    profiler.enable()
    for k in range(calls):
        ours.ask(k % len(users), CONTEXT)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(10)
    site = sysconfig.get_paths()["purelib"] + "/"
    lines = [line.replace(site, "").replace(f"{ROOT}/", "") for line in text.getvalue().splitlines()]
    return [line for line in lines if line.strip()][-11:]


def time_service(plan: Plan) -> dict[str, np.ndarray]:
    """Seconds per `OnlineEngine.suggest` and `.feedback` on a SQLite store, after the same warm-up."""
    users = population(plan.users, seed=0)
    times: dict[str, list[float]] = {"suggest": [], "feedback": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine = OnlineEngine(EventStore(f"sqlite:///{tmp}/online.db"))
        engine.register(load_spec(GENAI_SPEC))
        rounds = plan.warm_rounds + -(-plan.calls // len(users))
        for r in range(rounds):
            for u in users:
                t0 = time.perf_counter()
                s = engine.suggest("genai", u.user_id, CONTEXT)
                t1 = time.perf_counter()
                rating = Feedback(rating=u.rate(s.params, CONTEXT))
                t2 = time.perf_counter()
                engine.feedback(s.suggestion_id, rating)
                if r >= plan.warm_rounds:
                    times["suggest"].append(t1 - t0)
                    times["feedback"].append(time.perf_counter() - t2)
        engine.store.close()
    return {k: np.array(v) for k, v in times.items()}


def latency_table(rows: dict[str, np.ndarray]) -> list[str]:
    return md_table(
        ["call", "calls", "p50 (ms)", "p99 (ms)", "mean (ms)"],
        (
            [name, str(len(t)), *percentile_cells(t, [50, 99], scale=1e3), f"{t.mean() * 1e3:.2f}"]
            for name, t in rows.items()
        ),
    )


def section(plan: Plan, model: dict[str, np.ndarray], service: dict[str, np.ndarray]) -> list[str]:
    p50 = float(np.median(model["suggest"]) * 1e3)
    lines = [
        "",
        "## Latency, in process",
        "",
        f"Model warmed on {plan.users} users x {plan.warm_rounds} rounds ({CONTEXT}); "
        "then users in turn get a suggestion and rate it, so histories grow from "
        f"{plan.warm_rounds} to {plan.warm_rounds + plan.calls // plan.users} "
        "ratings during the measurement. `time.perf_counter` around each call, nothing else running "
        "in this process.",
        "",
        "`OnlineModel` (pure maths):",
        "",
        *latency_table(model),
        "",
        "`OnlineEngine` on a SQLite store in a temp dir (WAL, synchronous=FULL): `suggest` includes "
        "writing the suggestion, `feedback` the durable feedback write and the model update:",
        "",
        *latency_table(service),
        "",
        f"**suggest p50 {p50:.2f} ms in process** "
        f"({'meets' if p50 <= TARGET_SUGGEST_MS else 'misses'} the ≤ {TARGET_SUGGEST_MS:g} ms target).",
    ]
    if p50 > TARGET_SUGGEST_MS:
        lines += ["", "cProfile of 300 `suggest` calls on the warm model, top 10 by own time:", "", "```"]
        lines += [*profile_suggest(plan), "```"]
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = arguments(__doc__, "online-latency.md")
    parser.add_argument("--quick", action="store_true", help="smoke run of seconds")
    parser.add_argument("--users", type=at_least_one, help="simulated users (default 50, quick 10)")
    parser.add_argument(
        "--calls", type=at_least_one, help="timed calls of each kind (default 2000, quick 200)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(
        users=args.users or (10 if args.quick else 50), calls=args.calls or (200 if args.quick else 2000)
    )
    setup = (
        f"{plan.users} simulated users (seed 0), {plan.calls} timed calls each; BLAS limited to one thread"
    )
    report = Report("Online latency benchmark", ("numpy", "scipy"), [setup])
    threadpool_limits(1)
    log("the model")
    model = time_model(plan)
    log("the engine")
    report.add(section(plan, model, time_service(plan)))
    report.write(args.out, ["--quick smoke run: too small to conclude anything."] if args.quick else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
