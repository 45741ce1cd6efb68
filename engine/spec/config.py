"""Experiment specs: one pydantic model per concept, loaded from YAML, unknown keys refused.

Errors name the field, the value and the fix, so a user can correct a spec from the
message alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.spec.refs import REF_PATTERN, import_ref
from engine.spec.space import Param, Space

SearcherName = Literal["auto", "tpe", "nsga2", "gp", "random", "qmc", "pymoo-nsga2"]
SEARCHERS: tuple[str, ...] = get_args(SearcherName)
_CONSTRAINT = re.compile(r"^\s*(?:(?P<name>[A-Za-z_]\w*)\s*)?(?P<op><=|>=)\s*(?P<bound>[-+0-9.eE]+)\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Constraint(_Model):
    """`metric >= bound` or `metric <= bound`; violating trials are infeasible, not failed."""

    op: Literal["<=", ">="]
    bound: float

    def violation(self, value: float) -> float:
        """How far `value` is outside the bound; 0 when satisfied (Optuna's `<= 0` rule)."""
        return max(0.0, self.bound - value) if self.op == ">=" else max(0.0, value - self.bound)


class MetricSpec(_Model):
    name: str
    direction: Literal["min", "max"]
    unit: str = ""
    constraint: Constraint | None = None
    reference: float = Field(description="worst acceptable value: the hypervolume reference point")

    @field_validator("constraint", mode="before")
    @classmethod
    def _parse_constraint(cls, v: Any, info: Any) -> Any:
        if not isinstance(v, str):
            return v
        m = _CONSTRAINT.match(v)
        if not m:
            raise ValueError(f"constraint {v!r} is not understood; write it like 'quality >= 0.9'")
        name = info.data.get("name")
        if m["name"] and name and m["name"] != name:
            raise ValueError(f"constraint {v!r} names {m['name']!r} but sits on metric {name!r}")
        return {"op": m["op"], "bound": float(m["bound"])}

    def sign(self) -> float:
        """+1 for metrics to minimise, -1 to maximise: multiply to get minimisation form."""
        return 1.0 if self.direction == "min" else -1.0


class ObjectiveSpec(_Model):
    ref: str = Field(description="import reference 'package.module:Class'")
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ref")
    @classmethod
    def _check_ref(cls, v: str) -> str:
        if not re.fullmatch(REF_PATTERN, v):
            raise ValueError(f"ref {v!r} must look like 'objectives.vectorize:Vectorize'")
        return v

    def load_class(self) -> type:
        cls: type = import_ref(self.ref, "objective.ref")
        return cls

    def build(self) -> Any:
        """Instantiate the objective; bad options become a ValueError naming them."""
        cls = self.load_class()
        try:
            return cls(**self.options)
        except TypeError as e:
            raise ValueError(f"objective.options for {self.ref}: {e}") from e


class SearcherSpec(_Model):
    name: SearcherName
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _known(cls, v: Any) -> Any:
        if v not in SEARCHERS:
            raise ValueError(f"unknown searcher {v!r}; choose one of {', '.join(SEARCHERS)}")
        return v


class Budget(_Model):
    trials: int | None = Field(default=None, gt=0)
    wall_time_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.trials is None and self.wall_time_s is None:
            raise ValueError("budget needs `trials`, `wall_time_s` or both; e.g. trials: 100")
        return self


class Resources(_Model):
    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)


MAX_CONTEXT_LABEL = 128
MAX_CONTEXT_FEATURES = 64


class ContextsSpec(_Model):
    """The contexts the online learner keeps a population model for.

    Every context costs memory in every replica, and clients name contexts, so their
    number is bounded: the declared `labels`, then the first other labels (and feature
    clusters) requested, in the store's order, up to `max` in all. A request for a context
    beyond them is served from the experiment's default context, the label it asked for
    recorded with the suggestion (`overflow: default`), or refused with a 422 (`reject`).
    """

    labels: list[str] = Field(default_factory=list, description="contexts known up front")
    features: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONTEXT_FEATURES,
        description="length of context feature vectors; None: the experiment takes labels only",
    )
    max: int = Field(default=256, ge=1, le=100_000, description="contexts in all, declared ones included")
    overflow: Literal["default", "reject"] = "default"

    @model_validator(mode="after")
    def _fits(self) -> ContextsSpec:
        bad = [label for label in self.labels if not label.strip() or len(label) > MAX_CONTEXT_LABEL]
        if bad:
            raise ValueError(f"contexts.labels {bad} must be 1 to {MAX_CONTEXT_LABEL} characters, not blank")
        if len(set(self.labels)) > self.max:
            raise ValueError(
                f"contexts.labels declares {len(set(self.labels))} labels but contexts.max is {self.max}; "
                "raise max or declare fewer"
            )
        return self


