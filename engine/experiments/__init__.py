"""Experiments on top of the online engine: variants, sticky assignment, allocation
(fixed split, Thompson sampling, UCB) and the statistics that decide between variants.

`variants` (the log of changes and its checks), `allocation` (hashes and shares),
`abtest` (one experiment's A/B state over the store), `analysis` (the report),
`stats` (pure statistics), `layers` (experiments sharing users), `comments` (the issues
feedback comments name), `versions` (the learned model's versions)."""

from engine.experiments import stats
from engine.experiments.abtest import DEFAULT_VARIANT, ABTest, Assignment, served_name
from engine.experiments.allocation import pick, shares, unit_hash
from engine.experiments.analysis import Member, analyse
from engine.experiments.layers import check_layer
from engine.experiments.variants import (
    Variant,
    VariantBook,
    VariantError,
    VariantPatch,
    VariantSpec,
    check_priors,
)
from engine.experiments.versions import BASE_VERSION, ModelBook, ModelVersion

__all__ = [
    "BASE_VERSION",
    "DEFAULT_VARIANT",
    "ABTest",
    "Assignment",
    "Member",
    "ModelBook",
    "ModelVersion",
    "Variant",
    "VariantBook",
    "VariantError",
    "VariantPatch",
    "VariantSpec",
    "analyse",
    "check_layer",
    "check_priors",
    "pick",
    "served_name",
    "shares",
    "stats",
    "unit_hash",
]
