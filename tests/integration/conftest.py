"""One local Ray instance for the whole integration session (never on Redis's 6379)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, logging_level=logging.WARNING, include_dashboard=False)
    yield
    ray.shutdown()
