"""What a store call raises, apart from a bug's error: so that callers can tell a store
they should retry shortly (UNAVAILABLE: a service answers 503) from one used wrongly."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["UNAVAILABLE", "StoreError", "StoreUnavailable"]


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked."""


class StoreUnavailable(StoreError):
    """The store did not answer within its timeout, or did not a moment ago: retry shortly."""


# What the database driver raises while the store cannot be reached (down, restarting,
# dropped, locked or silent past the timeout): a caller may retry, unlike a bug's error.
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, StoreUnavailable)