class GuardrailSpec(_Model):
    """Automatic promotion and rollback of running variants against the control.

    A variant is promoted (it becomes the control; the old control stops) when the
    sequential test finds it better than the control by more than `promote_margin` at the
    experiment's confidence, and rolled back (stopped; its users get the control) when it
    finds it worse by more than `rollback_margin`; never before both sides have
    `min_samples` rated users. Off unless `auto`: promotion and rollback by hand
    (`POST .../variants/{name}/promote`, `.../rollback`) work either way.
    """

    auto: bool = False
    promote_margin: float = Field(default=0.1, ge=0.0, description="stars better than control")
    rollback_margin: float = Field(default=0.2, ge=0.0, description="stars worse than control")
    min_samples: int = Field(default=10, ge=2, description="rated users on each side first")
    ramp: list[float] | None = Field(
        default=None,
        description="shares a new variant is capped at, step by step, e.g. [0.01, 0.05, 0.25, 0.5, 1.0]",
    )
    ramp_users: int = Field(default=20, ge=1, description="its rated users a ramp step needs before the next")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> relative degradation against the control that stops a variant, e.g. 0.2",
    )

    @model_validator(mode="after")
    def _steps(self) -> GuardrailSpec:
        steps = self.ramp
        if steps is not None and (
            not steps or any(not 0 < x <= 1 for x in steps) or steps != sorted(set(steps)) or steps[-1] != 1
        ):
            raise ValueError(
                f"guardrails.ramp {steps} must rise within (0, 1] to 1, e.g. [0.01, 0.05, 0.25, 0.5, 1.0]"
            )
        if any(not t > 0 for t in self.metrics.values()):
            raise ValueError(f"guardrails.metrics {self.metrics} needs tolerances > 0, e.g. {{speed: 0.2}}")
        return self


class EvolutionSpec(_Model):
    """Candidates derived from the best performers while the experiment runs
    (engine/experiments/evolution.py): after every `every` ratings of the running variants,
    one candidate (kinds taken in turn), while fewer than `max_live` candidates run. A
    candidate starts at `weight` in a fixed split, and at the guardrails' first ramp step
    when a ramp is configured. Off unless `enabled`."""

    enabled: bool = False
    every: int = Field(default=10, ge=1, description="ratings of the running variants between candidates")
    max_live: int = Field(default=2, ge=1, le=16, description="candidates running at once")
    weight: float = Field(default=0.1, gt=0, description="a candidate's weight (the others' are typically 1)")
    kinds: list[Literal["params", "prompt"]] = Field(default=["params", "prompt"], min_length=1)


class ABSpec(_Model):
    """How an experiment's variants split its users and how they are compared.

    A user is hashed into [0, 1) per `layer` (salted with the layer's name): the experiment
    takes the users in `range`, so experiments of one layer with disjoint ranges never
    share a user, and experiments in different layers are independent. Of its users,
    `holdout` are served the control and analysed apart; the rest are assigned a variant
    once (sticky), by `allocation`.
    """

    layer: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][\w.-]{0,63}$", description="default: the experiment's name"
    )
    range: tuple[float, float] = Field(
        default=(0.0, 1.0), description="the layer's share this experiment takes"
    )
    holdout: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of its users held out on control")
    salt: str | None = Field(default=None, max_length=64, description="default: the experiment's name")
    allocation: Literal["fixed", "thompson", "ucb"] = Field(
        default="fixed", description="fixed: the variants' weights; thompson/ucb: bandits with a floor"
    )
    floor: float = Field(default=0.05, ge=0.0, le=0.5, description="a bandit's least share per variant")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    min_effect: float = Field(
        default=0.1, gt=0, description="the smallest lift worth shipping, in stars (futility, MDE)"
    )
    min_users: int = Field(default=20, ge=2, description="users per variant before any recommendation")
    sequential_tuning: float = Field(
        default=1000.0, gt=0, description="users in all at which the sequential test is tightest"
    )
    sync_s: float = Field(default=5.0, ge=0, description="how stale a replica's bandit statistics may be")
    unit: Literal["user", "rating"] = Field(
        default="user", description="user: per-user means (the unit randomised); rating: every rating"
    )
    cuped: bool = Field(default=True, description="adjust by users' ratings from before their assignment")
    winsorize: float = Field(
        default=0.01, ge=0.0, lt=0.5, description="share of the largest metric values capped (latency, cost)"
    )
    guardrails: GuardrailSpec = Field(default_factory=GuardrailSpec)
    evolution: EvolutionSpec = Field(default_factory=EvolutionSpec)

    @model_validator(mode="after")
    def _range(self) -> ABSpec:
        low, high = self.range
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"ab.range {list(self.range)} must satisfy 0 <= low < high <= 1, e.g. [0, 0.5]")
        if self.allocation != "fixed" and self.floor * 2 > 1:
            raise ValueError(f"ab.floor {self.floor} leaves nothing to allocate; use at most 0.5")
        return self


SCHEDULES = {"daily": "0 3 * * *", "weekly": "0 3 * * 1", "monthly": "0 3 1 * *"}


