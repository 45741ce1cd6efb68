"""Frontier's metrics reach Ray's Prometheus endpoint with values that match the load.

Ray exports on an interval (about 10 s), so each test polls the endpoint until its
expected values show, up to a deadline."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from ray import serve

from deployments.app import AppArgs, app_builder
from engine.offline.explore import explore
from engine.ray import run_on_tune
from engine.spec import parse_spec
from tests.integration.conftest import ADMIN_TOKEN, METRICS_PORT, Served

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DEADLINE_S = 90.0


def scrape() -> Samples:
    """Every sample on the endpoint, by name and labels (without Ray's own labels)."""
    text = requests.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).text
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("ray_frontier_"):
                # ours are lower case; Ray adds WorkerId, SessionName, ... and otel_scope_*
                labels = frozenset((k, v) for k, v in s.labels.items() if k.islower() and "otel" not in k)
                key = (s.name.removeprefix("ray_"), labels)
                found[key] = found.get(key, 0.0) + s.value  # summed over processes
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def wait_for(check: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        samples = scrape()
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(1.0)


@pytest.fixture(scope="module")
def metered(served: Served) -> Iterator[str]:
    """An app of one replica holding at most 3 user states, so what it counts is exact."""
    os.environ["FRONTIER_ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        app = app_builder(AppArgs(store_url=served.store_url, experiments=[], replicas=1, max_users=3))
    finally:
        del os.environ["FRONTIER_ADMIN_TOKEN"]
    serve.run(app, name="metered", route_prefix="/metered", logging_config={"log_level": "WARNING"})
    base = served.base + "/metered"
    yield base
    serve.delete("metered")


def test_serve_metrics_match_the_load(metered: str) -> None:
    spec = yaml.safe_load(Path("configs/genai.yaml").read_text())
    name = spec["name"] = f"metered-{uuid.uuid4().hex[:8]}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert requests.post(f"{metered}/v1/experiments", json=spec, headers=admin, timeout=30).status_code == 201
    url = f"{metered}/v1/experiments/{name}"
    users, contexts = [f"u{i}" for i in range(8)], ["portrait", "landscape"]
    ids = []
    for user in users:  # each user once per context, one after the other: 8 users through 3 slots
        for context in contexts:
            r = requests.post(f"{url}/suggest", json={"user_id": user, "context": context}, timeout=30)
            assert r.status_code == 200, r.text
            ids.append(r.json()["suggestion_id"])
    ratings = [(i % 5) + 1 for i in range(10)]
    signals: list[dict[str, Any]] = [{"signal": "accept"}] * 3 + [{"signal": "undo", "rating": 2}] * 2
    for sid, body in zip(ids, [{"rating": r} for r in ratings] + signals, strict=False):
        r = requests.post(f"{url}/feedback", json={"suggestion_id": sid, **body}, timeout=30)
        assert r.status_code == 202, r.text
    again = requests.post(f"{url}/feedback", json={"suggestion_id": ids[0], "rating": ratings[0]}, timeout=30)
    assert again.status_code == 200  # a duplicate: counted once
    for _ in range(2):
        unknown = requests.post(f"{url}/feedback", json={"suggestion_id": "nope", "rating": 3}, timeout=30)
        assert unknown.status_code == 404
    assert requests.post(f"{url}/suggest", json={"user": "u0"}, timeout=30).status_code == 422
    ratings += [2, 2]

    e = {"experiment": name}
    suggest_route = {"route": "/v1/experiments/{name}/suggest", "method": "POST"}
    feedback_route = {"route": "/v1/experiments/{name}/feedback", "method": "POST"}
    expected: list[tuple[str, dict[str, str], float]] = [
        ("frontier_suggestions_total", {**e, "variant": "default"}, 16),
        ("frontier_feedback_total", {**e, "kind": "rating"}, 12),
        ("frontier_feedback_total", {**e, "kind": "accept"}, 3),
        ("frontier_feedback_total", {**e, "kind": "undo"}, 2),
        ("frontier_rating_stars_total", {**e, "variant": "default"}, sum(ratings)),
        ("frontier_rating_count", e, 12),
        ("frontier_rating_bucket", {**e, "le": "1.5"}, ratings.count(1)),
        ("frontier_rating_bucket", {**e, "le": "2.5"}, sum(r <= 2 for r in ratings)),
        ("frontier_users", e, 3),
        ("frontier_users_evicted_total", e, 5),
        ("frontier_contexts", e, 2),
        ("frontier_errors_total", {**feedback_route, "status": "404"}, 2),
        ("frontier_errors_total", {**suggest_route, "status": "422"}, 1),
    ]
    want = [(n, labels, float(v)) for n, labels, v in expected]

    def seen(samples: Samples) -> list[tuple[str, dict[str, str], float]]:
        return [(n, labels, value(samples, n, **labels)) for n, labels, _ in expected]

    samples = wait_for(lambda s: seen(s) == want)
    assert seen(samples) == want
    # every suggest answered (16, and the 422) is in the latency histogram
    assert value(samples, "frontier_request_seconds_count", **suggest_route) >= 17


def test_exploration_metrics_match_the_run(tmp_path: Path) -> None:
    data = yaml.safe_load(Path("configs/zdt1.yaml").read_text())
    name = f"zdt1-{uuid.uuid4().hex[:8]}"
    data.update(name=name, searcher={"name": "random"}, budget={"trials": 12}, concurrency=2)
    summary = explore(parse_spec(data), tmp_path, runner=run_on_tune, progress=False)
    tags = {"experiment": name, "run": summary.run_id, "searcher": "random"}

    def done(s: Samples) -> bool:
        return value(s, "frontier_trials_total", **tags) == 12

    samples = wait_for(done)
    assert value(samples, "frontier_trials_total", **tags) == 12
    assert value(samples, "frontier_trials_total", **tags, status="completed") == summary.completed
    assert value(samples, "frontier_hypervolume", **tags) == pytest.approx(summary.hypervolume)
