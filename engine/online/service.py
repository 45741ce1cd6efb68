"""The suggestion protocol over the event store, in process (Ray shards wrap this).

`suggest` returns an id, params, variant and lease expiry, written to the store before
it is returned. `feedback` is acknowledged only once durably stored, and says whether
it will be learnt (and why not); an idempotency key is scoped to its suggestion: the same
key with the same body is a no-op, with another body a conflict (409). Unknown ids and
feedback past the grace window are clear errors. The models are caches: a state is
rebuilt by replaying the store, so evicting it from memory, or losing the process,
loses nothing acknowledged. The protocol's terms are in engine/online/protocol.py, the
model in docs/online-model.md.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from engine.experiments import (
    DEFAULT_VARIANT,
    Assignment,
    Variant,
    VariantPatch,
    VariantSpec,
    check_layer,
    served_name,
)
from engine.experiments.schedule import Schedule
from engine.online import lifecycle
from engine.online.explain import profile_steps
from engine.online.learning import catch_up, why_not_learnt
from engine.online.protocol import (
    ConflictingFeedback,
    ExpiredSuggestion,
    FeedbackResult,
    InvalidRequest,
    Suggestion,
    UnknownExperiment,
    UnknownSuggestion,
    UnknownUser,
    check_id,
    content_key,
    stored_feedback,
)
from engine.online.rater import Rater
from engine.online.rewards import Feedback
from engine.online.state import Experiment
from engine.routing import routing_key
from engine.spec import MAX_CONTEXT_LABEL, ExperimentSpec
from engine.store import EventStore

__all__ = ["OPTED_OUT", "OnlineEngine"]

OPTED_OUT = "optout-"  # the prefix of suggestion ids given to opted-out users (nothing stored)


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


class OnlineEngine:
    def __init__(
        self,
        store: EventStore,
        *,
        lease_s: float = 3600.0,
        grace_s: float = 86400.0,
        max_users: int = 10_000,
        seed: int = 0,
        peer_sync_s: float = 1.0,
        max_context_models: int = 64,
    ) -> None:
        """`max_users`, `max_context_models`: user states and context models held in memory
        per experiment (least recently used ones beyond are rebuilt from the store)."""
        self.store = store
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.max_users = max_users
        self.max_context_models = max_context_models
        self.seed = seed
        self.peer_sync_s = peer_sync_s
        self._experiments: dict[str, Experiment] = {}
        # what states dropped before they were rebuilt (`memory` counts on across rebuilds)
        self._evicted_before: Counter[tuple[str, str]] = Counter()

    # -- experiments ------------------------------------------------------------------------

    def register(self, spec: ExperimentSpec) -> bool:
        """Store an experiment's spec; False if one of that name exists already. Its A/B
        range must not overlap another experiment's in its layer (InvalidRequest)."""
        others = [self.store.experiment(n) for n in self.store.experiment_names() if n != spec.name]
        try:
            check_layer(spec, [ExperimentSpec.model_validate(o["spec"]) for o in others if o])
        except ValueError as e:
            raise InvalidRequest(str(e)) from None
        return self.store.add_experiment(spec.name, spec.model_dump(mode="json"))

    # -- variants and A/B tests (engine.experiments) ------------------------------------------

    def create_variant(self, experiment: str, new: VariantSpec) -> Variant:
        """A new variant, or a new version of one; raises VariantError (nothing stored)."""
        return self._experiment(experiment).ab.create(new)

    def assign(self, experiment: str, user_id: str) -> Assignment:
        """The user's variant without a suggestion (a client that needs only its payload):
        the stored one, or drawn and stored now, as `suggest` would."""
        check_id("user_id", user_id)
        return self._experiment(experiment, sync=False).ab.assign(user_id)

    def decide(self, experiment: str, name: str, action: Literal["promote", "rollback"]) -> dict[str, Any]:
        """Promote a variant (it becomes the control) or roll it back (stopped); returns the
        event recorded, with the statistics of the moment."""
        return self._experiment(experiment).ab.decide(name, action)

    def history(self, experiment: str) -> list[dict[str, Any]]:
        """Every variant change, decisions included, oldest first."""
        return self._experiment(experiment).ab.history()

    def patch_variant(self, experiment: str, name: str, change: VariantPatch) -> Variant:
        return self._experiment(experiment).ab.patch(name, change)

    def variants(self, experiment: str) -> list[Variant]:
        ab = self._experiment(experiment).ab
        ab.sync(force=True)
        return list(ab.book.variants.values())

    def abtest(self, experiment: str) -> dict[str, Any]:
        """Per variant its users and outcomes against the control, and a recommendation."""
        return self._experiment(experiment).ab.report()

    # -- model versions (engine.online.lifecycle) ----------------------------------------------

    def versions(self, experiment: str) -> dict[str, Any]:
        """Every model version with its status, and the log of activations."""
        exp = self._experiment(experiment)
        lifecycle.read_versions(exp)
        return {"active": exp.models.active, "versions": exp.models.listing(), "events": exp.models.events}

    def activate(self, experiment: str, version: str, reason: str = "requested") -> dict[str, Any]:
        """Serve that model version from now on (an earlier one: a rollback); the event."""
        return lifecycle.activate(self._experiment(experiment), version, reason)

    def retrain(
        self,
        experiment: str,
        days: float | None = None,
        priors: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Refit the learner on recent feedback (or judge `priors`); activate the new
        version only if it beats the active one on held-out feedback (engine.online.retrain)."""
        job = self.start_retrain(experiment, days, priors, now)
        return self.finish_job(experiment, job, lifecycle.judge(job.plan))

    def start_retrain(
        self,
        experiment: str,
        days: float | None = None,
        priors: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> lifecycle.Job:
        """`retrain`'s reads; `lifecycle.judge(job.plan)` may then run in a thread, and
        `finish_job` records it."""
        exp = self._experiment(experiment)
        plan = lifecycle.plan_retrain(exp, days=days, proposed=priors, now=now)  # refuses bad input first
        return lifecycle.Job(self._schedule(exp).claim_request(), plan)

    def due_jobs(self, now: float | None = None) -> list[tuple[str, lifecycle.Job]]:
        """The scheduled runs due now that this engine leads (its claims landed first)."""
        now = time.time() if now is None else now
        jobs = []
        for name in self.store.experiment_names():
            exp = self._experiment(name)
            claim = self._schedule(exp).claim(now) if exp.spec.lifecycle.schedule else None
            if claim is not None:
                jobs.append(
                    (name, lifecycle.Job(claim, lifecycle.plan_retrain(exp, now=now, trigger="schedule")))
                )
        return jobs

    def finish_job(
        self, experiment: str, job: lifecycle.Job, judged: lifecycle.Judged | None
    ) -> dict[str, Any]:
        """Record a retrain judged (in a thread, say) after `start_retrain` or `due_jobs`."""
        return lifecycle.finish_job(self._experiment(experiment), job, judged)

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Apply retention, then run the scheduled jobs due now that this engine leads, in process."""
        self.apply_retention(now)
        return [self.finish_job(name, job, lifecycle.judge(job.plan)) for name, job in self.due_jobs(now)]

    def schedule(self, experiment: str, now: float | None = None) -> dict[str, Any]:
        """The schedule, the next run, the last runs and their results."""
        return self._schedule(self._experiment(experiment)).status(now)

    def _schedule(self, exp: Experiment) -> Schedule:
        stored = self.store.experiment(exp.spec.name)
        return Schedule(self.store, exp.spec, stored["recorded_at"] if stored else 0.0)

    def export_version(self, experiment: str, version: str) -> tuple[dict[str, Any], pd.DataFrame]:
        return lifecycle.export_version(self._experiment(experiment), version)

    def import_version(self, experiment: str, document: dict[str, Any]) -> dict[str, Any]:
        return lifecycle.import_version(self._experiment(experiment), document)

    # -- deletion and privacy ----------------------------------------------------------------

    def forget(self, experiment: str, user_id: str) -> dict[str, Any]:
        """Delete every event of a user (the store records a tombstone that names no one);
        this engine rebuilds from the store at once, every other at its next read of
        tombstones (`peer_sync_s`). UnknownUser when nothing of theirs is stored."""
        check_id("user_id", user_id)
        exp = self._experiment(experiment)
        deleted = self.store.forget(experiment, user_id)
        if not any(deleted.values()):
            raise UnknownUser(f"no event of user {user_id!r} is stored in experiment {experiment!r}")
        exp.stale = True
        return {"experiment": experiment, "user_id": user_id, "deleted": deleted}

    def apply_retention(self, now: float | None = None) -> dict[str, dict[str, int]]:
        """Anonymise the events older than each experiment's `lifecycle.retention_days`;
        what changed, per experiment (any replica may run it: a row is changed once)."""
        now = time.time() if now is None else now
        changed = {}
        for name in self.store.experiment_names():
            exp = self._experiment(name)
            days = exp.spec.lifecycle.retention_days
            if days is not None:
                rows = self.store.anonymise_before(name, now - days * lifecycle.DAY_S)
                if any(rows.values()):
                    changed[name], exp.stale = rows, True
        return changed

    def load_all(self) -> list[str]:
        """Replay every stored experiment now, so the first requests find the models warm."""
        names = self.store.experiment_names()
        for name in names:
            self._experiment(name)
        return names

    def sync(self, ahead: bool = False) -> None:
        """Learn everything stored since the last sync, for every experiment in memory.

        `ahead`: then also compute the next suggestion of every user in memory who was just
        rated, in that context; their next `suggest` serves it if nothing it depends on has
        changed since (a Serve replica does this after its response has gone).
        """
        now = time.time()
        for name, exp in list(self._experiments.items()):
            rated = catch_up(exp, self.peer_sync_s)
            if exp.stale:  # rebuilt from the store on next use
                self._drop(name)
                continue
            for user_id, label in rated:
                user = exp.users.get(user_id)
                if ahead and user is not None:
                    variant = exp.ab.current(user_id).label()
                    user.ahead[label] = exp.next_params(user_id, user, label or None, now, variant=variant)

    def _experiment(self, name: str, sync: bool = True) -> Experiment:
        """The experiment in memory, read up to date (`sync=False`: only if this engine
        stored feedback it has not learnt yet)."""
        exp = self._experiments.get(name)
        if exp is not None and not sync and not exp.unlearnt and not exp.stale:
            return exp
        if exp is None:
            stored = self.store.experiment(name)
            if stored is None:
                raise UnknownExperiment(f"experiment {name!r} does not exist; create it first")
            spec = ExperimentSpec.model_validate(stored["spec"])
            exp = Experiment.create(
                self.store,
                spec,
                seed=self.seed,
                max_users=self.max_users,
                max_context_models=self.max_context_models,
            )
            self._experiments[name] = exp
        catch_up(exp, self.peer_sync_s)
        if exp.stale:  # another model version activated, or a user deleted: replay the store
            self._drop(name)
            return self._experiment(name)
        return exp

    def _drop(self, name: str) -> None:
        for key, value in self._experiments.pop(name).memory().items():
            if key.endswith("_evicted"):
                self._evicted_before[name, key] += value

    def memory(self) -> dict[str, dict[str, int]]:
        """Per experiment in memory: user states and context models held, contexts known,
        and the user states and context models dropped (LRU) since this engine started."""
        found = {}
        for name, exp in self._experiments.items():
            held = exp.memory()
            found[name] = {k: v + self._evicted_before[name, k] for k, v in held.items()}
        return found

    # -- the protocol -----------------------------------------------------------------------

    def suggest(
        self,
        experiment: str,
        user_id: str,
        context: str | Sequence[float] | None = None,
        now: float | None = None,
        sync: bool = True,
        opt_out: bool = False,
    ) -> Suggestion:
        """`context`: a label, or a feature vector that is clustered into a labelled context.

        `opt_out`: the user declined to be learnt from: they get the settings a new user
        gets in that context (the population's best, without exploration), in no variant,
        and nothing of theirs is stored but a count (`OPTED_OUT` ids; their feedback counted).

        `sync=False` reads the store first only if this engine has stored feedback it has
        not learnt yet: for a caller that calls `sync()` after each answer instead (a Serve
        replica does, once its response has gone), so only other engines' writes of the
        last moments can be missing, never this engine's own.
        """
        check_id("user_id", user_id)
        if isinstance(context, str):
            check_id("context", context, MAX_CONTEXT_LABEL)
        now = time.time() if now is None else now
        exp = self._experiment(experiment, sync)
        label, stored = exp.contexts.resolve(context)
        if opt_out:
            return self._opted_out(exp, label, now)
        assignment = exp.ab.assign(user_id)
        variant = assignment.variant
        user = exp.user(user_id, now)
        ahead = user.ahead.pop(label or "", None)
        params = exp.next_params(user_id, user, label, now, ahead, assignment.label())[1]
        if variant is not None and variant.kind == "params":  # its fixed settings, per context if it has them
            params = {
                **params,
                **variant.payload.get("contexts", {}).get(label or "", variant.payload["params"]),
            }
        suggestion = Suggestion(
            suggestion_id=routing_key(experiment, user_id) + uuid.uuid4().hex,
            experiment=experiment,
            user_id=user_id,
            context=label,
            params=params,
            variant=variant.name if variant else DEFAULT_VARIANT,
            expires_at=now + self.lease_s,
            variant_version=variant.version if variant else None,
            payload=variant.payload if variant else None,
        )
        self.store.add_suggestion(
            suggestion_id=suggestion.suggestion_id,
            experiment=experiment,
            user_id=user_id,
            context=stored,
            params=params,
            variant=assignment.label(),
            expires_at=suggestion.expires_at,
        )
        user.pending[suggestion.suggestion_id] = (label or "", params, suggestion.expires_at)
        return suggestion

    def _opted_out(self, exp: Experiment, label: str | None, now: float) -> Suggestion:
        exp.ensure_context_model(label)
        params = exp.model.for_new_user(label)[0]
        self.store.count(exp.spec.name, "opted_out_suggestions", _day(now))
        return Suggestion(
            suggestion_id=OPTED_OUT + uuid.uuid4().hex,
            experiment=exp.spec.name,
            user_id="",
            context=label,
            params=params,
            variant=DEFAULT_VARIANT,
            expires_at=now + self.lease_s,
        )

    def feedback(
        self,
        suggestion_id: str,
        feedback: Feedback,
        idempotency_key: str | None = None,
        now: float | None = None,
        experiment: str | None = None,
        learn: bool = True,
    ) -> FeedbackResult:
        """Store feedback (durably, then learn from it); a repeat of a key is a no-op.

        The key is scoped to the suggestion: the same key and body again is a duplicate,
        the same key with another body a `ConflictingFeedback`. Metrics must be named as
        the spec's. `experiment`, when given, must be the suggestion's (an HTTP path names
        it). `learn=False` returns once it is stored; the next `sync()` learns it.
        """
        check_id("suggestion_id", suggestion_id)
        if idempotency_key is not None:
            check_id("idempotency_key", idempotency_key)
        now = time.time() if now is None else now
        if suggestion_id.startswith(OPTED_OUT):
            if experiment is None:
                raise InvalidRequest("feedback on an opted-out suggestion must name its experiment")
            self._experiment(experiment, sync=False)  # it exists
            self.store.count(experiment, "opted_out_feedback", _day(now))
            return FeedbackResult("recorded", False, "the user opted out: counted, not stored")
        suggestion = self.store.suggestion(suggestion_id)
        if suggestion is None or experiment not in (None, suggestion["experiment"]):
            where = f" in experiment {experiment!r}" if experiment else ""
            raise UnknownSuggestion(f"suggestion {suggestion_id!r} is unknown{where}; ask /suggest for one")
        # its spec, not what was learnt since: storing feedback never waits for learning
        exp = self._experiments.get(suggestion["experiment"]) or self._experiment(suggestion["experiment"])
        names = [m.name for m in exp.spec.metrics]
        unknown = sorted(set(feedback.metrics or {}) - set(names))
        if unknown:
            raise InvalidRequest(
                f"metrics {unknown} are not metrics of experiment {exp.spec.name!r}; send any of {names}"
            )
        key = idempotency_key or content_key(feedback)
        not_learnt = why_not_learnt(exp, suggestion["user_id"], feedback)
        if now > suggestion["expires_at"] + self.grace_s:
            if self._same_as_stored(suggestion_id, key, feedback):
                return FeedbackResult("duplicate", not_learnt is None, not_learnt)  # a retry of it
            raise ExpiredSuggestion(
                f"suggestion {suggestion_id!r} expired at {suggestion['expires_at']:.0f} and the "
                f"{self.grace_s:.0f} s grace window has passed; feedback is no longer accepted"
            )
        stored = self.store.add_feedback(
            idempotency_key=key,
            suggestion_id=suggestion_id,
            experiment=suggestion["experiment"],
            user_id=suggestion["user_id"],
            rating=feedback.rating,
            signal=feedback.signal,
            metrics=feedback.metrics,
            implicit=feedback.implicit() or None,
            comment=feedback.comment,
        )
        if not stored:
            if not self._same_as_stored(suggestion_id, key, feedback):
                raise ConflictingFeedback(
                    f"idempotency_key {key!r} was used on suggestion {suggestion_id!r} for other "
                    "feedback; send new feedback under a new key"
                )
            return FeedbackResult("duplicate", not_learnt is None, not_learnt)
        if learn:
            self._experiment(suggestion["experiment"])  # syncs: the model learns it now
        else:
            exp.unlearnt = True  # a suggest syncs first
        return FeedbackResult("recorded", not_learnt is None, not_learnt, served_name(suggestion["variant"]))

    def _same_as_stored(self, suggestion_id: str, key: str, feedback: Feedback) -> bool:
        stored = self.store.feedback_for(suggestion_id, key)
        return stored is not None and stored_feedback(stored) == feedback

    def set_preferences(self, experiment: str, user_id: str, weights: dict[str, float]) -> dict[str, float]:
        """Store a user's own weights over the experiment's metrics; their past feedback is
        re-scored with them (the population keeps learning on the experiment's weights)."""
        check_id("user_id", user_id)
        exp = self._experiment(experiment)
        names = [m.name for m in exp.spec.metrics]
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise InvalidRequest(f"weights name {unknown}, which are not metrics of {experiment!r}: {names}")
        if any(not np.isfinite(w) or w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
            raise InvalidRequest(f"weights {weights} must be finite, >= 0 and not all 0")
        full = {name: float(weights.get(name, 0.0)) for name in names}
        key = f"{experiment}:{user_id}:{uuid.uuid4().hex}"
        self.store.add_preferences(idempotency_key=key, experiment=experiment, user_id=user_id, weights=full)
        exp.users.pop(user_id, None)  # rebuilt on next use, its history re-scored
        return full

    def best_settings(self, experiment: str) -> dict[str, dict[str, Any]]:
        """Per context whose model is held in memory ("default" for none: at most
        `max_context_models`, none rebuilt for this), the settings the experiment's learner
        serves a user it knows nothing of, with their expected reward and its std."""
        exp = self._experiment(experiment)
        found = {}
        for label in sorted(exp.model.contexts):
            params, mean, std = exp.model.for_new_user(label or None)
            found[label or "default"] = {"params": params, "expected_reward": mean, "std": std}
        return found

    def calibrations(self, experiment: str) -> list[dict[str, Any]]:
        """Per user with rewarded feedback (ratings, signals, metrics): how many, and how
        they rate against the population (bias in reward units, scale of their spread;
        both shrunk towards 0 and 1)."""
        exp = self._experiment(experiment)
        fitted = exp.model.global_model.priors
        return [
            {"user_id": user, "rewards": r.count, "bias": r.bias(fitted), "scale": r.scale(fitted)}
            for user, r in exp.raters.items()
        ]

    def refine_profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        """How the user's preferred settings moved with each of their feedback, and why
        (engine.online.explain)."""
        check_id("user_id", user_id)
        exp = self._experiment(experiment)
        if not self.store.seen(experiment, user_id):
            raise UnknownUser(f"nothing of user {user_id!r} is stored in experiment {experiment!r}")
        return {
            "experiment": experiment,
            "user_id": user_id,
            "replayed_with": "the population model, rater calibration and weights in force now",
            "steps": profile_steps(exp, user_id),
        }

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        """What we know of a user: samples, calibration, preferred settings, confidence, and
        the offline front's settings preferred under their weights."""
        check_id("user_id", user_id)
        exp = self._experiment(experiment)
        if not self.store.seen(experiment, user_id):  # deleted by any replica: gone at once
            raise UnknownUser(f"nothing of user {user_id!r} is stored in experiment {experiment!r}")
        user = exp.user(user_id, time.time())
        rater = exp.raters.get(user_id, Rater())
        contexts = {}
        key, model = exp.learner(exp.ab.current(user_id).label())
        for name, history in user.histories.items():
            exp.ensure_context_model(name or None, key)
            params, mean, std = model.recommend(rater, history, name or None, user.weights)
            contexts[name or "default"] = {
                "samples": len(history),
                "preferred": params,
                "expected_reward": mean,
                "confidence": model.confidence(std),
            }
        fitted = exp.model.global_model.priors
        return {
            "user_id": user_id,
            "samples": sum(len(h) for h in user.histories.values()),
            "weights": user.weights or exp.spec.weights(),
            "calibration": {"bias": rater.bias(fitted), "scale": rater.scale(fitted)},
            # the published offline settings best under the user's weights, if any were published
            "front_preferred": exp.model.front.preferred(user.weights) if exp.model.front else None,
            "contexts": contexts,
        }
