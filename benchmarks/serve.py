"""Serve benchmark: suggest + feedback through the HTTP API, against a no-op floor.

For concurrency 1, 8 and 32 (client threads, each with its own HTTP session), every
thread repeats: POST suggest, then POST feedback (a rating) on that suggestion, with the
user's `x-session-id` header as `FrontierClient` sends it. The same loop runs against
  - the Frontier app (Serve proxy -> the user's replica: FastAPI + engine -> SQLite store),
  - a no-op Serve app with the same routes and bodies that does nothing (the floor),
and, at concurrency 1, the engine called in process (no Ray, no HTTP).
Latency is per request (p50/p99 in ms), throughput is suggest+feedback pairs per second.
The client threads run on the same two cores as the server: throughput is what one
machine does with both, not the server alone.

This VM's speed drifts by tens of percent within a minute, so the two apps are measured
in alternating rounds (floor first in even rounds, ours first in odd ones) after a
warm-up round each, and each verdict is the median over rounds of the paired
difference or ratio; the table pools every round.

    .venv/bin/python -m benchmarks.serve [--quick] [--pairs 100] [--out benchmarks/results/serve.md]
"""

# No `from __future__ import annotations`: FastAPI resolves the no-op routes' annotations
# at runtime in the replica, where postponed names cannot be found.

import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests
from fastapi import FastAPI, Request
from ray import serve
from ray.serve import Deployment

from benchmarks.harness import ROOT, Report, arguments, at_least_one, log, md_table, percentile_cells
from engine.client import SESSION_HEADER
from engine.online import Feedback, OnlineEngine
from engine.ports import free_port
from engine.routing import routing_key
from engine.spec import load_spec
from engine.store import EventStore

CONCURRENCY = (1, 8, 32)
ROUNDS = {1: 7, 8: 3, 32: 5}  # alternating floor/ours rounds per concurrency
REPLICAS = 2  # replicas of both apps


@dataclass
class Run:
    target: str
    concurrency: int
    suggest_ms: list[float]
    feedback_ms: list[float]
    pairs: int
    wall_s: float

    @property
    def throughput(self) -> float:
        return self.pairs / self.wall_s

    def cells(self) -> list[str]:
        suggest, feedback = (
            percentile_cells(ms, [50, 99], digits=1) for ms in (self.suggest_ms, self.feedback_ms)
        )
        return [self.target, str(self.concurrency), *suggest, *feedback, f"{self.throughput:.0f}"]


noop = FastAPI()


