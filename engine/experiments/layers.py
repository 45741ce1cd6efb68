"""Layers: experiments that share users. Each takes a range of the layer's hash, and
ranges in one layer must not overlap, so no user is in two of its experiments (as
GrowthBook namespaces and Statsig layers do)."""

from __future__ import annotations

from collections.abc import Iterable

from engine.spec import ExperimentSpec

__all__ = ["check_layer"]


def check_layer(spec: ExperimentSpec, others: Iterable[ExperimentSpec]) -> None:
    """Raise ValueError when `spec`'s range overlaps another experiment's in its layer."""
    low, high = spec.ab.range
    for other in others:
        if other.name == spec.name or other.layer() != spec.layer():
            continue
        o_low, o_high = other.ab.range
        if low < o_high and o_low < high:
            raise ValueError(
                f"ab.range {list(spec.ab.range)} overlaps experiment {other.name!r}'s {list(other.ab.range)} "
                f"in layer {spec.layer()!r}; experiments of one layer take disjoint ranges"
            )
