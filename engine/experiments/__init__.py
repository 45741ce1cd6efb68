"""Experiments on top of the online engine: variants, sticky assignment, allocation
(fixed split, Thompson sampling, UCB) and the statistics that decide between variants.

`variants` (the log of changes and its checks), `allocation` (hashes and shares),
`abtest` (one experiment's A/B state over the store), `analysis` (the report),
`stats` (pure statistics), `layers` (experiments sharing users), `comments` (the issues
feedback comments name)."""

from engine.experiments import stats
from engine.experiments.abtest import DEFAULT_VARIANT, ABTest, Assignment, served_name
from engine.experiments.allocation import pick, shares, unit_hash
from engine.experiments.analysis import Member, analyse
from engine.experiments.layers import check_layer
from engine.experiments.variants import Variant, VariantBook, VariantError, VariantPatch, VariantSpec

__all__ = [
    "DEFAULT_VARIANT",
    "ABTest",
    "Assignment",
    "Member",
    "Variant",
    "VariantBook",
    "VariantError",
    "VariantPatch",
    "VariantSpec",
    "analyse",
    "check_layer",
    "pick",
    "served_name",
    "shares",
    "stats",
    "unit_hash",
]