@serve.deployment(num_replicas=REPLICAS, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(noop)
class Noop:
    """The floor: same paths, same JSON in and out, no work."""

    @noop.post("/v1/experiments/{name}/suggest")
    async def suggest(self, request: Request) -> dict[str, Any]:
        await request.json()
        return {"suggestion_id": "0" * 48, "params": {}, "variant": "default", "expires_at": 0.0}

    @noop.post("/v1/experiments/{name}/feedback", status_code=202)
    async def feedback(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"status": "recorded", "suggestion_id": body.get("suggestion_id")}


def start_apps(store_url: str) -> tuple[str, str]:
    """The Frontier app at /, the no-op floor at /noop; returns their base URLs."""
    import ray

    from deployments.app import AppArgs, app_builder

    ray.init(num_cpus=2, logging_level=logging.WARNING, include_dashboard=False, log_to_driver=False)
    port = free_port()
    quiet = {"log_level": "WARNING"}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
    args = AppArgs(store_url=store_url, experiments=["configs/genai.yaml"], replicas=REPLICAS)
    serve.run(app_builder(args), name="frontier", route_prefix="/", logging_config=quiet)

    serve.run(cast(Deployment, Noop).bind(), name="noop", route_prefix="/noop", logging_config=quiet)
    base = f"http://127.0.0.1:{port}"
    return base, f"{base}/noop"


def http_pair(base: str) -> Callable[[requests.Session, str, int], tuple[float, float]]:
    def pair(session: requests.Session, user: str, n: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        headers = {SESSION_HEADER: routing_key("genai", user)}
        r = session.post(
            f"{base}/v1/experiments/genai/suggest",
            json={"user_id": user, "context": "portrait"},
            headers=headers,
        )
        t1 = time.perf_counter()
        r.raise_for_status()
        body = {
            "suggestion_id": r.json()["suggestion_id"],
            "rating": 1 + n % 5,
            "idempotency_key": f"{user}:{n}",
        }
        url = f"{base}/v1/experiments/genai/feedback"
        session.post(url, json=body, headers=headers).raise_for_status()
        return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    return pair


def drive(
    target: str,
    pair: Callable[[requests.Session, str, int], tuple[float, float]],
    concurrency: int,
    pairs_per_thread: int,
    tag: str,
) -> Run:
    suggest_ms: list[float] = []
    feedback_ms: list[float] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        session = requests.Session()
        for n in range(pairs_per_thread):
            s, f = pair(session, f"{tag}-{t}-{n % 10}", n)
            with lock:
                suggest_ms.append(s)
                feedback_ms.append(f)

    for t in range(concurrency):  # warm-up: connections, replica code paths
        pair(requests.Session(), f"{tag}-warm-{t}", 0)
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return Run(target, concurrency, suggest_ms, feedback_ms, concurrency * pairs_per_thread, wall)


def in_process(store_url: str, pairs: int) -> Run:
    engine = OnlineEngine(EventStore(store_url))
    engine.register(load_spec(ROOT / "configs" / "genai.yaml"))
    suggest_ms, feedback_ms = [], []
    start = time.perf_counter()
    for n in range(pairs):
        t0 = time.perf_counter()
        s = engine.suggest("genai", f"inproc-{n % 10}", "portrait")
        t1 = time.perf_counter()
        engine.feedback(s.suggestion_id, Feedback(rating=1 + n % 5), f"inproc:{n}")
        suggest_ms.append((t1 - t0) * 1000)
        feedback_ms.append((time.perf_counter() - t1) * 1000)
    return Run(
        "engine in process (no Ray, no HTTP)", 1, suggest_ms, feedback_ms, pairs, time.perf_counter() - start
    )


def pooled(rounds: Sequence[Run]) -> Run:
    """Every round of one target at one concurrency as one run."""
    return Run(
        rounds[0].target,
        rounds[0].concurrency,
        [ms for r in rounds for ms in r.suggest_ms],
        [ms for r in rounds for ms in r.feedback_ms],
        sum(r.pairs for r in rounds),
        sum(r.wall_s for r in rounds),
    )


def section(baseline: Run, rounds: dict[int, list[tuple[Run, Run]]]) -> list[str]:
    """`rounds[c]`: (floor, ours) per round at concurrency c."""
    head = ["target", "concurrency", "suggest p50 ms", "suggest p99 ms", "feedback p50 ms", "feedback p99 ms"]
    rows = [baseline.cells()]
    for paired in rounds.values():
        rows += [pooled([r[i] for r in paired]).cells() for i in (0, 1)]
    gaps = [statistics.median(o.suggest_ms) - statistics.median(f.suggest_ms) for f, o in rounds[1]]
    ratios = [o.throughput / f.throughput for f, o in rounds[32]]
    gap, ratio = statistics.median(gaps), statistics.median(ratios)
    return [
        "",
        *md_table([*head, "pairs/s"], rows),
        "",
        f"**Suggest p50 at concurrency 1: {gap:+.1f} ms over the floor** (median of the rounds' "
        f"differences: {', '.join(f'{g:+.1f}' for g in gaps)}; "
        f"{'meets' if gap <= 2.5 else 'misses'} the ≤ 2.5 ms target).",
        "",
        f"**Throughput at concurrency 32: {ratio:.0%} of the floor's** (median of the rounds' "
        f"ratios: {', '.join(f'{r:.0%}' for r in ratios)}; "
        f"{'meets' if ratio >= 0.7 else 'misses'} the ≥ 70% target).",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__, "serve.md")
    parser.add_argument("--pairs", type=at_least_one, default=100, help="pairs per client thread and round")
    parser.add_argument("--quick", action="store_true", help="one round per concurrency: a smoke run")
    args = parser.parse_args(argv)
    rounds_of = dict.fromkeys(CONCURRENCY, 1) if args.quick else ROUNDS
    setup = (
        f"each client thread runs {args.pairs} suggest+feedback pairs per round at concurrency 1 "
        "(fewer at 8 and 32: same total per round), after one warm-up pair; rounds per "
        f"concurrency: {', '.join(f'{c}: {n}' for c, n in rounds_of.items())}; SQLite store; "
        f"{REPLICAS} replicas for both apps (Frontier's are its state shards); the client threads "
        "share the cores with the server"
    )
    report = Report("Serve benchmark", ("ray", "fastapi"), [setup])
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        baseline = in_process(f"sqlite:///{tmp}/inproc.db", args.pairs)
        log(f"in process: suggest p50 {statistics.median(baseline.suggest_ms):.2f} ms")
        frontier, noop = start_apps(f"sqlite:///{tmp}/serve.db")
        apps = (("no-op floor", noop), ("frontier app", frontier))
        for name, base in apps:  # warm-up round: replica code paths, the models, connections
            drive(name, http_pair(base), 1, args.pairs // 2, f"{name[:4]}-warm")
        rounds: dict[int, list[tuple[Run, Run]]] = {}
        for c in CONCURRENCY:
            pairs = max(10, args.pairs // max(1, c // 4))  # bounded total time at 32 threads
            for r in range(rounds_of[c]):
                measured = {}
                for name, base in apps if r % 2 == 0 else apps[::-1]:
                    measured[name] = drive(name, http_pair(base), c, pairs, f"{name[:4]}-c{c}-r{r}")
                floor, ours = measured["no-op floor"], measured["frontier app"]
                rounds.setdefault(c, []).append((floor, ours))
                log(
                    f"c={c} round {r}: suggest p50 {statistics.median(floor.suggest_ms):.1f} / "
                    f"{statistics.median(ours.suggest_ms):.1f} ms, "
                    f"{floor.throughput:.0f} / {ours.throughput:.0f} pairs/s (floor / ours)"
                )
    report.add(section(baseline, rounds))
    report.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
