"""Import references ('package.module:attr'): how specs name objectives and simulated users,
and how Serve configs name their application, so the engine loads them without importing
them at its own import time."""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["REF_PATTERN", "import_ref"]

REF_PATTERN = r"[\w.]+:\w+"


def import_ref(ref: str, what: str = "ref") -> Any:
    """The attribute `ref` names; a ValueError saying which part failed otherwise."""
    if not re.fullmatch(REF_PATTERN, ref):
        raise ValueError(f"{what} {ref!r} must look like 'package.module:attr'")
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what} {ref!r}: cannot import {module_name!r} ({e})") from e
    if not hasattr(module, attr):
        raise ValueError(f"{what} {ref!r}: {module_name!r} has no {attr!r}")
    return getattr(module, attr)
