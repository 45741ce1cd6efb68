"""Keep Tune's trial actors together and alive, so concurrency 2 means two workers.

With `reuse_actors=True`, Tune requests an actor for each staged trial, and when a running
trial finishes first it hands that trial's actor to the staged trial and cancels the actor
it had requested (TuneController._maybe_reuse_cached_actor). Starting an actor (a worker
process, our imports, the objective's images) took 5.6 s here; a 128 px vectorize trial
takes 0.12 s. So whenever a new actor has to start while another is running short trials,
it is cancelled, and so is every later one: the run goes serial (measured 2026-12-01: 3 of
4 concurrency-2 runs, 91-95 s against 48.5 s, one actor started in 400 trials).

Two moments need a new actor. At the start: each actor's first step waits here until the
expected number of actors has arrived (`arrive`); not its setup, since Tune could still
process one actor's first result before it notices another has started (measured: 1 run in
8 serial with the wait in setup, 2026-12-07). And whenever the searcher has nothing to
propose until a running trial reports (a generation boundary of NSGA-II): Tune then keeps
one idle actor and stops the others, so the next generation starts serial (measured
2026-12-07: 6 of 6 runs of pymoo NSGA-II on ZDT1, 30 trials, one worker from trial 20 on).
There the searcher hands Tune an idle trial instead, which holds its actor until the next
result is recorded (`wait_for_result`). Tune has no option for either; this is ours.
"""

from __future__ import annotations

import asyncio
import contextlib

import ray

__all__ = ["ActorKeeper"]


@ray.remote(num_cpus=0)
class ActorKeeper:
    """Counts the trial actors that have stepped and the results recorded."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.recorded = 0
        self._all = asyncio.Event()
        self._results = asyncio.Condition()

    async def arrive(self, timeout_s: float) -> None:
        """Count one more actor and wait for the rest (at most `timeout_s`)."""
        self.arrived += 1
        if self.arrived >= self.expected:
            self._all.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all.wait(), timeout_s)

    def count(self) -> int:
        """How many actors have arrived so far."""
        return self.arrived

    async def result_recorded(self, recorded: int) -> None:
        """The exploration now holds `recorded` results: wake the idle trials."""
        async with self._results:
            self.recorded = recorded
            self._results.notify_all()

    async def wait_for_result(self, seen: int, timeout_s: float) -> None:
        """Return once more than `seen` results are recorded, or after `timeout_s`."""
        async with self._results:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._results.wait_for(lambda: self.recorded > seen), timeout_s)
