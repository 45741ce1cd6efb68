"""Learning what the store holds since the last read, whichever engine wrote it.

Feedback rows are applied in write order, each once, past a cursor (the last seq read):
the population learns them on the experiment's weights, the user's own history on the
user's (docs/online-model.md). Feedback that no weights in force give a value is stored
but teaches nothing; `why_not_learnt` says so when it is sent. Preferences another
engine changed drop that user's cached state, rebuilt on next use.
"""

from __future__ import annotations

import logging
import time
from array import array
from typing import Any

from engine.online.protocol import context_label, stored_reward
from engine.online.rater import Rater
from engine.online.rewards import Feedback, terms, utility
from engine.online.state import Experiment

__all__ = ["catch_up", "why_not_learnt"]

log = logging.getLogger(__name__)


def catch_up(exp: Experiment, peer_sync_s: float) -> set[tuple[str, str]]:
    """Learn from every feedback stored since the last read; read preferences, model
    activations and deletions when the last read of them is `peer_sync_s` old (a version
    activated or a user deleted since marks the state `stale`: the engine rebuilds it from
    the store). Returns the (user, context label) pairs rated."""
    now = time.monotonic()
    rated = set()
    exp.unlearnt = False
    for row in exp.store.feedback_since(exp.spec.name, exp.feedback_seq):
        try:
            _apply(exp, row)
        except (ValueError, KeyError, TypeError) as e:  # a row no model can take: say so, go on
            log.error("%s: feedback seq %s cannot be learnt (%s); skipped", exp.spec.name, row["seq"], e)
        exp.feedback_seq = row["seq"]  # only once applied
        rated.add((row["user_id"], context_label(row["context"]) or ""))
    if now - exp.peers_synced_at >= peer_sync_s:
        exp.peers_synced_at = now
        for row in exp.store.preferences_since(exp.spec.name, exp.preferences_seq):
            exp.users.pop(row["user_id"], None)  # rebuilt, re-scored, on next use
            exp.preferences_seq = row["seq"]
        for row in exp.store.since("models", exp.spec.name, exp.models.seq):
            exp.models.apply(row)
        for row in exp.store.since("tombstones", exp.spec.name, exp.tombstones_seq):
            exp.tombstones_seq, exp.stale = row["seq"], True
        exp.stale = exp.stale or exp.models.active != exp.serving
    return rated


def _apply(exp: Experiment, row: dict[str, Any]) -> None:
    """The population learns the row on the experiment's weights, the user's own
    history on the user's weights; either may find nothing it weighs (None)."""
    reward = stored_reward(exp.spec, row)
    user = exp.users.get(row["user_id"])
    if user is not None:
        user.pending.pop(row["suggestion_id"], None)
    rater = exp.raters.setdefault(row["user_id"], Rater())
    label = context_label(row["context"])
    if reward is not None:
        key, model = exp.learner(row["variant"])  # a learner variant's own, or the experiment's
        calibrated = model.learn(rater, label, row["params"], reward)
        seqs, values = exp.learnt.setdefault((key, label or ""), (array("q"), array("d")))
        seqs.append(row["seq"])
        values.append(calibrated)
    if user is not None:
        own = stored_reward(exp.spec, row, user.weights) if user.weights else reward
        if own is not None:
            exp.model.remember(user.history(label), row["params"], own)


def why_not_learnt(exp: Experiment, user_id: str, fb: Feedback) -> str | None:
    """Why this feedback teaches no model (None when it teaches one)."""
    metrics = exp.spec.metrics
    if utility(fb, metrics, exp.spec.weights()) is not None:
        return None
    user = exp.users.get(user_id)
    own = user.weights if user is not None else exp.store.preferences(exp.spec.name, user_id)
    if own and utility(fb, metrics, own) is not None:
        return None
    weighed = sorted(n for n, w in (own or exp.spec.weights()).items() if w > 0)
    return (
        f"stored but not learnt: it speaks of {sorted(terms(fb, metrics))}, and the weights in "
        f"force for user {user_id!r} weigh only {weighed}; give those metrics a weight "
        f"(PUT /v1/experiments/{exp.spec.name}/users/{user_id}/preferences, or the spec's preference)"
    )
