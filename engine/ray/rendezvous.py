"""Hold Tune's first trials until every trial actor has started.

With `reuse_actors=True`, Tune requests an actor for each staged trial, and when a running
trial finishes first it hands that trial's actor to the staged trial and cancels the actor
it had requested (TuneController._maybe_reuse_cached_actor). Starting an actor (a worker
process, our imports, the objective's images) took 5.6 s here; a 128 px vectorize trial
takes 0.12 s. So when the first actor finished its first trial before the second actor was
up, the second one was cancelled, and so was every later one: the whole run went serial
(measured 2026-12-01: 3 of 4 concurrency-2 runs, 91-95 s against 48.5 s, one actor started
in 400 trials). Tune has no option for this; the rendezvous is ours: each actor's setup
waits until the expected number of actors has arrived, or `timeout_s` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib

import ray

__all__ = ["Rendezvous", "workers_expected"]


@ray.remote(num_cpus=0)
class Rendezvous:
    """Counts the trial actors that have set up; `arrive` returns once `expected` have."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self._all = asyncio.Event()

    async def arrive(self, timeout_s: float) -> int:
        """Count one more actor, wait for the rest, and return how many had arrived."""
        self.arrived += 1
        if self.arrived >= self.expected:
            self._all.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all.wait(), timeout_s)
        return self.arrived


def workers_expected(concurrency: int, trials_left: int | None, slots: float) -> int:
    """How many trial actors can run at once: the concurrency, capped by the trials left
    (None: no trial budget) and by the free resources' slots."""
    n = min(concurrency, int(slots))
    if trials_left is not None:
        n = min(n, trials_left)
    return max(n, 1)
