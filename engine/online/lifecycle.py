"""An experiment's model versions over the store: retrain, activate, export and import.

Each writes its event to the `models` log first (engine.experiments.versions); the state
in memory is then stale and rebuilt from the store, as every replica's is once it reads
the event (engine.online.learning). See engine/online/retrain.py for how a retrain fits
and judges, and the README's lifecycle section for the HTTP and CLI forms.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from engine.experiments import ModelVersion, VariantError, check_priors
from engine.experiments.schedule import Claim
from engine.online.front_prior import Front
from engine.online.priors import Priors
from engine.online.retrain import MIN_ROWS, Rated, Score, constants, fit, priors_of, rated_rows, score
from engine.online.state import LEARNER_CONSTANTS, Experiment
from engine.spec import ExperimentSpec

__all__ = [
    "DAY_S",
    "EXPORT_FORMAT",
    "Job",
    "Judged",
    "RetrainPlan",
    "activate",
    "export_version",
    "finish_job",
    "import_version",
    "judge",
    "plan_retrain",
    "read_versions",
    "record_retrain",
]

EXPORT_FORMAT = "frontier.model/1"
MAX_IMPORT = 64 * 1024  # bytes of JSON an imported version may take
DAY_S = 86_400.0


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain reads from the store, so that its fitting can run off the event loop."""

    spec: ExperimentSpec
    rated: list[Rated]
    active: ModelVersion
    front: Front
    proposed: dict[str, float] | None
    days: float
    now: float
    trigger: str


@dataclass(frozen=True)
class Judged:
    """The candidate's constants and both models' scores."""

    priors: Priors
    candidate: Score
    current: Score
    how: str


def plan_retrain(
    exp: Experiment,
    days: float | None = None,
    proposed: dict[str, Any] | None = None,
    now: float | None = None,
    trigger: str = "request",
) -> RetrainPlan:
    """Read the last `days` of feedback (`proposed`: constants to judge instead of a fit)."""
    now = time.time() if now is None else now
    days = exp.spec.lifecycle.days if days is None else days
    if not 0 < days <= 3650:
        raise VariantError(f"days={days} must be in (0, 3650]")
    checked = check_priors(proposed, LEARNER_CONSTANTS) if proposed is not None else None
    read_versions(exp)
    rows = [r for r in exp.store.feedback_since(exp.spec.name, 0) if r["recorded_at"] >= now - days * DAY_S]
    active = exp.models.versions[exp.models.active]
    return RetrainPlan(exp.spec, rated_rows(exp.spec, rows), active, exp.front, checked, days, now, trigger)


def judge(plan: RetrainPlan) -> Judged | None:
    """Fit (or take the proposed constants) and score both models; None without enough
    feedback. Touches no shared state: it may run in a thread. On one BLAS thread: the
    replays' matrices are small (2026-12-01, 300 ratings in 4 contexts: a replay took 0.41 s
    on one OpenBLAS thread, 1.24 s on two; two retrains at once on two threads each took
    80-120 s apiece instead of 4-5 s)."""
    if len(plan.rated) < MIN_ROWS:
        return None
    with threadpool_limits(1):
        return _judged(plan)


def _judged(plan: RetrainPlan) -> Judged:
    spec, rated, start = plan.spec, plan.rated, priors_of(plan.active.priors)
    current = score(spec, rated, start, plan.front)
    if plan.proposed is None:
        fitted, found = fit(spec, rated, start, plan.front)
        return Judged(
            fitted, found, current, f"refitted on {found.n_fit} rewards of the last {plan.days:g} days"
        )
    proposed = priors_of(plan.proposed)
    return Judged(proposed, score(spec, rated, proposed, plan.front), current, "proposed constants")


def record_retrain(exp: Experiment, plan: RetrainPlan, judged: Judged | None) -> dict[str, Any]:
    """Write the candidate version, and its activation when it beats the active version on
    the held-out feedback; returns what was done."""
    if judged is None:
        reason = (
            f"{len(plan.rated)} rewards in the last {plan.days:g} days; a retrain needs at least {MIN_ROWS}"
        )
        return {"status": "skipped", "reason": reason, "trigger": plan.trigger}
    found, current, active = judged.candidate, judged.current, plan.active
    beats = found.held_out > current.held_out
    verdict = "beats" if beats else "does not beat"
    why = (
        f"held-out log-likelihood {found.held_out:.4f} per reward over the last {found.n_held_out} "
        f"{verdict} the active {active.version}'s {current.held_out:.4f}"
    )
    version = ModelVersion(
        version=exp.models.next_version("minor"),
        parent=active.version,
        reason=f"{plan.trigger}: {judged.how}; {why}",
        priors=constants(judged.priors),
        front_run=active.front_run,
        fitted_seq=plan.rated[found.n_fit - 1].seq,
        metrics={
            "candidate": found.to_dict(),
            "active": current.to_dict(),
            "days": plan.days,
            "first_seq": plan.rated[0].seq,
            "last_seq": plan.rated[-1].seq,
        },
        created_at=plan.now,
    )
    _create(exp, version)
    result = {
        "status": "activated" if beats else "draft",
        "version": version.to_dict(),
        "trigger": plan.trigger,
    }
    if beats:
        result["event"] = activate(exp, version.version, f"{plan.trigger}: {why}", by="retrain")
    return result


