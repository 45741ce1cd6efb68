"""The offline phase: searchers propose trials, an exploration journals their results and
maps the Pareto front, and the fronts are published to the store for the HTTP API.

Where trials run is passed in (`explore(..., runner=...)`): this package never imports Ray.
"""

from engine.offline.exploration import Exploration, ResumeError, Summary
from engine.offline.explore import Runner, default_out_dir, explore, run_local
from engine.offline.fronts import UnknownRun, front_report, publish
from engine.offline.pareto import (
    HypervolumeTracker,
    format_front,
    front,
    hypervolume,
    hypervolume_history,
    knee,
    select_by_weights,
)
from engine.offline.searchers import Searcher, Trial, make_searcher
from engine.offline.trials import TrialResult, evaluate

__all__ = [
    "Exploration",
    "HypervolumeTracker",
    "ResumeError",
    "Runner",
    "Searcher",
    "Summary",
    "Trial",
    "TrialResult",
    "UnknownRun",
    "default_out_dir",
    "evaluate",
    "explore",
    "format_front",
    "front",
    "front_report",
    "hypervolume",
    "hypervolume_history",
    "knee",
    "make_searcher",
    "publish",
    "run_local",
    "select_by_weights",
]
