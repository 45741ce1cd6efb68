"""`ray job submit` against a head started with `ray start`, as the README shows."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import BIN, ROOT, RayHead, ray_head


@pytest.fixture
def head(tmp_path: Path) -> Iterator[RayHead]:
    with ray_head(tmp_path) as h:
        yield h


def test_ray_job_submit_explores_on_the_cluster(head: RayHead, tmp_path: Path) -> None:
    out = tmp_path / "zdt1"
    job = subprocess.run(
        [BIN / "ray", "job", "submit", "--address", head.address, "--working-dir", ".", "--",
         "frontier", "explore", "configs/zdt1.yaml", "--out", str(out), "--no-progress"],
        cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert "succeeded" in job.stdout + job.stderr
    assert "hypervolume" in job.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 100 and (trials["status"] == "completed").all()
    assert len(pd.read_parquet(out / "front.parquet")) > 0
