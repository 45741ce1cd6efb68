"""Killing a shard replica, then an ingress replica, under a load of suggest/feedback:
no acknowledged feedback is lost and the service answers again (Serve replaces both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ray

from engine.client import FrontierClient, FrontierHTTPError
from engine.service import routing_key, shard_of
from engine.store import EventStore
from tests.integration.conftest import Served

PROGRESS_DEADLINE_S = 120.0  # liveness bound only: recovery takes seconds, this never decides speed


class Load:
    """Threads of simulated users: suggest, then rate it; remembers every acknowledged key."""

    def __init__(self, base: str, threads: int = 4) -> None:
        self.client = FrontierClient(base, retries=6, backoff_s=0.2, timeout_s=30)
        self.acked: list[tuple[str, str]] = []  # (idempotency key, user)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def _run(self, t: int) -> None:
        n = 0
        while not self._stop.is_set():
            user = f"load-{t}-{n % 7}"
            key = f"load-{t}-{n}"
            n += 1
            try:
                s = self.client.suggest("genai", user, "portrait")
                self.client.feedback("genai", s["suggestion_id"], rating=1 + n % 5, idempotency_key=key)
            except (FrontierHTTPError, OSError) as e:  # not acknowledged: allowed to be lost
                with self._lock:
                    self.errors.append(f"{type(e).__name__}: {e}")
                continue
            with self._lock:
                self.acked.append((key, user))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for(self, more: int, where: Callable[[str], bool] = lambda user: True) -> float:
        """Seconds until `more` further acknowledgements (for users matching `where`)."""
        start = time.monotonic()
        with self._lock:
            base = sum(where(u) for _, u in self.acked)
        while time.monotonic() - start < PROGRESS_DEADLINE_S:
            with self._lock:
                if sum(where(u) for _, u in self.acked) >= base + more:
                    return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"no progress in {PROGRESS_DEADLINE_S}s; errors: {self.errors[-5:]}")


def kill_replica(app: str, deployment: str) -> None:
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)
    ]
    assert names, f"no replica of {app}/{deployment} to kill"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)


def test_killing_replicas_loses_no_acknowledged_feedback(served: Served) -> None:
    on_shard0 = lambda user: shard_of(routing_key("genai", user), 2) == 0  # noqa: E731
    with Load(served.base) as load:
        load.wait_for(20)
        kill_replica("frontier", "Shard0")
        shard_recovery = load.wait_for(10, on_shard0)
        kill_replica("frontier", "FrontierAPI")
        ingress_recovery = load.wait_for(20)
    print(f"recovered {shard_recovery:.1f}s after the shard kill, {ingress_recovery:.1f}s after the ingress")
    stored = {row["idempotency_key"] for row in EventStore(served.store_url).events("feedback")}
    missing = [key for key, _ in load.acked if key not in stored]
    assert len(load.acked) >= 50 and not missing
    assert FrontierClient(served.base).healthy()
