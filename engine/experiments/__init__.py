"""Experiments on top of the online engine: variants, sticky assignment, allocation
(fixed split, Thompson sampling, UCB) and the statistics that decide between variants.

`variants` (the log of changes and its checks), `allocation` (hashes and shares),
`abtest` (one experiment's A/B state over the store), `analysis` (the report),
`stats` (pure statistics), `layers` (experiments sharing users)."""

from engine.experiments.abtest import DEFAULT_VARIANT, ABTest, Assignment, served_name
from engine.experiments.allocation import pick, shares, unit_hash
from engine.experiments.analysis import Member, analyse
from engine.experiments.layers import check_layer
from engine.experiments.stats import (
    SRM_P_THRESHOLD,
    Interval,
    Lift,
    SampleRatio,
    Summary,
    Welch,
    cohens_d,
    confidence_sequence,
    cuped,
    expected_loss,
    holm,
    lift,
    minimum_detectable_effect,
    power,
    prob_beat_control,
    sample_ratio,
    sequential_p_value,
    users_needed,
    welch,
    winsorize,
)
from engine.experiments.variants import Variant, VariantBook, VariantError, VariantPatch, VariantSpec

__all__ = [
    "DEFAULT_VARIANT",
    "SRM_P_THRESHOLD",
    "ABTest",
    "Assignment",
    "Interval",
    "Lift",
    "Member",
    "SampleRatio",
    "Summary",
    "Variant",
    "VariantBook",
    "VariantError",
    "VariantPatch",
    "VariantSpec",
    "Welch",
    "analyse",
    "check_layer",
    "cohens_d",
    "confidence_sequence",
    "cuped",
    "expected_loss",
    "holm",
    "lift",
    "minimum_detectable_effect",
    "pick",
    "power",
    "prob_beat_control",
    "sample_ratio",
    "sequential_p_value",
    "served_name",
    "shares",
    "unit_hash",
    "users_needed",
    "welch",
    "winsorize",
]
