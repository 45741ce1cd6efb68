"""Frontier's metrics on Ray's metrics pipeline (`ray.util.metrics`).

Every Ray node exports them on its Prometheus endpoint (`ray start --head
--metrics-export-port=8080`, then `curl 127.0.0.1:8080/metrics`) with the prefix `ray_`,
and the dashboard's Metrics page charts them once Prometheus and Grafana are set up as
Ray's docs describe. Each process reports its own series (tagged `WorkerId`): sum
counters and the held-in-memory gauges across Serve replicas; `frontier_contexts` is the
experiment's count as each replica knows it (take the max).

Ray exports a histogram's buckets and count exactly but approximates its `_sum` from the
buckets, so exact sums (stars given) are counters of their own: the mean rating of a
variant is `frontier_rating_stars_total / frontier_feedback_total{kind="rating"}`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from engine.offline import Exploration
from engine.online import Feedback

__all__ = ["ExplorationMetrics", "MeasuredRequests", "ServeMetrics", "feedback_kinds", "serve_metrics"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

LATENCY_BOUNDARIES_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
RATING_BOUNDARIES = [1.5, 2.5, 3.5, 4.5]  # one bucket per star
MEMORY = {  # OnlineEngine.memory()'s keys: held now (gauges) or dropped so far (counters)
    "users": "user states held in memory",
    "contexts": "contexts the experiment knows",
    "context_models": "context models held in memory",
}
EVICTED = {
    "users_evicted": "user states dropped from memory (least recently used), rebuilt when needed",
    "context_models_evicted": "context models dropped from memory (least recently used), rebuilt when needed",
}


def feedback_kinds(feedback: Feedback) -> list[str]:
    """What a piece of feedback carries: `rating`, its signal (accept, reject, undo, like,
    dislike, super_like), `metrics`, `implicit`, `comment`; one feedback may carry several."""
    kinds = ["rating"] if feedback.rating is not None else []
    if feedback.signal is not None:
        kinds.append(str(feedback.signal))
    kinds += [k for k, v in (("metrics", feedback.metrics), ("implicit", feedback.implicit())) if v]
    if feedback.comment is not None:
        kinds.append("comment")
    return kinds


class ServeMetrics:
    """What a Serve replica counts: its requests, the suggestions and feedback it took, and
    what its engine holds in memory."""

    def __init__(self) -> None:
        self.suggestions = Counter(
            "frontier_suggestions",
            description="suggestions served, per experiment and variant (a variant's traffic)",
            tag_keys=("experiment", "variant"),
        )
        self.feedback = Counter(
            "frontier_feedback",
            description="feedback stored, per experiment, variant and kind (rating, each signal, ...)",
            tag_keys=("experiment", "variant", "kind"),
        )
        self.stars = Counter(
            "frontier_rating_stars",
            description="stars given, per experiment and variant (divide by feedback{kind=rating})",
            tag_keys=("experiment", "variant"),
        )
        self.ratings = Histogram(
            "frontier_rating",
            description="ratings (1-5 stars), one bucket per star",
            boundaries=RATING_BOUNDARIES,
            tag_keys=("experiment",),
        )
        self.latency = Histogram(
            "frontier_request_seconds",
            description="time from request to response, per route and method",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("route", "method"),
        )
        self.errors = Counter(
            "frontier_errors",
            description="responses with status 400 or more, per route and status",
            tag_keys=("route", "method", "status"),
        )
        self.held = {
            key: Gauge(f"frontier_{key}", description=text, tag_keys=("experiment",))
            for key, text in MEMORY.items()
        }
        self.evicted = {
            key: Counter(f"frontier_{key}", description=text, tag_keys=("experiment",))
            for key, text in EVICTED.items()
        }
        self._evicted_seen: dict[tuple[str, str], int] = {}

    def suggestion(self, experiment: str, variant: str) -> None:
        self.suggestions.inc(tags={"experiment": experiment, "variant": variant})

    def feedback_stored(self, experiment: str, variant: str, feedback: Feedback) -> None:
        """`variant`: its name, as suggestions are tagged (versions of a variant add up)."""
        tags = {"experiment": experiment, "variant": variant}
        for kind in feedback_kinds(feedback):
            self.feedback.inc(tags={**tags, "kind": kind})
        if feedback.rating is not None:
            self.stars.inc(feedback.rating, tags=tags)
            self.ratings.observe(feedback.rating, tags={"experiment": experiment})

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        tags = {"route": route, "method": method}
        self.latency.observe(seconds, tags=tags)
        if status >= 400:
            self.errors.inc(tags={**tags, "status": str(status)})

    def memory(self, held: Mapping[str, Mapping[str, int]]) -> None:
        """`OnlineEngine.memory()`: gauges of what is held, counters of what was dropped."""
        for experiment, counts in held.items():
            tags = {"experiment": experiment}
            for key, gauge in self.held.items():
                gauge.set(counts[key], tags=tags)
            for key, counter in self.evicted.items():
                new = counts[key] - self._evicted_seen.get((experiment, key), 0)
                if new > 0:
                    counter.inc(new, tags=tags)
                    self._evicted_seen[experiment, key] = counts[key]


@functools.cache
def serve_metrics() -> ServeMetrics:
    """The process's one set (Ray keeps one series per name, tags and process)."""
    return ServeMetrics()


class MeasuredRequests:
    """ASGI middleware: each HTTP request's latency and error status, by route template
    (`/v1/experiments/{name}/suggest`, so the series stay few); a pure ASGI wrapper, as
    Starlette's BaseHTTPMiddleware would add a task per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            serve_metrics().request(route, scope["method"], status, time.perf_counter() - start)


class ExplorationMetrics:
    """An exploration's progress as metrics (the hypervolume so far, trials by status),
    recorded by the driver that runs it on Tune; chain it with the exploration's own
    progress callback."""

    def __init__(self, exploration: Exploration) -> None:
        self.tags = {
            "experiment": exploration.spec.name,
            "run": exploration.run_id,
            "searcher": exploration.spec.searcher.name,
        }
        self.hypervolume = Gauge(
            "frontier_hypervolume",
            description="hypervolume of the exploration's feasible trials so far",
            tag_keys=tuple(self.tags),
        )
        self.trials = Counter(
            "frontier_trials",
            description="trials finished, per status (completed, infeasible, failed)",
            tag_keys=(*self.tags, "status"),
        )
        self._then = exploration.on_progress
        exploration.on_progress = self

    def __call__(self, exploration: Exploration) -> None:
        self.trials.inc(tags={**self.tags, "status": exploration.results[-1]["status"]})
        self.hypervolume.set(exploration.hypervolume, tags=self.tags)
        if self._then is not None:
            self._then(exploration)
