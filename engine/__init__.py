"""Frontier's core, in the order of the loop (docs/online-model.md for the online model):

- `engine.spec`: what an experiment is (spec, search space);
- `engine.store`: the event store everything is kept in;
- `engine.offline`: searchers, explorations and Pareto fronts;
- `engine.online`: suggestions, feedback, rewards and the model that learns from them;
- `engine.ray`: where work runs (Tune runner, shard actors): the only Ray importer here,
  with `engine.sim` (simulated users, the demo) and `engine.cli` that choose it;
- `engine.client`: the HTTP API's client; `engine.routing`: its routing key, shared with
  the server.

The layers are import-linter contracts (`pyproject.toml`). Importing `engine` does not
import Ray.
"""

from engine.offline import (
    Exploration,
    ResumeError,
    Searcher,
    Summary,
    Trial,
    TrialResult,
    explore,
    front,
    hypervolume,
    knee,
    make_searcher,
    run_local,
    select_by_weights,
)
from engine.online import Feedback, FeedbackResult, OnlineEngine, Suggestion
from engine.spec import SEARCHERS, ExperimentSpec, MetricSpec, Space, SpecError, load_spec, parse_spec
from engine.store import EventStore

__all__ = [
    "SEARCHERS",
    "EventStore",
    "ExperimentSpec",
    "Exploration",
    "Feedback",
    "FeedbackResult",
    "MetricSpec",
    "OnlineEngine",
    "ResumeError",
    "Searcher",
    "Space",
    "SpecError",
    "Suggestion",
    "Summary",
    "Trial",
    "TrialResult",
    "explore",
    "front",
    "hypervolume",
    "knee",
    "load_spec",
    "make_searcher",
    "parse_spec",
    "run_local",
    "select_by_weights",
]
