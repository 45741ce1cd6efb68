"""Which replica or shard holds a user: one stable key, shared by the client and the server.

Suggestion ids start with their user's routing key, so feedback reaches the shard that
made the suggestion without a store lookup, and a client can name the user's replica
(`x-session-id`) from any of their suggestion ids.
"""

from __future__ import annotations

import hashlib

__all__ = ["routing_key", "shard_of"]


def routing_key(experiment: str, user_id: str) -> str:
    """16 hex digits that pick the user's shard; stable across processes (unlike hash()).

    Suggestion ids start with it, so feedback is routed to the shard that made the
    suggestion without a store lookup.
    """
    digest = hashlib.blake2b(f"{experiment}\0{user_id}".encode(), digest_size=8).digest()
    return digest.hex()


def shard_of(key: str, shards: int) -> int:
    """The shard for a routing key, or for a suggestion id (which starts with one)."""
    try:
        return int(key[:16], 16) % shards
    except ValueError:  # not one of ours: any shard answers "unknown suggestion"
        return 0