class LifecycleSpec(_Model):
    """What the experiment does by itself over time: retrain on a schedule, forget old data.

    `schedule`: daily, weekly or monthly (at 03:00 UTC; weekly on Mondays, monthly on the
    1st) or a cron expression (UTC), e.g. "30 2 * * 0". A retrain refits the learner's
    constants on the feedback of the last `days` and activates the new model version only
    when it beats the active one on the last 20% of that feedback (engine/online/retrain.py).
    `retention_days`: events older than that are anonymised (at each scheduled run and
    each retrain).
    """

    schedule: str | None = Field(default=None, description="daily | weekly | monthly | a cron expression")
    days: float = Field(default=30.0, gt=0, le=3650, description="recent feedback a retrain fits on")
    retention_days: float | None = Field(default=None, gt=0, description="anonymise events older than this")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(SCHEDULES.get(value, value)):
            raise ValueError(
                f"schedule {value!r} is neither daily, weekly, monthly nor a cron expression "
                "such as '0 3 * * *' (minute hour day month weekday, UTC)"
            )
        return value

    def cron(self) -> str | None:
        """The schedule as a cron expression."""
        return SCHEDULES.get(self.schedule, self.schedule) if self.schedule else None


class ExperimentSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]{0,63}$")
    objective: ObjectiveSpec
    space: dict[str, Param] | None = Field(
        default=None, description="parameters to search; defaults to the objective's own space"
    )
    metrics: list[MetricSpec] = Field(min_length=1)
    searcher: SearcherSpec = Field(default_factory=lambda: SearcherSpec(name="auto"))
    budget: Budget
    concurrency: int = Field(default=1, ge=1, le=1024)
    resources: Resources = Field(default_factory=Resources)
    seed: int = 0
    contexts: ContextsSpec = Field(default_factory=ContextsSpec)
    preference: dict[str, float] | None = Field(
        default=None, description="weights over the metrics; default: every metric weighs the same"
    )
    ab: ABSpec = Field(default_factory=ABSpec, description="variants' split and their comparison")
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec, description="retraining and retention")

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics {names} repeat a name; give each metric once")
        unknown_guards = sorted(set(self.ab.guardrails.metrics) - set(names))
        if unknown_guards:
            raise ValueError(f"ab.guardrails.metrics names {unknown_guards}, not metrics {names}")
        if self.preference is None:
            return self
        unknown = set(self.preference) - set(names)
        if unknown:
            raise ValueError(
                f"preference weights name {sorted(unknown)} that are not metrics {names}; "
                "weight only declared metrics"
            )
        if any(not w >= 0 for w in self.preference.values()) or not sum(self.preference.values()) > 0:
            raise ValueError(f"preference {self.preference} needs weights >= 0, not all 0")
        return self

    def search_space(self, objective_cls: type | None = None) -> Space:
        """The spec's space, or the objective's default when the spec names none."""
        if self.space is not None:
            return Space(self.space)
        cls = objective_cls or self.objective.load_class()
        raw = getattr(cls, "space", None)
        if not raw:
            raise ValueError(f"{self.objective.ref} declares no `space`; add `space:` to the spec")
        return Space(_SpaceModel.model_validate({"params": raw}).params)

    def context_features(self) -> int | None:
        """The length of context feature vectors: the spec's `contexts.features`, else the
        objective's own `context_features` (so specs stored before the field keep theirs)."""
        if self.contexts.features is not None:
            return self.contexts.features
        try:
            declared = getattr(self.objective.load_class(), "context_features", None)
        except ValueError:  # the objective cannot be imported here: labels only
            return None
        return int(declared) if declared is not None else None

    def layer(self) -> str:
        return self.ab.layer or self.name

    def salt(self) -> str:
        return self.ab.salt or self.name

    def weights(self) -> dict[str, float]:
        """Preference weights over every metric: the spec's (missing ones weigh 0), or equal."""
        if self.preference is None:
            return {m.name: 1.0 / len(self.metrics) for m in self.metrics}
        return {m.name: float(self.preference.get(m.name, 0.0)) for m in self.metrics}


class _SpaceModel(_Model):
    params: dict[str, Param]


class SpecError(ValueError):
    """A spec that cannot be used, with every problem listed as `field: message`."""


def parse_spec(data: Any, source: str = "<spec>") -> ExperimentSpec:
    """Validate a spec dict, then check it against its objective (metrics it returns)."""
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(_format_errors(source, e)) from None
    try:
        cls = spec.objective.load_class()
        spec.search_space(cls)
        declared = getattr(cls, "metrics", None)
        if declared is not None:
            missing = [m.name for m in spec.metrics if m.name not in declared]
            if missing:
                raise ValueError(
                    f"metrics {missing} are not produced by {spec.objective.ref}, "
                    f"which reports {sorted(declared)}"
                )
    except ValueError as e:
        raise SpecError(f"{source}: {e}") from None
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file; pass a YAML file such as configs/vectorize.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields at the top, got {type(data).__name__}")
    return parse_spec(data, str(path))


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) or len(repr(value)) < 80 else "{...}"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required field is missing; add it"
            shown = ""
        lines.append(f"  {loc}: {msg}" + (f" (got {shown})" if shown else ""))
    return "\n".join(lines)
