"""One trial's evaluation, wherever it runs (this process, a Tune worker): what the
objective returned, or why the trial cannot count. Whatever an objective raises becomes a
failed trial with its reason, never a crashed exploration."""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrialResult", "checked_metrics", "describe_error", "evaluate"]


@dataclass(frozen=True)
class TrialResult:
    """What one evaluation produced: metrics, or an error message."""

    metrics: Mapping[str, float] | None
    error: str | None = None
    started_at: float = 0.0
    duration_s: float = 0.0
    worker: str = ""  # host:pid of the process that evaluated it


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def evaluate(objective: Any, params: dict[str, Any]) -> TrialResult:
    """Run one evaluation; whatever the objective raises becomes a failed result."""
    started, t0 = time.time(), time.perf_counter()
    try:
        metrics = dict(objective.evaluate(params))
        error = None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # Rust extensions (vtracer) panic with a BaseException
        metrics, error = None, describe_error(e)
    return TrialResult(metrics, error, started, time.perf_counter() - t0, _worker())


def describe_error(e: BaseException) -> str:
    """`Type: message (file:line)` of where it was raised, for the trials table."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def checked_metrics(result: TrialResult, names: list[str]) -> tuple[dict[str, float] | None, str | None]:
    """Metrics as floats, or None with the reason when the trial cannot count."""
    if result.metrics is None:
        return None, result.error or "the objective reported no metrics"
    missing = [n for n in names if n not in result.metrics]
    if missing:
        return None, f"the objective did not report {missing}"
    values: dict[str, float] = {}
    for n in names:
        try:
            v = float(result.metrics[n])
        except (TypeError, ValueError):
            return None, f"metric {n!r} is not a number: {result.metrics[n]!r}"
        if not math.isfinite(v):
            return None, f"metric {n!r} is {v}"
        values[n] = v
    return values, None
