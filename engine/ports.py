"""A free local TCP port, for the servers that the demo, the tests and the benchmarks start.

Never Redis's 6379 in practice: the operating system hands out ephemeral ports, and a
preferred port is used only when it is free.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens there, else a port the system chooses."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
