"""An append-only, fsynced JSON-lines log: nothing acknowledged is lost on a crash.

Exploration state is rebuilt by replaying it (the searcher is seeded, so replaying the
same asks and tells reproduces the same state), as the design's event store does online.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def read(self) -> Iterator[dict[str, Any]]:
        """Every complete event; a torn last line from a crash is ignored."""
        if not self.path.exists():
            return
        with self.path.open() as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                yield json.loads(line)

    def append(self, event: dict[str, Any], durable: bool = True) -> None:
        """Write one event; `durable` fsyncs it (and everything before it) to disk."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._truncate_torn_tail()
            self._file = self.path.open("a")
        self._file.write(json.dumps(event, default=_jsonable) + "\n")
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())

    def _truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with self.path.open("r+b") as f:
                f.truncate(keep)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _jsonable(value: Any) -> Any:
    """numpy scalars and the like, as plain Python values."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
