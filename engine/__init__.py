"""Frontier's core: specs, search spaces, searchers, Pareto tools and exploration.

Importing `engine` does not import Ray; only `engine.ray` does.
"""

from engine.config import ExperimentSpec, MetricSpec, SpecError, load_spec, parse_spec
from engine.exploration import Exploration, ResumeError, Summary, TrialResult
from engine.explore import explore
from engine.pareto import front, hypervolume, knee, select_by_weights
from engine.searchers import SEARCHERS, Searcher, Trial, make_searcher
from engine.space import Space

__all__ = [
    "SEARCHERS",
    "ExperimentSpec",
    "Exploration",
    "MetricSpec",
    "ResumeError",
    "Searcher",
    "Space",
    "SpecError",
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
    "select_by_weights",
]
