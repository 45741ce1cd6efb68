"""Searchers behind one ask/tell protocol; `make_searcher` picks a family by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.offline.searchers.base import Searcher, Trial
from engine.offline.searchers.optuna_searchers import OptunaSearcher
from engine.offline.searchers.portfolio import AutoSearcher
from engine.offline.searchers.pymoo_searchers import PymooNSGA2Searcher
from engine.spec import SEARCHERS, MetricSpec, Space

__all__ = [
    "SEARCHERS",
    "AutoSearcher",
    "OptunaSearcher",
    "PymooNSGA2Searcher",
    "Searcher",
    "Trial",
    "make_searcher",
]


def make_searcher(
    name: str,
    space: Space,
    metrics: Sequence[MetricSpec],
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Searcher:
    if name == "pymoo-nsga2":
        return PymooNSGA2Searcher(space, metrics, seed, options)
    if name == "auto":
        return AutoSearcher(space, metrics, seed, options)
    if name in SEARCHERS:
        return OptunaSearcher(name, space, metrics, seed, options)
    raise ValueError(f"unknown searcher {name!r}; choose one of {', '.join(SEARCHERS)}")
