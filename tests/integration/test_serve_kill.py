"""Killing replicas (the state shards) under a load of suggest/feedback: no acknowledged
feedback is lost and the service answers again (Serve replaces them; the users of a dead
replica move to a live one, which rebuilds them from the store)."""

from __future__ import annotations

import threading
import time

import ray

from engine.client import FrontierClient, FrontierHTTPError
from engine.store import EventStore
from tests.integration.conftest import Served

PROGRESS_DEADLINE_S = 120.0  # liveness bound only: recovery takes seconds, this never decides speed


class Load:
    """Threads of simulated users: suggest, then rate it; remembers every acknowledged key."""

    def __init__(self, base: str, threads: int = 4) -> None:
        self.client = FrontierClient(base, retries=6, backoff_s=0.2, timeout_s=30)
        self.acked: list[str] = []  # idempotency keys
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
                self.acked.append(key)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for(self, more: int) -> float:
        """Seconds until `more` further acknowledgements."""
        start = time.monotonic()
        with self._lock:
            base = len(self.acked)
        while time.monotonic() - start < PROGRESS_DEADLINE_S:
            with self._lock:
                if len(self.acked) >= base + more:
                    return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"no progress in {PROGRESS_DEADLINE_S}s; errors: {self.errors[-5:]}")


def kill_replica(app: str, deployment: str) -> str:
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = sorted(
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)
    )
    assert names, f"no replica of {app}/{deployment} to kill"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def test_killing_replicas_loses_no_acknowledged_feedback(served: Served) -> None:
    recoveries = []
    with Load(served.base, threads=6) as load:
        load.wait_for(20)
        for _ in range(2):  # the second kill may hit the replacement of the first
            kill_replica("frontier", "FrontierAPI")
            recoveries.append(load.wait_for(20))
    print("recovered after each kill in", ", ".join(f"{r:.1f}s" for r in recoveries))
    stored = {row["idempotency_key"] for row in EventStore(served.store_url).events("feedback")}
    missing = [key for key in load.acked if key not in stored]
    assert len(load.acked) >= 60 and not missing
    assert FrontierClient(served.base).healthy()
