"""What an engine holds in memory of an experiment and its users: caches of the store.

Every piece is rebuilt by replaying the store, so dropping it (the least recently used
users beyond `max_users`, context models beyond `max_context_models`) or losing the
process loses nothing acknowledged. The model itself: docs/online-model.md.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.experiments import ABTest, ModelBook
from engine.online.admission import ContextAdmission
from engine.online.front_prior import Front
from engine.online.model import OnlineModel
from engine.online.priors import Priors
from engine.online.protocol import context_label, stored_reward
from engine.online.rater import Rater
from engine.online.retrain import priors_of
from engine.online.user_gp import UserHistory
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["LEARNER_CONSTANTS", "Experiment", "SuggestionInputs", "User"]

MAX_PRESETS = 16  # contexts in an evolved parameter preset
# what a learner variant may set (`payload.priors`): the model's real-valued constants
LEARNER_CONSTANTS = frozenset(n for n, f in Priors.__dataclass_fields__.items() if f.type in (float, "float"))


@dataclass(frozen=True)
class SuggestionInputs:
    """What a user's next suggestion in one context depends on, besides random draws."""

    weights: np.ndarray  # the context model's, replaced (not changed) at each refit
    rated: int  # the rater's ratings so far (their calibration)
    seen: int  # the user's ratings in this context
    pending: tuple[str, ...]  # their open suggestions in this context

    def holds(self, now: SuggestionInputs) -> bool:
        same = (self.rated, self.seen, self.pending) == (now.rated, now.seen, now.pending)
        return same and self.weights is now.weights


@dataclass
class User:
    """What memory holds of one user: their histories per context and open suggestions."""

    histories: dict[str, UserHistory] = field(default_factory=dict)
    pending: dict[str, tuple[str, dict[str, Any], float]] = field(default_factory=dict)
    weights: dict[str, float] | None = None  # the user's own preference weights, if set
    # per context, their next params computed ahead of their next suggest, and the state
    # they were computed in (served only while it holds)
    ahead: dict[str, tuple[SuggestionInputs, dict[str, Any]]] = field(default_factory=dict)

    def history(self, context: str | None) -> UserHistory:
        return self.histories.setdefault(context or "", UserHistory())


