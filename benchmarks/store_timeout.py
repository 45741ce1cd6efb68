"""Store timeout benchmark: how long a request waits for its 503 when the store hangs.

The store is a fresh database of the local PostgreSQL (127.0.0.1:5432, user postgres)
behind a TCP proxy that can stop forwarding while keeping every socket open (a network
that stops answering), as in tests/integration/test_store_hang.py. Measured, each case
repeated, from the call to its answer:
  - an `EventStore` call while the network is silent, and while a table is locked;
  - over HTTP (Serve, one replica): one suggest; eight concurrent suggests (the slowest
    of each burst); a feedback while the feedback table is locked;
  - how long after the network answers again a suggest is answered 200 again.

    .venv/bin/python -m benchmarks.store_timeout [--repeats 10] [--out benchmarks/results/store-timeout.md]
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from benchmarks.harness import ROOT, Report, arguments, at_least_one, log, md_table, percentile_cells
from engine.client import SESSION_HEADER
from engine.ports import free_port
from engine.routing import routing_key
from engine.store import DEFAULT_TIMEOUT_S, UNAVAILABLE, EventStore
from tests.integration.conftest import pg_database  # the fresh database and the proxy of the tests
from tests.integration.test_store_hang import SilentProxy

TIMEOUT_S = DEFAULT_TIMEOUT_S
CLIENT_TIMEOUT_S = 30.0
BURST = 8  # concurrent clients
ROW = {"experiment": "e", "user_id": "u", "context": None, "params": {"x": 1}, "variant": None}


def unavailable_after(call: Callable[[], object]) -> float:
    """Seconds until `call` raised one of UNAVAILABLE; anything else is an error."""
    started = time.monotonic()
    try:
        call()
    except UNAVAILABLE:
        return time.monotonic() - started
    raise RuntimeError("the store call succeeded while the store hung")


@contextlib.contextmanager
def fresh_store(url: str) -> Iterator[EventStore]:
    """A store whose pooled connection worked a moment ago and that never failed: each case
    measures a call's own wait, not the fail-fast window that an earlier case opened."""
    store = EventStore(url, timeout_s=TIMEOUT_S)
    try:
        store.experiment_names()
        yield store
    finally:
        store.close()


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
    with fresh_store(url) as store:
        store.add_suggestion(suggestion_id="s", expires_at=time.time() + 3600, **ROW)
    cases: dict[str, list[float]] = {"store call, silent network": [], "store call, locked table": []}
    for n in range(repeats):
        with fresh_store(url) as store, silent(proxy):
            cases["store call, silent network"].append(unavailable_after(store.experiment_names))
        with fresh_store(url) as store, locked(direct, "feedback"):
            feedback = functools.partial(
                store.add_feedback, idempotency_key=f"k{n}", suggestion_id="s", experiment="e", user_id="u"
            )
            cases["store call, locked table"].append(
                unavailable_after(functools.partial(feedback, rating=4.0))
            )
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


NOTES = (
    "a store call gives up at its deadline (the client cuts the connection: TCP still "
    "acknowledges through the proxy, so no TCP or server-side timeout could end the wait); "
    "a locked table ends earlier, at PostgreSQL's lock_timeout (90% of the store timeout)",
    "after a call that waited out the timeout, the replica's store answers 503 at once for "
    "as long again, so concurrent requests wait for one hung call, not for one each",
    "answering 200 again takes the rest of that fail-fast window plus a reconnect; the "
    "slower repeats (about 5 s) are those where a call that started while the network was "
    "silent (a connect, or the replica's learning after a response) still had to time out, "
    "which opens one more fail-fast window",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__, "store-timeout.md")
    parser.add_argument("--repeats", type=at_least_one, default=10, help="repeats of every case")
    args = parser.parse_args(argv)
    setup = (
        f"store timeout {TIMEOUT_S:g} s (the default); PostgreSQL behind a TCP proxy that stops "
        f"forwarding but keeps its sockets open; Serve app with one replica; client timeout "
        f"{CLIENT_TIMEOUT_S:g} s; the client shares the cores with the server"
    )
    report = Report("Store timeout benchmark", ("sqlalchemy", "psycopg", "ray"), [setup])
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
    rows = (
        [name, str(len(seconds)), *percentile_cells(seconds, (0, 50, 90, 100))]
        for name, seconds in cases.items()
    )
    report.add(["", *md_table(["seconds to the answer", "n", "min", "p50", "p90", "max"], rows)])
    report.write(args.out, NOTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
