"""The event store: every suggestion, piece of feedback, preference, context and published
trial as an append-only event, in SQLite or PostgreSQL (SQLAlchemy), every call bounded."""

from engine.store.events import (
    DEFAULT_TIMEOUT_S,
    SCHEMA_VERSION,
    TABLES,
    UNAVAILABLE,
    EventStore,
    StoreError,
    StoreUnavailable,
    default_store_url,
    feedback_key,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SCHEMA_VERSION",
    "TABLES",
    "UNAVAILABLE",
    "EventStore",
    "StoreError",
    "StoreUnavailable",
    "default_store_url",
    "feedback_key",
]
