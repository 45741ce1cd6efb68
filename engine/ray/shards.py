"""Online state in Ray actors: shards of `OnlineEngine`, routed by hash of (experiment, user).

A shard is a cache over the store: Ray restarts a dead shard, which rebuilds what it
needs by replaying the store. Feedback is acknowledged only after the store write, so a
shard killed mid-stream loses nothing acknowledged; retried calls are idempotent (the
feedback key), and a retried suggest only leaves an extra suggestion that expires.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

import ray

from engine.online import Feedback, FeedbackResult, OnlineEngine, Suggestion
from engine.ray.runtime import ensure_ray
from engine.routing import routing_key, shard_of
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["Shard", "ShardActor", "ShardRouter"]


class Shard:
    """An OnlineEngine behind plain, picklable calls, as a Ray actor (the Serve app runs its
    engines in its replicas instead). Calls are serialised by a lock: the engine is not
    thread-safe."""

    def __init__(self, store_url: str, options: dict[str, Any]) -> None:
        self.engine = OnlineEngine(EventStore(store_url), **options)
        self._lock = threading.Lock()

    def suggest(self, experiment: str, user_id: str, context: str | list[float] | None) -> dict[str, Any]:
        with self._lock:
            return asdict(self.engine.suggest(experiment, user_id, context))

    def feedback(
        self,
        suggestion_id: str,
        feedback: dict[str, Any],
        idempotency_key: str | None,
        experiment: str | None = None,
    ) -> FeedbackResult:
        fb = Feedback.model_validate(feedback)
        with self._lock:
            return self.engine.feedback(suggestion_id, fb, idempotency_key, experiment=experiment)

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        with self._lock:
            return self.engine.profile(experiment, user_id)

    def set_preferences(self, experiment: str, user_id: str, weights: dict[str, float]) -> dict[str, float]:
        with self._lock:
            return self.engine.set_preferences(experiment, user_id, weights)

    def ping(self) -> bool:
        return True


ShardActor: Any = ray.remote(max_restarts=-1, max_task_retries=3, num_cpus=0)(Shard)


class ShardRouter:
    """Creates the shard actors and sends each call to the shard owning the user."""

    def __init__(self, store_url: str, shards: int = 2, **options: Any) -> None:
        if shards < 1:
            raise ValueError(f"shards={shards} must be at least 1")
        ensure_ray()
        self.store = EventStore(store_url)
        self.shards = [ShardActor.remote(store_url, options) for _ in range(shards)]
        ray.get([s.ping.remote() for s in self.shards])

    def register(self, spec: ExperimentSpec) -> bool:
        return self.store.add_experiment(spec.name, spec.model_dump(mode="json"))

    def _shard(self, experiment: str, user_id: str) -> Any:
        return self.shards[shard_of(routing_key(experiment, user_id), len(self.shards))]

    def suggest(self, experiment: str, user_id: str, context: str | list[float] | None = None) -> Suggestion:
        row = ray.get(self._shard(experiment, user_id).suggest.remote(experiment, user_id, context))
        return Suggestion(**row)

    def feedback(
        self, suggestion_id: str, feedback: Feedback, idempotency_key: str | None = None
    ) -> FeedbackResult:
        """Written by the user's shard (the id says which), which learns it at once."""
        shard = self.shards[shard_of(suggestion_id, len(self.shards))]
        result: FeedbackResult = ray.get(
            shard.feedback.remote(suggestion_id, feedback.model_dump(), idempotency_key)
        )
        return result

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        result: dict[str, Any] = ray.get(self._shard(experiment, user_id).profile.remote(experiment, user_id))
        return result
