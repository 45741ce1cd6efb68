"""The store's hot reads, built once: SQLAlchemy then only binds parameters (a query
built per call cost 100-130 us more than its execution on SQLite, on every online
request). Each takes its values as bound parameters, named in the query.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.store.schema import (
    ANONYMOUS,
    assignments,
    contexts,
    experiments,
    feedback,
    meta,
    preferences,
    suggestions,
)

__all__ = [
    "ASSIGNED_BEFORE",
    "ASSIGNMENT",
    "CONTEXTS_SINCE",
    "EXPERIMENT",
    "FEEDBACK_FOR",
    "FEEDBACK_SINCE",
    "LATEST_PREFERENCES",
    "NAMED_BEFORE",
    "OPEN_SUGGESTIONS",
    "PING",
    "PREFERENCES_SINCE",
    "SUGGESTION",
    "SUGGESTIONS_SINCE",
    "USER_SEEN",
]

PING = sa.select(meta.c.value).where(meta.c.key == "schema_version")

# by "key": the row with that unique key
EXPERIMENT = sa.select(experiments).where(experiments.c.name == sa.bindparam("key"))
SUGGESTION = sa.select(suggestions).where(suggestions.c.suggestion_id == sa.bindparam("key"))
FEEDBACK_FOR = sa.select(feedback).where(feedback.c.idempotency_key == sa.bindparam("key"))
ASSIGNMENT = sa.select(assignments).where(assignments.c.idempotency_key == sa.bindparam("key"))

SUGGESTIONS_SINCE = (
    sa.select(suggestions)
    .where(suggestions.c.experiment == sa.bindparam("experiment"), suggestions.c.seq > sa.bindparam("after"))
    .order_by(suggestions.c.seq)
)
OPEN_SUGGESTIONS = (
    sa.select(suggestions)
    .where(
        suggestions.c.experiment == sa.bindparam("experiment"),
        suggestions.c.user_id == sa.bindparam("user_id"),
        suggestions.c.expires_at > sa.bindparam("now"),
        suggestions.c.suggestion_id.not_in(sa.select(feedback.c.suggestion_id)),
    )
    .order_by(suggestions.c.seq)
)
CONTEXTS_SINCE = (
    sa.select(contexts.c.seq, contexts.c.label)
    .where(contexts.c.experiment == sa.bindparam("experiment"), contexts.c.seq > sa.bindparam("after"))
    .order_by(contexts.c.seq)
)
LATEST_PREFERENCES = (
    sa.select(preferences.c.weights)
    .where(
        preferences.c.experiment == sa.bindparam("experiment"),
        preferences.c.user_id == sa.bindparam("user_id"),
    )
    .order_by(preferences.c.seq.desc())
    .limit(1)
)
PREFERENCES_SINCE = (
    sa.select(preferences)
    .where(preferences.c.experiment == sa.bindparam("experiment"), preferences.c.seq > sa.bindparam("after"))
    .order_by(preferences.c.seq)
)


def _feedback_since(by_user: bool) -> sa.Select[Any]:
    query = (
        sa.select(feedback, suggestions.c.params, suggestions.c.context, suggestions.c.variant)
        .join(suggestions, suggestions.c.suggestion_id == feedback.c.suggestion_id)
        .where(feedback.c.experiment == sa.bindparam("experiment"), feedback.c.seq > sa.bindparam("after"))
        .order_by(feedback.c.seq)
    )
    if by_user:
        query = query.where(feedback.c.user_id == sa.bindparam("user_id"))
    return query


# by whether it is filtered by "user_id"
FEEDBACK_SINCE = {by_user: _feedback_since(by_user) for by_user in (False, True)}


USER_SEEN = tuple(  # a user's suggestions, then their preferences (one row is enough)
    sa.select(t.c.seq)
    .where(t.c.experiment == sa.bindparam("experiment"), t.c.user_id == sa.bindparam("user_id"))
    .limit(1)
    for t in (suggestions, preferences)
)
# rows older than a cutoff that still name their user
NAMED_BEFORE = sa.select(suggestions.c.seq, suggestions.c.suggestion_id).where(
    suggestions.c.experiment == sa.bindparam("experiment"),
    suggestions.c.recorded_at < sa.bindparam("cutoff"),
    sa.not_(suggestions.c.user_id.startswith(ANONYMOUS)),
)
ASSIGNED_BEFORE = sa.select(assignments.c.seq).where(
    assignments.c.experiment == sa.bindparam("experiment"),
    assignments.c.recorded_at < sa.bindparam("cutoff"),
    sa.not_(assignments.c.user_id.startswith(ANONYMOUS)),
)
