"""`ray job submit` against a head started with `ray start`, as the README shows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ray_env() -> dict[str, str]:
    # Ray 2.60 clusters from `ray start` need token auth for job submission.
    return {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{BIN}:{os.environ['PATH']}"}


@pytest.fixture
def head(tmp_path: Path) -> Iterator[str]:
    """A Ray head on free ports (never 6379), torn down by signalling `ray start --block`."""
    port, dashboard = free_port(), free_port()
    log = (tmp_path / "head.log").open("w")
    proc = subprocess.Popen(
        [BIN / "ray", "start", "--head", f"--port={port}", f"--dashboard-port={dashboard}",
         "--num-cpus=2", "--block"],
        env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        # ready means a job runs: the dashboard answers before its job agent is up
        while subprocess.run(
            [BIN / "ray", "job", "submit", "--address", address, "--", "true"],
            env=ray_env(), capture_output=True,
        ).returncode:  # fmt: skip
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Ray head did not come up:\n{(tmp_path / 'head.log').read_text()}")
            time.sleep(1)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        # as `ray stop` would: a stale pointer makes later `ray.init()` calls try to join it
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def test_ray_job_submit_explores_on_the_cluster(head: str, tmp_path: Path) -> None:
    out = tmp_path / "zdt1"
    job = subprocess.run(
        [BIN / "ray", "job", "submit", "--address", head, "--working-dir", ".", "--",
         "frontier", "explore", "configs/zdt1.yaml", "--out", str(out), "--no-progress"],
        cwd=ROOT, env=ray_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert "succeeded" in job.stdout + job.stderr
    assert "hypervolume" in job.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 100 and (trials["status"] == "completed").all()
    assert len(pd.read_parquet(out / "front.parquet")) > 0