@dataclass
class Experiment:
    """One experiment in memory: its models, its users (LRU) and how far it read the store."""

    store: EventStore
    spec: ExperimentSpec
    model: OnlineModel  # the experiment's learner
    rng: np.random.Generator
    contexts: ContextAdmission
    max_users: int
    ab: ABTest
    front: Front  # the published trials every learner starts from
    max_context_models: int  # context models in memory, shared by every learner
    models: ModelBook  # the model versions; `model` serves `serving`
    serving: str
    tombstones_seq: int  # the last deletion read: a later one makes this state stale
    # learner variants' own models, by "name@version" (engine.experiments.variants)
    learners: dict[str, OnlineModel] = field(default_factory=dict)
    raters: dict[str, Rater] = field(default_factory=dict)
    users: OrderedDict[str, User] = field(default_factory=OrderedDict)  # least recently used first
    # the last seq read of each table: the store makes rows visible in seq order, so
    # every row up to it has been read, and every row after it is still to come
    feedback_seq: int = 0  # applied to the models
    preferences_seq: int = 0  # their users' caches dropped
    peers_synced_at: float = -np.inf
    unlearnt: bool = False  # this engine stored feedback that no sync has read yet
    stale: bool = False  # another version activated or a user deleted since: rebuild from the store
    users_evicted: int = 0  # user states dropped from memory (LRU) so far
    # per (learner, context): the feedback seqs its model learnt and the calibrated rewards
    # it took (16 bytes a rating), so a context model dropped from memory is rebuilt exactly
    learnt: dict[tuple[str, str], tuple[array, array]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, store: EventStore, spec: ExperimentSpec, *, seed: int, max_users: int, max_context_models: int
    ) -> Experiment:
        """An experiment with no feedback read yet, its learner made from the active model
        version; `seed` is the engine's (the spec has its own)."""
        runs = store.published_runs(spec.name)
        models = ModelBook(base_run=next(reversed(runs), None))  # base: the run published last
        for row in store.since("models", spec.name, 0):
            models.apply(row)
        version = models.versions[models.active]
        front = Front(runs.get(version.front_run or "", []), spec.metrics, spec.weights())
        model = OnlineModel(
            spec.search_space(),
            seed=spec.seed,
            priors=priors_of(version.priors),
            max_contexts=max_context_models,
            front=front,
        )
        rng = np.random.default_rng([spec.seed, seed])
        ab = ABTest(store, spec, constants=LEARNER_CONSTANTS)
        admission = ContextAdmission(store, spec)
        tombstones = store.since("tombstones", spec.name, 0)
        last_tombstone = tombstones[-1]["seq"] if tombstones else 0
        exp = cls(
            store, spec, model, rng, admission, max_users, ab, front, max_context_models,
            models, version.version, last_tombstone,
        )  # fmt: skip
        ab.presets = exp.presets
        return exp

    def memory(self) -> dict[str, int]:
        """What this state holds in memory, and what it dropped (LRU) since it was made."""
        models = [self.model, *self.learners.values()]
        return {
            "users": len(self.users),
            "users_evicted": self.users_evicted,
            "contexts": len(self.contexts.admitted | (self.model.rated - {""})),
            "context_models": sum(len(m.contexts) for m in models),
            "context_models_evicted": sum(m.evictions for m in models),
        }

    def presets(self) -> dict[str, dict[str, Any]]:
        """The learner's best settings per context (its most recently used, at most
        `MAX_PRESETS`) for a user it knows nothing of: evolution's parameter presets."""
        return {
            label: self.model.for_new_user(label or None)[0]
            for label in list(self.model.contexts)[-MAX_PRESETS:]
        }

    def learner(self, variant: str | None) -> tuple[str, OnlineModel]:
        """The learner a suggestion's stored variant label suggests and learns with: a
        learner variant's own (made on first use, its contexts counting against the same
        bound as the experiment's), else the experiment's (key "")."""
        constants = self.ab.book.own_learner(variant)
        if constants is None and variant and variant not in self.ab.book.created and "@" in variant:
            self.ab.sync(force=True)  # a variant another replica created since the last read
            constants = self.ab.book.own_learner(variant)
        if constants is None or variant is None:
            return "", self.model
        found = self.learners.get(variant)
        if found is None:
            found = self.learners[variant] = OnlineModel(
                self.spec.search_space(), seed=self.spec.seed, priors=priors_of(constants), front=self.front
            )
            models = [self.model, *self.learners.values()]
            for model in models:  # one bound for all: each holds its share of it
                model.limit(self.max_context_models // len(models))
        return variant, found

    def user(self, user_id: str, now: float) -> User:
        """The user's state from memory, or rebuilt from the store (and cached, LRU)."""
        user = self.users.get(user_id)
        if user is not None:
            self.users.move_to_end(user_id)
            return user
        user = User(weights=self.store.preferences(self.spec.name, user_id))
        for row in self.store.feedback_since(self.spec.name, 0, user_id=user_id):
            if row["seq"] > self.feedback_seq:
                break  # the population has not seen it yet: the next sync applies it
            try:
                reward = stored_reward(self.spec, row, user.weights)
                if reward is not None:
                    self.model.remember(user.history(context_label(row["context"])), row["params"], reward)
            except (ValueError, KeyError, TypeError):
                continue  # logged when the population skipped it
        for s in self.store.open_suggestions(self.spec.name, user_id, now):
            label = context_label(s["context"]) or ""
            user.pending[s["suggestion_id"]] = (label, s["params"], s["expires_at"])
        self.users[user_id] = user
        while len(self.users) > self.max_users:
            self.users.popitem(last=False)
            self.users_evicted += 1
        return user

    def ensure_context_model(self, context: str | None, key: str = "") -> None:
        """Rebuild the context's model of learner `key` from the store if memory dropped it (LRU)."""
        model = self.learners[key] if key else self.model
        if not model.evicted(context):
            return
        seqs, values = self.learnt[key, context or ""]
        calibrated = dict(zip(seqs, values, strict=True))
        params = {
            row["seq"]: row["params"]
            for row in self.store.feedback_since(self.spec.name, seqs[0] - 1)
            if row["seq"] in calibrated
        }
        model.rebuild(context, [(params[seq], calibrated[seq]) for seq in seqs])

    def next_params(
        self,
        user_id: str,
        user: User,
        context: str | None,
        now: float,
        ahead: tuple[SuggestionInputs, dict[str, Any]] | None = None,
        variant: str | None = None,
    ) -> tuple[SuggestionInputs, dict[str, Any]]:
        """The user's next params here, from `ahead` when they were computed in this state;
        `variant`: the label of the variant they are served (its learner suggests)."""
        rater = self.raters.get(user_id, Rater())
        label = context or ""
        open_ = {sid: p for sid, (c, p, expires) in user.pending.items() if c == label and expires > now}
        history = user.history(context)
        key, model = self.learner(variant)
        self.ensure_context_model(context, key)
        state = SuggestionInputs(model.context(context).weights(), rater.count, len(history), tuple(open_))
        if ahead is not None and ahead[0].holds(state):
            return ahead
        pending = list(open_.values())
        return state, model.suggest(rater, history, context, self.rng, pending, weights=user.weights)
