"""Every store call waits at most `timeout_s` for the database, then raises one of
UNAVAILABLE: a service answers 503 then instead of hanging on a store that stopped
answering (down, locked, or behind a network that went silent).

A call's waits (connect, ping, reconnect, statements, commit) share one deadline, kept
per thread while the call runs (`Breaker.call`). SQLite waits only for another writer's
lock (its busy timeout). PostgreSQL is bounded three ways: server-side statement and lock
timeouts, TCP timeouts, and a psycopg connection whose every wait for the server ends at
the call's deadline (`_BoundedConnection`; it relies on psycopg's private `_WaitTimeout`,
hence psycopg's pinned minor version).

After a call that failed that slowly, calls fail at once for `timeout_s`, then try again
(`Breaker`): callers on one event loop then wait for one hung call, not one per request.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.errors import _WaitTimeout
from sqlalchemy.engine import Engine

from engine.store.errors import UNAVAILABLE, StoreError, StoreUnavailable

__all__ = ["DEFAULT_TIMEOUT_S", "Breaker", "create_engine"]

# How long any store call may wait for the database (connect, lock, statement, answer)
# before it raises one of UNAVAILABLE: a service answers 503 then instead of hanging.
DEFAULT_TIMEOUT_S = 2.0

# The deadline of the store call running in this thread (`Breaker.call`).
_CALL = threading.local()


class Breaker:
    """Bounds a store's calls: sets each call's deadline, and fails calls at once for
    `timeout_s` after one that failed slowly (`down_until`)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise StoreError(
                f"timeout_s={timeout_s!r} must be a positive number of seconds; the default is 2"
            )
        self.url = url
        self.timeout_s = timeout_s
        self.down_until = 0.0  # time.monotonic() before which calls fail at once

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One call's deadline, shared by all its waits on PostgreSQL (a ping, a reconnect,
        statements, commit). Fail at once while the store is known to hang; learn that from
        a call that failed after waiting half the timeout or more, not from one refused at once."""
        started = time.monotonic()
        if started < self.down_until:
            raise StoreUnavailable(
                f"the store at {self.url!r} did not answer within {self.timeout_s:g} s a moment "
                f"ago; calls fail at once for {self.down_until - started:.1f} s more, then try it again"
            )
        outer = getattr(_CALL, "deadline", None)
        _CALL.deadline = started + self.timeout_s if outer is None else min(outer, started + self.timeout_s)
        try:
            yield
        except UNAVAILABLE:
            now = time.monotonic()
            if now - started >= self.timeout_s / 2:
                self.down_until = now + self.timeout_s
            raise
        finally:
            _CALL.deadline = outer


def create_engine(url: str, timeout_s: float, flush: bool = True) -> Engine:
    """An engine whose commits wait for the disk, or (`flush=False`) only for the database,
    and whose every wait for the database ends after `timeout_s` (see `_pg_timeouts`)."""
    if url.startswith("sqlite"):
        # a local file never stops answering; it waits only for another writer's lock
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})
        synchronous = "FULL" if flush else "NORMAL"

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers go on while a writer commits; FULL sync makes a commit durable.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    settings = "" if flush else " -c synchronous_commit=off"
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=_pg_timeouts(timeout_s, settings))
    if engine.dialect.driver == "psycopg":

        @sa.event.listens_for(engine, "do_connect")
        def _bounded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            left = _time_left(timeout_s)  # a reconnect after a failed ping gets what is left
            if left <= 0:
                raise psycopg.OperationalError(f"the database did not answer within {timeout_s:g} s")
            conn = _BoundedConnection.connect(
                *cargs, **{**cparams, "connect_timeout": max(2, math.ceil(left))}
            )
            conn.timeout_s = timeout_s
            return conn

    return engine


def _pg_timeouts(timeout_s: float, settings: str) -> dict[str, Any]:
    """libpq's bounds, each for a way the server or the network can fail to answer.

    The server cancels a statement or lock wait a little before `timeout_s` (a clean
    error, the connection stays usable); the client gives up on any answer at
    `timeout_s` (`_BoundedConnection`), which also covers a network that stops
    answering (a server-side timeout cannot); TCP gives up on unacknowledged data at
    `timeout_s` and finds dead idle connections by keepalives.
    """
    server_ms = max(1, int(timeout_s * 900))
    return {
        "connect_timeout": max(2, math.ceil(timeout_s)),  # whole seconds, 2 at least (libpq)
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": max(1, int(timeout_s * 1000)),
        "options": f"-c statement_timeout={server_ms} -c lock_timeout={server_ms}{settings}",
    }


def _time_left(timeout_s: float) -> float:
    """Seconds left to the running call's deadline; `timeout_s` outside a bounded call."""
    deadline = getattr(_CALL, "deadline", None)
    return timeout_s if deadline is None else deadline - time.monotonic()


class _BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits for the server (query, commit, ping) end at the
    call's deadline: the connection is closed then (its state is unknown) and the call
    raises OperationalError, which SQLAlchemy reads as a disconnect."""

    timeout_s: float = DEFAULT_TIMEOUT_S

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        left = _time_left(self.timeout_s) if timeout is None else timeout
        try:
            if left <= 0:
                raise _WaitTimeout("no time left")
            return super().wait(gen, interval, left)
        except _WaitTimeout:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.timeout_s:g} s; connection closed"
            ) from None
