"""What an experiment is: its spec (objective, space, metrics, budget, contexts) and its space.

The bottom layer: everything else reads specs; this package imports nothing of the engine.
"""

from engine.spec.config import (
    MAX_CONTEXT_FEATURES,
    MAX_CONTEXT_LABEL,
    SEARCHERS,
    ABSpec,
    Budget,
    Constraint,
    ContextsSpec,
    EvolutionSpec,
    ExperimentSpec,
    GuardrailSpec,
    LifecycleSpec,
    MetricSpec,
    ObjectiveSpec,
    SearcherSpec,
    SpecError,
    load_spec,
    parse_spec,
)
from engine.spec.refs import import_ref
from engine.spec.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param, Space

__all__ = [
    "MAX_CONTEXT_FEATURES",
    "MAX_CONTEXT_LABEL",
    "SEARCHERS",
    "ABSpec",
    "Budget",
    "CategoricalParam",
    "Constraint",
    "ContextsSpec",
    "EvolutionSpec",
    "ExperimentSpec",
    "FixedParam",
    "FloatParam",
    "GuardrailSpec",
    "IntParam",
    "LifecycleSpec",
    "MetricSpec",
    "ObjectiveSpec",
    "Param",
    "SearcherSpec",
    "Space",
    "SpecError",
    "import_ref",
    "load_spec",
    "parse_spec",
]
