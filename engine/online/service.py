"""The suggestion protocol over the event store, in process (Ray shards wrap this).

`suggest` returns an id, params, variant and lease expiry, written to the store before
it is returned. `feedback` is acknowledged only once durably stored, and says whether
it will be learnt (and why not); an idempotency key is scoped to its suggestion: the same
key with the same body is a no-op, with another body a conflict (409). Unknown ids and
feedback past the grace window are clear errors. The models are caches: a state is
rebuilt by replaying the store, so evicting it from memory, or losing the process,
loses nothing acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engine.online.contexts import ContextClusters
from engine.online.model import OnlineModel, Rater, UserHistory
from engine.online.rewards import Feedback, terms, utility
from engine.routing import routing_key
from engine.spec.config import MAX_CONTEXT_LABEL, ExperimentSpec
from engine.store.events import EventStore

__all__ = [
    "ConflictingFeedback",
    "ExpiredSuggestion",
    "FeedbackResult",
    "InvalidRequest",
    "OnlineEngine",
    "OnlineError",
    "Suggestion",
    "UnknownExperiment",
    "UnknownSuggestion",
]

log = logging.getLogger(__name__)

MAX_ID = 256


class OnlineError(ValueError):
    """A request that cannot be served; `status` is the HTTP status it maps to."""

    status = 422


class InvalidRequest(OnlineError):
    status = 422


class UnknownExperiment(OnlineError):
    status = 404


class UnknownSuggestion(OnlineError):
    status = 404


class ExpiredSuggestion(OnlineError):
    status = 410


class ConflictingFeedback(OnlineError):
    """An idempotency key reused on one suggestion with another body."""

    status = 409


@dataclass(frozen=True)
class Suggestion:
    suggestion_id: str
    experiment: str
    user_id: str
    context: str | None
    params: dict[str, Any]
    variant: str
    expires_at: float


@dataclass(frozen=True)
class FeedbackResult:
    """How feedback was taken: stored now or before, and whether any model learns from it."""

    status: Literal["recorded", "duplicate"]
    learnt: bool
    reason: str | None = None  # why it is not learnt


@dataclass(frozen=True)
class _State:
    """What a user's next suggestion in one context depends on, besides random draws."""

    weights: np.ndarray  # the context model's, replaced (not changed) at each refit
    rated: int  # the rater's ratings so far (their calibration)
    seen: int  # the user's ratings in this context
    pending: tuple[str, ...]  # their open suggestions in this context

    def holds(self, now: _State) -> bool:
        same = (self.rated, self.seen, self.pending) == (now.rated, now.seen, now.pending)
        return same and self.weights is now.weights


@dataclass
class _User:
    """What memory holds of one user: their histories per context and open suggestions."""

    histories: dict[str, UserHistory] = field(default_factory=dict)
    pending: dict[str, tuple[str, dict[str, Any], float]] = field(default_factory=dict)
    weights: dict[str, float] | None = None  # the user's own preference weights, if set
    ahead: dict[str, tuple[_State, dict[str, Any]]] = field(default_factory=dict)  # by context

    def history(self, context: str | None) -> UserHistory:
        return self.histories.setdefault(context or "", UserHistory())


