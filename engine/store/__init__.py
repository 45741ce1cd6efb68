"""The event store: every suggestion, piece of feedback, preference, context and published
trial as an append-only event, in SQLite or PostgreSQL (SQLAlchemy), every call bounded.

`events` is the API (`EventStore`); `schema` its tables and `upgrades` their versions;
`writes` and `queries` its SQL; `bounded` its time limits; `errors` what callers catch.
"""

from engine.store.bounded import DEFAULT_TIMEOUT_S
from engine.store.errors import UNAVAILABLE, StoreError, StoreUnavailable
from engine.store.events import EventStore, default_store_url, write_frame, write_table
from engine.store.schema import ANONYMOUS, SCHEMA_VERSION, TABLES, feedback_key

__all__ = [
    "ANONYMOUS",
    "DEFAULT_TIMEOUT_S",
    "SCHEMA_VERSION",
    "TABLES",
    "UNAVAILABLE",
    "EventStore",
    "StoreError",
    "StoreUnavailable",
    "default_store_url",
    "feedback_key",
    "write_frame",
    "write_table",
]
