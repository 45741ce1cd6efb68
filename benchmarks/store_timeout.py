"""Store timeout benchmark: how long a request waits for its 503 when the store hangs.

The store is a fresh database of the local PostgreSQL (127.0.0.1:5432, user postgres)
behind a TCP proxy that can stop forwarding while keeping every socket open (a network
that stops answering), as in tests/integration/test_store_hang.py. Measured, each case
repeated, from the call to its answer:
  - an `EventStore` call while the network is silent, and while a table is locked;
  - over HTTP (Serve, one replica): one suggest; eight concurrent suggests (the slowest
    of each burst); a feedback while the feedback table is locked;
  - how long after the network answers again a suggest is answered 200 again.

    .venv/bin/python benchmarks/store_timeout.py   # writes benchmarks/results/store-timeout.md
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa
from reporting import arguments, command_line, cpu_model, log, md_row, notes_section, write_report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the proxy and the fresh database come from the tests

from engine.client import SESSION_HEADER  # noqa: E402
from engine.ports import free_port  # noqa: E402
from engine.routing import routing_key  # noqa: E402
from engine.store import UNAVAILABLE, EventStore  # noqa: E402
from tests.integration.conftest import pg_database  # noqa: E402
from tests.integration.test_store_hang import SilentProxy  # noqa: E402

TIMEOUT_S = 2.0  # the default store timeout
CLIENT_TIMEOUT_S = 30.0
BURST = 8  # concurrent clients
ROW = {"experiment": "e", "user_id": "u", "context": None, "params": {"x": 1}, "variant": None}


def quantiles(name: str, seconds: Sequence[float]) -> list[str]:
    s = np.array(seconds)
    return [name, str(len(s)), *(f"{np.percentile(s, q):.2f}" for q in (0, 50, 90, 100))]


def unavailable_after(store: EventStore, call: Callable[[], object]) -> float:
    """Seconds until `call` raised one of UNAVAILABLE; anything else is an error."""
    store.breaker.down_until = 0.0  # each repeat measures a call's own wait, not the fail-fast window
    started = time.monotonic()
    try:
        call()
    except UNAVAILABLE:
        return time.monotonic() - started
    raise RuntimeError("the store call succeeded while the store hung")


@contextlib.contextmanager
def locked(url: str, table: str) -> Iterator[None]:
    """`table` locked by another client for the duration."""
    locker = sa.create_engine(url)
    try:
        with locker.begin() as conn:
            conn.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        locker.dispose()


@contextlib.contextmanager
def silent(proxy: SilentProxy) -> Iterator[None]:
    proxy.stop()
    try:
        yield
    finally:
        proxy.resume()


def store_cases(proxy: SilentProxy, url: str, direct: str, repeats: int) -> dict[str, list[float]]:
    store = EventStore(url, timeout_s=TIMEOUT_S)
    store.add_suggestion(suggestion_id="s", expires_at=time.time() + 3600, **ROW)
    cases: dict[str, list[float]] = {"store call, silent network": [], "store call, locked table": []}
    for n in range(repeats):
        store.experiment_names()  # a pooled connection that worked a moment ago
        with silent(proxy):
            took = unavailable_after(store, store.experiment_names)
        cases["store call, silent network"].append(took)
        store.breaker.down_until = 0.0
        with locked(direct, "feedback"):
            feedback = functools.partial(
                store.add_feedback, idempotency_key=f"k{n}", suggestion_id="s", experiment="e", user_id="u"
            )
            took = unavailable_after(store, functools.partial(feedback, rating=4.0))
        cases["store call, locked table"].append(took)
        store.breaker.down_until = 0.0
    store.close()
    return cases


def start_app(store_url: str) -> str:
    import ray
    from ray import serve

    from deployments.app import AppArgs, app_builder

    ray.init(address="local", num_cpus=2, logging_level=logging.WARNING, include_dashboard=False)
    port = free_port()
    quiet = {"log_level": "ERROR"}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
    args = AppArgs(store_url=store_url, experiments=[str(ROOT / "configs" / "genai.yaml")], replicas=1)
    serve.run(app_builder(args), name="frontier", route_prefix="/", logging_config=quiet)
    return f"http://127.0.0.1:{port}"


def suggest(base: str, user: str) -> tuple[int, float, str]:
    """(status, seconds, suggestion id or error text)."""
    started = time.monotonic()
    r = requests.post(
        f"{base}/v1/experiments/genai/suggest",
        json={"user_id": user, "context": "portrait"},
        headers={SESSION_HEADER: routing_key("genai", user)},
        timeout=CLIENT_TIMEOUT_S,
    )
    took = time.monotonic() - started
    return r.status_code, took, r.json().get("suggestion_id", r.text) if r.ok else r.text


def until_200(base: str, user: str) -> tuple[float, str]:
    """Seconds until a suggest (polled every 50 ms) answers 200, and its suggestion id."""
    started = time.monotonic()
    while (answer := suggest(base, user))[0] != 200:
        if time.monotonic() - started > 60:
            raise RuntimeError(f"no 200 within 60 s: {answer}")
        time.sleep(0.05)
    return time.monotonic() - started, answer[2]


def expect_503(answers: Sequence[tuple[int, float, str]]) -> list[float]:
    if bad := [a for a in answers if a[0] != 503]:
        raise RuntimeError(f"expected 503s, got {bad}")
    return [took for _, took, _ in answers]


def http_cases(base: str, proxy: SilentProxy, direct: str, repeats: int) -> dict[str, list[float]]:
    cases: dict[str, list[float]] = {
        "HTTP suggest, silent network": [],
        f"HTTP suggest, silent network, slowest of {BURST} concurrent": [],
        "HTTP feedback, locked table": [],
        "HTTP suggest answers 200 again, after the network answers again": [],
    }
    pool = ThreadPoolExecutor(BURST)
    for n in range(repeats):
        until_200(base, f"u{n}")
        with silent(proxy):
            cases["HTTP suggest, silent network"] += expect_503([suggest(base, f"u{n}")])
        cases["HTTP suggest answers 200 again, after the network answers again"].append(
            until_200(base, f"u{n}")[0]
        )
        with silent(proxy):
            burst = list(pool.map(suggest, [base] * BURST, [f"b{n}-{u}" for u in range(BURST)]))
        cases[f"HTTP suggest, silent network, slowest of {BURST} concurrent"].append(max(expect_503(burst)))
        _, suggestion_id = until_200(base, f"f{n}")
        body = {"suggestion_id": suggestion_id, "rating": 4, "idempotency_key": "k"}
        headers = {SESSION_HEADER: routing_key("genai", f"f{n}")}
        with locked(direct, "feedback"):
            started = time.monotonic()
            r = requests.post(
                f"{base}/v1/experiments/genai/feedback", json=body, headers=headers, timeout=CLIENT_TIMEOUT_S
            )
            cases["HTTP feedback, locked table"] += expect_503(
                [(r.status_code, time.monotonic() - started, "")]
            )
        log(f"round {n}: {', '.join(f'{v[-1]:.2f}' for v in cases.values())} s")
    pool.shutdown()
    return cases


def report(cases: dict[str, list[float]], started: datetime.datetime, total_s: float) -> str:
    lines = [
        "# Store timeout benchmark",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} (local time)",
        f"- machine: nproc=2, CPU: {cpu_model()}; the client shares the cores with the server",
        f"- command: `{command_line()}`",
        f"- store timeout {TIMEOUT_S:g} s (the default); PostgreSQL behind a TCP proxy that stops "
        f"forwarding but keeps its sockets open; Serve app with one replica; client timeout "
        f"{CLIENT_TIMEOUT_S:g} s",
        "",
        md_row(["seconds to the answer", "n", "min", "p50", "p90", "max"]),
        md_row(["---"] * 6),
        *(md_row(quantiles(name, seconds)) for name, seconds in cases.items()),
    ]
    notes = [
        "a store call gives up at its deadline (the client cuts the connection: TCP still "
        "acknowledges through the proxy, so no TCP or server-side timeout could end the wait); "
        "a locked table ends earlier, at PostgreSQL's lock_timeout (90% of the store timeout)",
        "after a call that waited out the timeout, the replica's store answers 503 at once for "
        "as long again, so concurrent requests wait for one hung call, not for one each",
        "answering 200 again takes the rest of that fail-fast window plus a reconnect; the "
        "slower repeats (about 5 s) are those where a call that started while the network was "
        "silent (a connect, or the replica's learning after a response) still had to time out, "
        "which opens one more fail-fast window",
    ]
    return "\n".join([*lines, *notes_section(notes, total_s)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=10, help="repeats of every case")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "store-timeout.md")
    args = parser.parse_args(argv)
    started, t0 = datetime.datetime.now(), time.perf_counter()
    with pg_database() as direct:
        parsed = sa.engine.make_url(direct)
        proxy = SilentProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        try:
            cases = store_cases(proxy, proxy.url(direct), direct, args.repeats)
            log("store cases done")
            cases |= http_cases(start_app(proxy.url(direct)), proxy, direct, args.repeats)
        finally:
            from ray import serve

            serve.shutdown()
            proxy.close()
    text = report(cases, started, time.perf_counter() - t0)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
