"""Shared fixtures: one local Ray per session (never on Redis's 6379), store backends."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
import sqlalchemy as sa


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, logging_level=logging.WARNING, include_dashboard=False)
    yield
    ray.shutdown()


PG_ADMIN_URL = os.environ.get("FRONTIER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped (connections and all) afterwards."""
    name = f"frontier_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(name)
        admin.dispose()


def drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on a SQLite file and on a fresh database of the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with pg_database() as url:
        yield url


@dataclass(frozen=True)
class Served:
    """The Serve apps the API tests talk to over real HTTP."""

    base: str  # the main app, admin token ADMIN_TOKEN
    noadmin: str  # an app started without a token, leases of 1 s and no grace window
    store_url: str


ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def served(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from ray import serve

    from deployments.app import AppArgs, app_builder

    store_url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'store.db'}"
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
    os.environ["FRONTIER_ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        main = app_builder(AppArgs(store_url=store_url, experiments=["configs/genai.yaml"], replicas=2))
    finally:
        del os.environ["FRONTIER_ADMIN_TOKEN"]
    quiet = {"log_level": "WARNING"}  # no access log line per request in the test output
    serve.run(main, name="frontier", route_prefix="/", logging_config=quiet)
    short = AppArgs(store_url=store_url, experiments=[], replicas=1, lease_s=1.0, grace_s=0.0)
    serve.run(app_builder(short), name="noadmin", route_prefix="/noadmin", logging_config=quiet)
    base = f"http://127.0.0.1:{port}"
    yield Served(base=base, noadmin=f"{base}/noadmin", store_url=store_url)
    serve.shutdown()
