"""Shared fixtures: one local Ray per session (never on Redis's 6379), a `ray start` head,
store backends."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
import requests
import sqlalchemy as sa

from engine.ports import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


# where the session's Ray exports metrics in Prometheus's format (ray start --metrics-export-port)
METRICS_PORT = free_port()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(
        address="local",
        num_cpus=2,
        logging_level=logging.WARNING,
        include_dashboard=False,
        _metrics_export_port=METRICS_PORT,
    )
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


@dataclass(frozen=True)
class RayHead:
    """A head started with `ray start`, as on a cluster: token auth, its own directory."""

    address: str  # the dashboard (`ray job submit`, `serve deploy`)
    env: dict[str, str]  # a client's environment: token auth and where the token is
    cwd: Path  # where `ray start` ran, not the project
    log: Path


def ray_env(token_path: Path) -> dict[str, str]:
    """Token auth with a token file of our own: a fresh machine has no ~/.ray/auth_token."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS"):  # they would win over the file and the head
        env.pop(name, None)
    return env


def new_ray_token(directory: Path) -> Path:
    """A cluster token as `ray get-auth-token --generate` makes one, in `directory`."""
    path = directory / "ray_auth_token"
    path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def ray_head(tmp_path: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[RayHead]:
    """A Ray head started in a directory of its own with `extra_env` in its environment,
    torn down by signalling `ray start --block`. Every port is a free one, never a default
    that another Ray on this machine may hold (agent 52365, client 10001) or Redis (6379)."""
    env = ray_env(new_ray_token(tmp_path))
    cwd, log = tmp_path / "head", tmp_path / "head.log"
    cwd.mkdir()
    port, dashboard, agent, client = (free_port() for _ in range(4))
    # nothing to drain in a test: without this, SIGTERM waits 30 s for Serve's actors
    head_env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **(extra_env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [BIN / "ray", "start", "--head", f"--port={port}", f"--dashboard-port={dashboard}",
             f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
             "--num-cpus=2", "--block"],
            cwd=cwd, env=head_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        head = RayHead(address=f"http://127.0.0.1:{dashboard}", env=env, cwd=cwd, log=log)
        try:
            _wait_for_jobs(head, proc)
            yield head
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            _forget_cluster(port)


def _wait_for_jobs(head: RayHead, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Ready means a job is accepted: the dashboard answers before its job agent is up."""
    deadline = time.monotonic() + timeout_s
    while not _job_accepted(head):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Ray head did not come up:\n{head.log.read_text()}")
        time.sleep(0.5)


def _job_accepted(head: RayHead) -> bool:
    try:
        url, headers = f"{head.address}/api/jobs/", ray_auth_headers(head)
        r = requests.post(url, json={"entrypoint": "true"}, headers=headers, timeout=30)
    except requests.ConnectionError:
        return False
    return r.ok


def _forget_cluster(port: int) -> None:
    """As `ray stop` would: a stale pointer makes later `ray.init()` calls try to join it."""
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if current.exists() and current.read_text().strip().endswith(f":{port}"):
        current.unlink()


def ray_auth_headers(head: RayHead) -> dict[str, str]:
    """What the dashboard's REST API wants from a client of a token-auth cluster."""
    return {"Authorization": f"Bearer {Path(head.env['RAY_AUTH_TOKEN_PATH']).read_text()}"}


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