@dataclass
class _Experiment:
    spec: ExperimentSpec
    model: OnlineModel
    rng: np.random.Generator
    raters: dict[str, Rater] = field(default_factory=dict)
    users: OrderedDict[str, _User] = field(default_factory=OrderedDict)
    # the last seq read of each table: the store makes rows visible in seq order, so
    # every row up to it has been read, and every row after it is still to come
    feedback_seq: int = 0  # applied to the models
    preferences_seq: int = 0  # their users' caches dropped
    peers_synced_at: float = -np.inf
    unlearnt: bool = False  # this engine stored feedback that no sync has read yet

    clusters: ContextClusters = field(default_factory=ContextClusters)
    clustered_seq: int = 0
    admitted: set[str] = field(default_factory=set)  # the experiment's contexts (spec.contexts)
    contexts_seq: int = 0
    # per context: the feedback seqs its model learnt and the calibrated rewards it took
    # (16 bytes a rating), so a context model dropped from memory is rebuilt exactly
    learnt: dict[str, tuple[array, array]] = field(default_factory=dict)


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
        self._experiments: dict[str, _Experiment] = {}

    # -- experiments ------------------------------------------------------------------------

    def register(self, spec: ExperimentSpec) -> bool:
        """Store an experiment's spec; False if one of that name exists already."""
        return self.store.add_experiment(spec.name, spec.model_dump(mode="json"))

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
        for exp in self._experiments.values():
            for user_id, label in self._sync(exp):
                user = exp.users.get(user_id)
                if ahead and user is not None:
                    user.ahead[label] = self._next(exp, user_id, user, label or None, now)

    def _experiment(self, name: str, sync: bool = True) -> _Experiment:
        exp = self._experiments.get(name)
        if exp is not None and not sync and not exp.unlearnt:
            return exp
        if exp is None:
            stored = self.store.experiment(name)
            if stored is None:
                raise UnknownExperiment(f"experiment {name!r} does not exist; create it first")
            spec = ExperimentSpec.model_validate(stored["spec"])
            model = OnlineModel(spec.search_space(), seed=spec.seed, max_contexts=self.max_context_models)
            exp = _Experiment(spec, model, np.random.default_rng([spec.seed, self.seed]))
            features = spec.context_features()
            exp.clusters = ContextClusters(max_clusters=spec.contexts.max, features=features)
            exp.admitted = set(spec.contexts.labels)
            self._experiments[name] = exp
        self._sync(exp)
        return exp

    def _sync(self, exp: _Experiment) -> set[tuple[str, str]]:
        """Learn from every feedback stored since the last sync, in write order, whichever
        engine wrote it; drop cached users whose preferences another engine changed.
        Returns the (user, context label) pairs that were rated."""
        now = time.monotonic()
        rated = set()
        exp.unlearnt = False
        for row in self.store.feedback_since(exp.spec.name, exp.feedback_seq):
            try:
                self._apply(exp, row)
            except (ValueError, KeyError, TypeError) as e:  # a row no model can take: say so, go on
                log.error("%s: feedback seq %s cannot be learnt (%s); skipped", exp.spec.name, row["seq"], e)
            exp.feedback_seq = row["seq"]  # only once applied
            rated.add((row["user_id"], context_label(row["context"]) or ""))
        if now - exp.peers_synced_at >= self.peer_sync_s:
            exp.peers_synced_at = now
            for row in self.store.preferences_since(exp.spec.name, exp.preferences_seq):
                exp.users.pop(row["user_id"], None)  # rebuilt, re-scored, on next use
                exp.preferences_seq = row["seq"]
        return rated

    def _apply(self, exp: _Experiment, row: dict[str, Any]) -> None:
        """The population learns the row on the experiment's weights, the user's own
        history on the user's weights; either may find nothing it weighs (None)."""
        reward = self._reward(exp.spec, row)
        user = exp.users.get(row["user_id"])
        if user is not None:
            user.pending.pop(row["suggestion_id"], None)
        rater = exp.raters.setdefault(row["user_id"], Rater())
        label = context_label(row["context"])
        if reward is not None:
            calibrated = exp.model.learn(rater, label, row["params"], reward)
            seqs, values = exp.learnt.setdefault(label or "", (array("q"), array("d")))
            seqs.append(row["seq"])
            values.append(calibrated)
        if user is not None:
            own = self._reward(exp.spec, row, user.weights) if user.weights else reward
            if own is not None:
                exp.model.remember(user.history(label), row["params"], own)

    @staticmethod
    def _reward(
        spec: ExperimentSpec, row: dict[str, Any], weights: dict[str, float] | None = None
    ) -> float | None:
        """The row's utility under `weights` (default: the experiment's preference)."""
        return utility(stored_feedback(row), spec.metrics, weights or spec.weights())

    def _not_learnt(self, exp: _Experiment, user_id: str, fb: Feedback) -> str | None:
        """Why this feedback teaches no model (None when it teaches one)."""
        metrics = exp.spec.metrics
        if utility(fb, metrics, exp.spec.weights()) is not None:
            return None
        user = exp.users.get(user_id)
        own = user.weights if user is not None else self.store.preferences(exp.spec.name, user_id)
        if own and utility(fb, metrics, own) is not None:
            return None
        weighed = sorted(n for n, w in (own or exp.spec.weights()).items() if w > 0)
        return (
            f"stored but not learnt: it speaks of {sorted(terms(fb, metrics))}, and the weights in "
            f"force for user {user_id!r} weigh only {weighed}; give those metrics a weight "
            f"(PUT /v1/experiments/{exp.spec.name}/users/{user_id}/preferences, or the spec's preference)"
        )

    def _user(self, exp: _Experiment, user_id: str, now: float) -> _User:
        """The user's state from memory, or rebuilt from the store (and cached, LRU)."""
        user = exp.users.get(user_id)
        if user is not None:
            exp.users.move_to_end(user_id)
            return user
        user = _User(weights=self.store.preferences(exp.spec.name, user_id))
        for row in self.store.feedback_since(exp.spec.name, 0, user_id=user_id):
            if row["seq"] > exp.feedback_seq:
                break  # the population has not seen it yet: the next sync applies it
            try:
                reward = self._reward(exp.spec, row, user.weights)
                if reward is not None:
                    exp.model.remember(user.history(context_label(row["context"])), row["params"], reward)
            except (ValueError, KeyError, TypeError):
                continue  # logged when the population skipped it
        for s in self.store.open_suggestions(exp.spec.name, user_id, now):
            label = context_label(s["context"]) or ""
            user.pending[s["suggestion_id"]] = (label, s["params"], s["expires_at"])
        exp.users[user_id] = user
        while len(exp.users) > self.max_users:
            exp.users.popitem(last=False)
        return user

    def _next(
        self,
        exp: _Experiment,
        user_id: str,
        user: _User,
        context: str | None,
        now: float,
        ahead: tuple[_State, dict[str, Any]] | None = None,
    ) -> tuple[_State, dict[str, Any]]:
        """The user's next params here, from `ahead` when they were computed in this state."""
        rater = exp.raters.get(user_id, Rater())
        label = context or ""
        open_ = {sid: p for sid, (c, p, expires) in user.pending.items() if c == label and expires > now}
        history = user.history(context)
        self._hold_context_model(exp, context)
        state = _State(exp.model.context(context).weights(), rater.count, len(history), tuple(open_))
        if ahead is not None and ahead[0].holds(state):
            return ahead
        return state, exp.model.suggest(rater, history, context, exp.rng, list(open_.values()))

    # -- the protocol -----------------------------------------------------------------------

    def _hold_context_model(self, exp: _Experiment, context: str | None) -> None:
        """Rebuild the context's model from the store if memory dropped it (LRU)."""
        if not exp.model.evicted(context):
            return
        seqs, values = exp.learnt[context or ""]
        calibrated = dict(zip(seqs, values, strict=True))
        params = {
            row["seq"]: row["params"]
            for row in self.store.feedback_since(exp.spec.name, seqs[0] - 1)
            if row["seq"] in calibrated
        }
        exp.model.rebuild(context, [(params[seq], calibrated[seq]) for seq in seqs])

    def _context(
        self, exp: _Experiment, context: str | Sequence[float] | None
    ) -> tuple[str | None, str | dict[str, Any] | None]:
        """The context a request is served in, and what its suggestion stores of it."""
        if context is None:
            return None, None
        if isinstance(context, str):
            label = self._admit(exp, context)
            return label, context if label == context else {"label": None, "requested": context}
        features = [float(v) for v in context]
        cluster = self._cluster_label(exp, features)
        label = self._admit(exp, cluster)
        stored = {"label": label, "features": features}
        return label, stored if label == cluster else {**stored, "requested": cluster}

    def _admit(self, exp: _Experiment, label: str) -> str | None:
        """`label` if it is one of the experiment's contexts, or becomes one now (the first
        `contexts.max` asked for, in the store's order, are); else the default context
        (None), or a refusal when the spec says `overflow: reject`."""
        bound = exp.spec.contexts
        if label not in exp.admitted and len(exp.admitted) < bound.max:
            self._read_contexts(exp)
            if label not in exp.admitted and len(exp.admitted) < bound.max:
                self.store.add_context(exp.spec.name, label)
                self._read_contexts(exp)
        if label in exp.admitted:
            return label
        if bound.overflow == "reject":
            raise InvalidRequest(
                f"context {label!r} is not one of experiment {exp.spec.name!r}'s {bound.max} contexts "
                "(contexts.max is reached); send one of its contexts, or raise contexts.max in its spec"
            )
        return None

    def _read_contexts(self, exp: _Experiment) -> None:
        for row in self.store.contexts_since(exp.spec.name, exp.contexts_seq):
            if len(exp.admitted) < exp.spec.contexts.max:
                exp.admitted.add(row["label"])
            exp.contexts_seq = row["seq"]

    def _cluster_label(self, exp: _Experiment, features: list[float]) -> str:
        """Learn every stored feature vector in write order, then label these ones."""
        declared = exp.clusters.features
        if declared is None:
            raise InvalidRequest(
                f"experiment {exp.spec.name!r} takes context labels, not features; "
                "declare contexts.features in its spec to send feature vectors"
            )
        if len(features) != declared or not all(np.isfinite(features)):
            raise InvalidRequest(
                f"context features have {len(features)} values; experiment {exp.spec.name!r} takes "
                f"{declared} finite numbers (contexts.features)"
            )
        for row in self.store.suggestions_since(exp.spec.name, exp.clustered_seq):
            stored = row["context"]
            if isinstance(stored, dict) and stored.get("label") is not None and "features" in stored:
                try:
                    exp.clusters.assign(stored["features"])
                except ValueError as e:  # e.g. another length, stored before lengths were declared
                    log.error("%s: context of suggestion seq %s skipped (%s)", exp.spec.name, row["seq"], e)
            exp.clustered_seq = row["seq"]
        return exp.clusters.label_for(features)

    def suggest(
        self,
        experiment: str,
        user_id: str,
        context: str | Sequence[float] | None = None,
        now: float | None = None,
        sync: bool = True,
    ) -> Suggestion:
        """`context`: a label, or a feature vector that is clustered into a labelled context.

        `sync=False` reads the store first only if this engine has stored feedback it has
        not learnt yet: for a caller that calls `sync()` after each answer instead (a Serve
        replica does, once its response has gone), so only other engines' writes of the
        last moments can be missing, never this engine's own.
        """
        _check_id("user_id", user_id)
        if isinstance(context, str):
            _check_id("context", context, MAX_CONTEXT_LABEL)
        now = time.time() if now is None else now
        exp = self._experiment(experiment, sync)
        label, stored = self._context(exp, context)
        user = self._user(exp, user_id, now)
        params = self._next(exp, user_id, user, label, now, user.ahead.pop(label or "", None))[1]
        suggestion = Suggestion(
            suggestion_id=routing_key(experiment, user_id) + uuid.uuid4().hex,
            experiment=experiment,
            user_id=user_id,
            context=label,
            params=params,
            variant="default",
            expires_at=now + self.lease_s,
        )
        self.store.add_suggestion(
            suggestion_id=suggestion.suggestion_id,
            experiment=experiment,
            user_id=user_id,
            context=stored,
            params=params,
            variant=suggestion.variant,
            expires_at=suggestion.expires_at,
        )
        user.pending[suggestion.suggestion_id] = (label or "", params, suggestion.expires_at)
        return suggestion

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
        _check_id("suggestion_id", suggestion_id)
        if idempotency_key is not None:
            _check_id("idempotency_key", idempotency_key)
        now = time.time() if now is None else now
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
        key = idempotency_key or _content_key(feedback)
        not_learnt = self._not_learnt(exp, suggestion["user_id"], feedback)
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
        return FeedbackResult("recorded", not_learnt is None, not_learnt)

    def _same_as_stored(self, suggestion_id: str, key: str, feedback: Feedback) -> bool:
        stored = self.store.feedback_for(suggestion_id, key)
        return stored is not None and stored_feedback(stored) == feedback

    def set_preferences(self, experiment: str, user_id: str, weights: dict[str, float]) -> dict[str, float]:
        """Store a user's own weights over the experiment's metrics; their past feedback is
        re-scored with them (the population keeps learning on the experiment's weights)."""
        _check_id("user_id", user_id)
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

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        """What we know of a user: samples, calibration, preferred settings, confidence."""
        _check_id("user_id", user_id)
        exp = self._experiment(experiment)
        user = self._user(exp, user_id, time.time())
        rater = exp.raters.get(user_id, Rater())
        contexts = {}
        for name, history in user.histories.items():
            self._hold_context_model(exp, name or None)
            params, mean, std = exp.model.recommend(rater, history, name or None)
            contexts[name or "default"] = {
                "samples": len(history),
                "preferred": params,
                "expected_reward": mean,
                "confidence": float(max(0.0, 1.0 - std / exp.model.prior_std)),
            }
        return {
            "user_id": user_id,
            "samples": sum(len(h) for h in user.histories.values()),
            "weights": user.weights or exp.spec.weights(),
            "calibration": {"bias": rater.bias(exp.model.priors), "scale": rater.scale(exp.model.priors)},
            "contexts": contexts,
        }


def stored_feedback(row: dict[str, Any]) -> Feedback:
    """The feedback a stored row carries."""
    implicit = row["implicit"] or {}
    return Feedback(rating=row["rating"], signal=row["signal"], metrics=row["metrics"], **implicit)


def context_label(stored: str | dict[str, Any] | None) -> str | None:
    """A stored context is a label, or features with the label they were clustered to."""
    return stored.get("label") if isinstance(stored, dict) else stored


def _check_id(name: str, value: str, limit: int = MAX_ID) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise InvalidRequest(f"{name} is {len(value)} characters long; the limit is {limit}")


def _content_key(fb: Feedback) -> str:
    """Without an idempotency key, identical feedback on one suggestion counts once."""
    body = json.dumps(fb.model_dump(), sort_keys=True)
    return f"auto:{hashlib.sha256(body.encode()).hexdigest()[:32]}"
