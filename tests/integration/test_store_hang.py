"""A store that hangs instead of refusing: every store call gives up within its timeout,
and the HTTP API answers 503 well before a client's own timeout, then 200 again.

The hang is a TCP proxy in front of the local PostgreSQL that stops forwarding while
keeping every socket open (a network that stops answering: TCP still acknowledges, so
only the client's own deadline can end the wait), or a table locked by another client.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from engine.client import SESSION_HEADER
from engine.routing import routing_key
from engine.store import UNAVAILABLE, EventStore, StoreUnavailable
from tests.integration.conftest import Served, pg_database

TIMEOUT_S = 2.0  # the store timeout under test (the default)
MARGIN_S = 1.5  # scheduling on a loaded 2-core machine
CLIENT_TIMEOUT_S = 30.0  # a generous client: the 503 must come long before it gives up
ROW = {"experiment": "e", "user_id": "u", "context": None, "params": {"x": 1}, "variant": None}


class SilentProxy:
    """Forwards TCP to `upstream` until `stop()`: then it keeps every socket open and drops
    what arrives (new connections too) until `resume()`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.forwarding = threading.Event()
        self.forwarding.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.forwarding.clear()

    def resume(self) -> None:
        self.forwarding.set()

    def url(self, url: str) -> str:
        """`url` with this proxy as its host and port."""
        return sa.engine.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def close(self) -> None:
        self._listener.close()
        for s in list(self._sockets):
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self.forwarding.is_set():
                try:
                    dst.sendall(data)
                except OSError:
                    break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def within(limit_s: float, call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """(seconds taken, what `call` raised); fails, instead of hanging the suite, when
    `call` is still waiting after `limit_s`."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # handed to the test as it is
            outcome.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    if worker.is_alive():
        pytest.fail(f"the store call was still waiting after {limit_s} s")
    return time.monotonic() - started, outcome[0]


@pytest.fixture
def proxied() -> Iterator[tuple[SilentProxy, str, str]]:
    """(proxy, the database's URL through it, its direct URL) on a fresh database."""
    with pg_database() as url:
        parsed = sa.engine.make_url(url)
        proxy = SilentProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        try:
            yield proxy, proxy.url(url), url
        finally:
            proxy.close()


def test_a_silent_network_raises_unavailable_within_the_timeout(
    proxied: tuple[SilentProxy, str, str],
) -> None:
    proxy, url, _ = proxied
    store = EventStore(url, timeout_s=TIMEOUT_S)
    store.add_experiment("e", {"name": "e"})
    proxy.stop()
    took, error = within(
        TIMEOUT_S * 5, lambda: store.add_suggestion(suggestion_id="s1", expires_at=0.0, **ROW)
    )
    assert isinstance(error, UNAVAILABLE), error
    assert took < TIMEOUT_S + MARGIN_S
    # right after, calls fail at once instead of each waiting out the timeout again
    took, error = within(TIMEOUT_S * 5, store.experiment_names)
    assert isinstance(error, StoreUnavailable) and took < 0.2, (error, took)
    # a new connection through the silent network is bounded too (libpq's connect_timeout)
    took, error = within(TIMEOUT_S * 5, lambda: EventStore(url, timeout_s=TIMEOUT_S))
    assert error is not None and took < max(2.0, TIMEOUT_S) + MARGIN_S, (error, took)
    proxy.resume()
    time.sleep(TIMEOUT_S)  # the time calls fail at once after a timeout
    assert store.experiment_names() == ["e"]
    assert store.add_suggestion(suggestion_id="s2", expires_at=0.0, **ROW)
    store.close()


def test_a_locked_table_raises_unavailable_within_the_timeout(proxied: tuple[SilentProxy, str, str]) -> None:
    _, _, url = proxied
    store = EventStore(url, timeout_s=TIMEOUT_S)
    store.add_suggestion(suggestion_id="s1", expires_at=time.time() + 60, **ROW)
    locker = sa.create_engine(url)
    with locker.begin() as conn:
        conn.exec_driver_sql("LOCK TABLE feedback IN ACCESS EXCLUSIVE MODE")
        took, error = within(
            TIMEOUT_S * 5,
            lambda: store.add_feedback(
                idempotency_key="k", suggestion_id="s1", experiment="e", user_id="u", rating=4.0
            ),
        )
    assert isinstance(error, UNAVAILABLE) and took < TIMEOUT_S + MARGIN_S, (error, took)
    locker.dispose()
    time.sleep(TIMEOUT_S)
    assert store.add_feedback(
        idempotency_key="k", suggestion_id="s1", experiment="e", user_id="u", rating=4.0
    )
    store.close()


def test_a_locked_sqlite_file_raises_unavailable_within_the_timeout(tmp_path: Path) -> None:
    """Another writer holding the lock: the default store's only way to wait."""
    path = tmp_path / "store.db"
    store = EventStore(f"sqlite:///{path}", timeout_s=1.0)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        for name, call in {
            "suggestion (the driver's fast path)": lambda: store.add_suggestion(
                suggestion_id="s1", expires_at=0.0, **ROW
            ),
            "experiment (SQLAlchemy)": lambda: store.add_experiment("e", {"name": "e"}),
        }.items():
            store.breaker.down_until = 0.0  # measure each call's own wait, not the fail-fast window
            took, error = within(10, call)
            assert isinstance(error, UNAVAILABLE) and 0.9 < took < 1.0 + MARGIN_S, (name, error, took)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    time.sleep(1.0)
    assert store.add_suggestion(suggestion_id="s1", expires_at=0.0, **ROW)


def test_check_health_raises_when_the_store_hangs(proxied: tuple[SilentProxy, str, str]) -> None:
    """Serve calls it every 10 s and replaces a replica that fails it repeatedly."""
    from deployments.api import FrontierAPI

    proxy, url, _ = proxied
    replica = types.SimpleNamespace(store=EventStore(url, timeout_s=TIMEOUT_S))
    check = FrontierAPI.func_or_class.check_health  # type: ignore[attr-defined]
    check(replica)
    proxy.stop()
    took, error = within(TIMEOUT_S * 5, lambda: check(replica))
    assert isinstance(error, UNAVAILABLE) and took < TIMEOUT_S + MARGIN_S, (error, took)
    replica.store.close()


# -- over HTTP, against a Serve app whose store is behind the proxy ---------------------------


def suggest(base: str, user: str) -> requests.Response:
    return requests.post(
        f"{base}/v1/experiments/genai/suggest",
        json={"user_id": user, "context": "portrait"},
        headers={SESSION_HEADER: routing_key("genai", user)},
        timeout=CLIENT_TIMEOUT_S,
    )


def answers(base: str, user: str, status: int, within_s: float) -> float:
    """Seconds until a suggest answers `status` (polled), failing after `within_s`."""
    started = time.monotonic()
    while (code := suggest(base, user).status_code) != status:
        assert time.monotonic() - started < within_s, f"suggest still answers {code}"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def hang_app(served: Served, proxied: tuple[SilentProxy, str, str]) -> Iterator[tuple[str, SilentProxy, str]]:
    """(base URL, proxy, direct store URL) of an app whose store is behind the proxy."""
    from ray import serve

    from deployments.app import AppArgs, app_builder

    proxy, url, direct = proxied
    args = AppArgs(store_url=url, experiments=["configs/genai.yaml"], replicas=1, store_timeout_s=TIMEOUT_S)
    serve.run(
        app_builder(args),
        name="store-hang",
        route_prefix="/store-hang",
        logging_config={"log_level": "ERROR"},
    )
    try:
        yield f"{served.base}/store-hang", proxy, direct
    finally:
        proxy.resume()
        serve.delete("store-hang")


def test_http_answers_503_within_the_timeout_while_the_network_is_silent(
    hang_app: tuple[str, SilentProxy, str],
) -> None:
    base, proxy, _ = hang_app
    assert suggest(base, "ann").status_code == 200
    proxy.stop()
    started = time.monotonic()
    down = suggest(base, "ann")
    assert down.status_code == 503 and "retry" in down.json()["detail"], down.text
    assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    # eight clients at once: none waits for more than one hung call
    with ThreadPoolExecutor(8) as pool:
        timed = list(pool.map(lambda n: _timed_suggest(base, f"user-{n}"), range(8)))
    assert all(code == 503 for code, _ in timed), timed
    assert max(took for _, took in timed) < TIMEOUT_S + MARGIN_S, timed
    proxy.resume()
    assert answers(base, "ann", 200, within_s=15) < 15


def _timed_suggest(base: str, user: str) -> tuple[int, float]:
    started = time.monotonic()
    code = suggest(base, user).status_code
    return code, time.monotonic() - started


def test_http_answers_503_within_the_timeout_while_a_table_is_locked(
    hang_app: tuple[str, SilentProxy, str],
) -> None:
    base, _, direct = hang_app
    s = suggest(base, "bob").json()
    body = {"suggestion_id": s["suggestion_id"], "rating": 4, "idempotency_key": "k"}
    headers = {SESSION_HEADER: routing_key("genai", "bob")}
    url = f"{base}/v1/experiments/genai/feedback"
    locker = sa.create_engine(direct)
    with locker.begin() as conn:
        conn.exec_driver_sql("LOCK TABLE feedback IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        locked = requests.post(url, json=body, headers=headers, timeout=CLIENT_TIMEOUT_S)
        took = time.monotonic() - started
    locker.dispose()
    assert locked.status_code == 503 and took < TIMEOUT_S + MARGIN_S, (locked.text, took)
    started = time.monotonic()
    while (r := requests.post(url, json=body, headers=headers, timeout=CLIENT_TIMEOUT_S)).status_code == 503:
        assert time.monotonic() - started < 15, r.text
        time.sleep(0.2)
    assert r.status_code == 202, r.text