@dataclass(frozen=True)
class Job:
    """A retrain this replica leads (scheduled or requested): its claim and what it read."""

    claim: Claim
    plan: RetrainPlan


def finish_job(exp: Experiment, job: Job, judged: Judged | None) -> dict[str, Any]:
    """Record the retrain's outcome (a scheduled run also derives an evolution candidate,
    when the spec enables evolution), and the job's result with it."""
    try:
        result = record_retrain(exp, job.plan, judged)
        if job.claim.trigger == "schedule" and exp.spec.ab.evolution.enabled:
            made = exp.ab.evolve(force=True)
            result["evolution"] = (
                made.name if made else "no candidate: max_live run, or nothing new to derive"
            )
    except VariantError as e:
        job.claim.finish({"error": str(e)}, failed=True)
        raise
    job.claim.finish(result)
    return result


def _create(exp: Experiment, version: ModelVersion) -> None:
    key = f"{exp.spec.name}/model@{version.version}"
    row = {"experiment": exp.spec.name, "version": version.version, "change": "created"}
    if not exp.store.add_event("models", idempotency_key=key, **row, state=version.to_dict()):
        raise VariantError(f"model version {version.version} was created meanwhile elsewhere; retry", 409)
    read_versions(exp)


def activate(exp: Experiment, version: str, reason: str = "requested", by: str = "admin") -> dict[str, Any]:
    """Serve `version` from now on (any version: an earlier one is a rollback); returns the
    event. `by`: who decided (an admin, or a retrain that beat the active version)."""
    read_versions(exp)
    exp.models.get(version)
    if version == exp.models.active:
        raise VariantError(f"model version {version} is already active", 409)
    state = {"previous": exp.models.active, "reason": reason, "by": by}
    row = {"experiment": exp.spec.name, "version": version, "change": "activated", "state": state}
    exp.store.add_event("models", idempotency_key=uuid.uuid4().hex, **row)
    read_versions(exp)
    exp.stale = True  # the engine rebuilds the learner from that version's constants
    return exp.models.events[-1]


def read_versions(exp: Experiment) -> None:
    """Apply the `models` rows written since the last read."""
    for row in exp.store.since("models", exp.spec.name, exp.models.seq):
        exp.models.apply(row)


def export_version(exp: Experiment, version: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """The version as a JSON document, and the feedback it was fitted on as a table (users
    pseudonymised by a hash salted with the experiment's name)."""
    read_versions(exp)
    found = exp.models.get(version)
    document = {"format": EXPORT_FORMAT, "experiment": exp.spec.name, "status": exp.models.status(version),
                **found.to_dict()}  # fmt: skip
    first = int(found.metrics.get("first_seq", found.fitted_seq + 1))
    rows = [r for r in exp.store.feedback_since(exp.spec.name, first - 1) if r["seq"] <= found.fitted_seq]
    table = pd.DataFrame(
        [
            {
                "seq": r["seq"],
                "user": _pseudonym(exp.spec.name, r["user_id"]),
                "context": str(r["context"]),
                "params": str(r["params"]),
                "rating": r["rating"],
                "signal": r["signal"],
                "recorded_at": r["recorded_at"],
            }
            for r in rows
        ],
        columns=["seq", "user", "context", "params", "rating", "signal", "recorded_at"],
    )
    document["rows"] = len(table)
    return document, table


def _pseudonym(salt: str, user_id: str) -> str:
    return hashlib.sha256(f"{salt}/{user_id}".encode()).hexdigest()[:16]


def import_version(exp: Experiment, document: dict[str, Any]) -> dict[str, Any]:
    """A version exported from any experiment, as a new major version here (a draft until
    activated); its constants are checked as a learner variant's are."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise VariantError(f"not a model version export: its 'format' must be {EXPORT_FORMAT!r}")
    size = len(json.dumps(document, default=str))
    if size > MAX_IMPORT:
        raise VariantError(f"the export is {size} bytes of JSON; the limit is {MAX_IMPORT}")
    priors = check_priors(document.get("priors", {}), LEARNER_CONSTANTS)
    read_versions(exp)
    origin = f"{document.get('experiment')}@{document.get('version')}"
    version = ModelVersion(
        version=exp.models.next_version("major"),
        parent=None,
        reason=f"imported from {origin}: {document.get('reason', '')}"[:1000],
        priors=priors,
        front_run=exp.models.versions[exp.models.active].front_run,
        fitted_seq=0,
        metrics={"imported": origin, "metrics_then": document.get("metrics", {})},
        created_at=time.time(),
    )
    _create(exp, version)
    return {**version.to_dict(), "status": exp.models.status(version.version)}
