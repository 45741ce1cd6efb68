"""When an experiment's scheduled job runs, and which replica runs it: the one whose claim
the store took first.

A spec's `lifecycle.schedule` (daily, weekly, monthly or a cron expression, UTC; croniter
parses it) fires at times; at any moment the period due is the latest fire time not
after now and not before the experiment was created (periods missed while nothing ran
collapse into the latest one). Every replica asks; each writes a claim keyed by the
period, and the store's unique key lets exactly one write land: that replica runs the job
and writes its result. A claim not finished within `LEASE_S` (its replica died) may be
claimed again by the next attempt. Jobs on request (`POST …/retrain`) are recorded in the
same table, so `GET …/schedule` shows every run.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["LEASE_S", "Claim", "Schedule"]

LEASE_S = 3600.0  # a run that has not finished after this long is taken over
JOB = "retrain"


class Claim:
    """A run this replica leads: finish it with its result."""

    def __init__(self, store: EventStore, experiment: str, key: str, period: float | None) -> None:
        self.store, self.experiment, self.key, self.period = store, experiment, key, period
        self.trigger = "schedule" if period is not None else "request"

    def finish(self, result: dict[str, Any], failed: bool = False) -> None:
        status = "failed" if failed else "finished"
        row = {"experiment": self.experiment, "job": JOB, "period": self.period, "status": status}
        self.store.add_event(
            "jobs", idempotency_key=f"{self.key}/done", trigger=self.trigger, result=result, **row
        )


class Schedule:
    """One experiment's scheduled runs over the store's `jobs` table."""

    def __init__(self, store: EventStore, spec: ExperimentSpec, created_at: float) -> None:
        self.store, self.spec, self.created_at = store, spec, created_at
        self.cron = spec.lifecycle.cron()

    def period_due(self, now: float) -> float | None:
        """The latest fire time not after `now` (None: no schedule, or none since creation)."""
        if self.cron is None:
            return None
        fire = float(croniter(self.cron, now + 1e-6).get_prev(float))
        return fire if fire >= self.created_at else None

    def next_run(self, now: float) -> float | None:
        return float(croniter(self.cron, now).get_next(float)) if self.cron else None

    def claim(self, now: float | None = None) -> Claim | None:
        """This replica's claim on the period due, if it got it; None when nothing is due, the
        period ran, or another replica leads it (and its lease holds)."""
        now = time.time() if now is None else now
        period = self.period_due(now)
        if period is None:
            return None
        runs = [r for r in self._rows() if r["period"] == period]
        if any(r["status"] != "started" for r in runs):
            return None  # this period's run finished (or failed: the next period tries again)
        if runs and now - runs[-1]["result"]["claimed_at"] < LEASE_S:
            return None  # another replica leads it
        key = f"{self.spec.name}/{JOB}/{period:.0f}/{len(runs) + 1}"
        return self._claim(key, period, "schedule", now)

    def claim_request(self) -> Claim:
        """A run on request (an admin's retrain): recorded like a scheduled one."""
        key = f"{self.spec.name}/{JOB}/request/{uuid.uuid4().hex}"
        self._claim(key, None, "request", time.time())  # a fresh key: always ours
        return Claim(self.store, self.spec.name, key, None)

    def _claim(self, key: str, period: float | None, trigger: str, now: float) -> Claim | None:
        """The claim's time is the caller's clock (a lease is judged on that clock)."""
        row = {"experiment": self.spec.name, "job": JOB, "trigger": trigger, "period": period}
        started = {"status": "started", "result": {"claimed_at": now}}
        if not self.store.add_event("jobs", idempotency_key=key, **started, **row):
            return None
        return Claim(self.store, self.spec.name, key, period)

    def _rows(self) -> list[dict[str, Any]]:
        return self.store.since("jobs", self.spec.name, 0)

    def status(self, now: float | None = None, last: int = 20) -> dict[str, Any]:
        """The schedule, the next run, and the last runs with their results (newest first)."""
        now = time.time() if now is None else now
        started: dict[str, dict[str, Any]] = {}
        for row in self._rows():
            key = row["idempotency_key"].removesuffix("/done")
            if row["status"] == "started":
                at = row["result"]["claimed_at"]
                running = "running" if now - at < LEASE_S else "abandoned"
                started[key] = {"trigger": row["trigger"], "period": _iso(row["period"]),
                                "started_at": _iso(at), "status": running}  # fmt: skip
            elif key in started:
                started[key].update(
                    status=row["status"], finished_at=_iso(row["recorded_at"]), result=row["result"]
                )
        following = self.next_run(now)
        return {
            "schedule": self.spec.lifecycle.schedule,
            "cron": self.cron,
            "timezone": "UTC",
            "days": self.spec.lifecycle.days,
            "next_run": _iso(following),
            "runs": list(reversed(started.values()))[:last],
        }


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat() if t is not None else None
