"""Variants: what an experiment compares, as a log of changes in the store.

A variant is addressed by its name, its versions by semantic version. It is one of:
- `prompt`: a payload the client uses (a prompt template, say); the learner is shared;
- `params`: a fixed parameter set (`payload.params`, every name in the space, within its
  bounds) that overrides the learner's suggestion for those parameters;
- `learner`: the learner itself, optionally with its own constants (`payload.priors`,
  fields of `engine.online.Priors`): then it keeps its own learner state per context.

The current state of every variant is the fold of the log (`VariantBook`); a change is
checked against it before it is written, so a bad one changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.spec import ExperimentSpec

__all__ = [
    "CONFLICT",
    "MAX_PAYLOAD",
    "MAX_VARIANTS",
    "MAX_VERSIONS",
    "NOT_FOUND",
    "Kind",
    "Status",
    "Variant",
    "VariantBook",
    "VariantError",
    "VariantPatch",
    "VariantSpec",
    "parse_version",
]

MAX_PAYLOAD = 65_536  # bytes of JSON
MAX_VARIANTS = 64  # per experiment (each may keep a learner and tallies in every replica)
MAX_VERSIONS = 256  # per variant
NOT_FOUND, CONFLICT, INVALID = 404, 409, 422
NAME_PATTERN = r"^[A-Za-z0-9][\w.-]{0,63}$"
_SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")

Kind = Literal["prompt", "params", "learner"]
Status = Literal["draft", "running", "paused", "stopped"]


class VariantError(ValueError):
    """A variant change refused; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = INVALID) -> None:
        super().__init__(message)
        self.status = status


def parse_version(version: str) -> tuple[int, int, int]:
    m = _SEMVER.match(version)
    if not m:
        raise VariantError(f"version {version!r} is not a semantic version; write it like 1.0.0")
    return int(m[1]), int(m[2]), int(m[3])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantSpec(_Body):
    """A new variant, or a new version of one (a higher `version` under the same name)."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(default="1.0.0", description="semantic version, e.g. 1.2.0")
    kind: Kind = "prompt"
    payload: dict[str, Any] = Field(default_factory=dict, description="what a suggestion hands the client")
    parent: str | None = Field(default=None, description="'<name>@<version>' it derives from")
    status: Status = "running"
    weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False, description="its share in a fixed split")
    control: bool = False
    reason: str | None = Field(default=None, max_length=500, description="why it was made")

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        parse_version(v)
        return v

    @field_validator("payload")
    @classmethod
    def _bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(v))
        if size > MAX_PAYLOAD:
            raise ValueError(f"payload is {size} bytes of JSON; the limit is {MAX_PAYLOAD}")
        return v


class VariantPatch(_Body):
    """Weights and status; users already assigned keep their variant unless `reassign`."""

    weight: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    status: Status | None = None
    reassign: bool = Field(default=False, description="draw every user's variant again")


@dataclass(frozen=True)
class Variant:
    name: str
    version: str
    kind: Kind
    payload: dict[str, Any]
    parent: str | None
    status: Status
    weight: float
    control: bool
    versions: tuple[str, ...] = field(default=())  # every version created, oldest first
    cap: float = 1.0  # the most of new users it may get (a ramp's step)
    ramp_users: int = 0  # its rated users when its ramp step began
    reason: str | None = None  # why this version was made
    metrics: dict[str, Any] | None = None  # its parent's and the control's statistics then

    def state(self) -> dict[str, Any]:
        """What the log stores after a change."""
        return {
            "kind": self.kind,
            "payload": self.payload,
            "parent": self.parent,
            "status": self.status,
            "weight": self.weight,
            "control": self.control,
            "cap": self.cap,
            "ramp_users": self.ramp_users,
            "reason": self.reason,
            "metrics": self.metrics,
        }

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, **self.state(), "versions": list(self.versions)}


class VariantBook:
    """One experiment's variants, folded from its log in write order."""

    def __init__(self, spec: ExperimentSpec, constants: frozenset[str] = frozenset()) -> None:
        """`constants`: what a learner variant's `payload.priors` may set (the online
        model's constants, which this layer does not import)."""
        self.spec = spec
        self.constants = constants
        self.variants: dict[str, Variant] = {}  # in creation order
        self.created: dict[str, Variant] = {}  # "name@version" -> that version as created
        self.epoch = 0  # bumped by a change that reassigns every user
        self.seq = 0  # the last log row applied

    def apply(self, row: dict[str, Any]) -> None:
        """Fold one stored change."""
        state, name = row["state"], row["variant"]
        old = self.variants.get(name)
        versions = (*old.versions, row["version"]) if old and row["change"] == "created" else None
        self.variants[name] = Variant(
            name=name,
            version=row["version"],
            kind=state["kind"],
            payload=state["payload"],
            parent=state["parent"],
            status=state["status"],
            weight=float(state["weight"]),
            control=bool(state["control"]),
            versions=versions or (old.versions if old else (row["version"],)),
            cap=float(state.get("cap", 1.0)),
            ramp_users=int(state.get("ramp_users", 0)),
            reason=state.get("reason"),
            metrics=state.get("metrics"),
        )
        if row["change"] == "created":
            self.created[f"{name}@{row['version']}"] = self.variants[name]
        if row["change"] == "promoted":  # the old control stops: its users get the new one
            for other in list(self.variants.values()):
                if other.control and other.name != name:
                    self.variants[other.name] = replace(other, control=False, status="stopped")
        if row["change"] == "reassigned":
            self.epoch += 1
        self.seq = row["seq"]

    # -- reads --------------------------------------------------------------------------------

    def get(self, name: str) -> Variant:
        found = self.variants.get(name)
        if found is None:
            known = ", ".join(self.variants) or "none yet"
            raise VariantError(
                f"experiment {self.spec.name!r} has no variant {name!r} (variants: {known})", NOT_FOUND
            )
        return found

    def own_learner(self, label: str | None) -> dict[str, float] | None:
        """The constants of the learner variant version a suggestion's stored label names,
        when it has its own (None: it shares the experiment's learner)."""
        found = self.created.get(label or "")
        if found is None or found.kind != "learner" or not found.payload.get("priors"):
            return None
        return dict(found.payload["priors"])

    def running(self) -> list[Variant]:
        return [v for v in self.variants.values() if v.status == "running"]

    def control(self) -> Variant | None:
        """The variant marked control, else the first created (None without variants)."""
        marked = [v for v in self.variants.values() if v.control]
        return marked[0] if marked else next(iter(self.variants.values()), None)

    # -- changes, checked against the current state ---------------------------------------------

    def create(self, new: VariantSpec) -> tuple[Variant, str]:
        """The variant after creating `new`, and the change's name; raises when refused."""
        old = self.variants.get(new.name)
        if old is None and len(self.variants) >= MAX_VARIANTS:
            raise VariantError(
                f"experiment {self.spec.name!r} has {MAX_VARIANTS} variants, the most it may have; "
                "create a new version of one instead"
            )
        if old is not None and len(old.versions) >= MAX_VERSIONS:
            raise VariantError(f"variant {new.name!r} has {MAX_VERSIONS} versions, the most it may have")
        _check_payload(self.spec, new, self.constants)
        if old is not None:
            if parse_version(new.version) <= parse_version(old.version):
                raise VariantError(
                    f"variant {new.name!r} is at version {old.version} already; a new version must be "
                    f"higher (e.g. {_bump(old.version)})",
                    CONFLICT,
                )
            if new.kind != old.kind:
                raise VariantError(
                    f"variant {new.name!r} is a {old.kind} variant; a new version cannot be a {new.kind}"
                )
        if new.control:
            holder = next((v for v in self.variants.values() if v.control and v.name != new.name), None)
            if holder is not None:
                raise VariantError(
                    f"variant {holder.name!r} is the control already; an experiment has one control", CONFLICT
                )
        if new.parent is not None:
            self._check_parent(new.parent)
        parent = new.parent or (f"{old.name}@{old.version}" if old else None)
        control = new.control or (old.control if old else False)
        ramp = self.spec.ab.guardrails.ramp
        variant = Variant(
            new.name, new.version, new.kind, new.payload, parent, new.status, new.weight, control,
            (*old.versions, new.version) if old else (new.version,),
            cap=ramp[0] if ramp and not control else 1.0,  # a new version ramps up again
            reason=new.reason,
        )  # fmt: skip
        self._check_weights({**self.variants, new.name: variant})
        return variant, "created"

    def patch(self, name: str, change: VariantPatch) -> tuple[Variant, str]:
        old = self.get(name)
        variant = replace(
            old,
            weight=old.weight if change.weight is None else change.weight,
            status=old.status if change.status is None else change.status,
        )
        if variant == old and not change.reassign:
            raise VariantError("the change names nothing to change; send weight, status or reassign")
        self._check_weights({**self.variants, name: variant})
        return variant, "reassigned" if change.reassign else "updated"

    def promote(self, name: str) -> tuple[Variant, str]:
        """The variant as the control (the old control stops)."""
        old = self.get(name)
        if old.control:
            raise VariantError(f"variant {name!r} is the control already", CONFLICT)
        if old.status != "running":
            raise VariantError(
                f"variant {name!r} is {old.status}; only a running variant is promoted", CONFLICT
            )
        return replace(old, control=True, cap=1.0), "promoted"

    def rollback(self, name: str) -> tuple[Variant, str]:
        """The variant stopped: its users are served the control."""
        old = self.get(name)
        if old.control:
            raise VariantError(f"variant {name!r} is the control; promote another variant instead", CONFLICT)
        if old.status == "stopped":
            raise VariantError(f"variant {name!r} is stopped already", CONFLICT)
        return replace(old, status="stopped"), "rolled_back"

    def ramp(self, name: str, rated: int) -> tuple[Variant, str]:
        """The variant at its ramp's next step; `rated`: its rated users now."""
        old = self.get(name)
        steps = self.spec.ab.guardrails.ramp or [1.0]
        cap = next((x for x in steps if x > old.cap), 1.0)
        return replace(old, cap=cap, ramp_users=rated), "ramped"

    def _check_parent(self, parent: str) -> None:
        name, _, version = parent.partition("@")
        found = self.variants.get(name)
        if found is None or version not in found.versions:
            raise VariantError(
                f"parent {parent!r} is not a variant version of {self.spec.name!r}; name one as name@1.0.0"
            )

    @staticmethod
    def _check_weights(variants: dict[str, Variant]) -> None:
        running = [v for v in variants.values() if v.status == "running"]
        if running and not sum(v.weight for v in running) > 0:
            raise VariantError(
                f"the running variants' weights sum to 0 ({', '.join(v.name for v in running)}); "
                "give one a positive weight"
            )


def _bump(version: str) -> str:
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + 1}"


def _check_payload(spec: ExperimentSpec, new: VariantSpec, constants: frozenset[str]) -> None:
    """A params variant's params (and its per-context presets) must be the space's, in
    bounds; a learner's priors known."""
    if new.kind == "params":
        params = new.payload.get("params")
        if not isinstance(params, dict) or not params:
            raise VariantError("a params variant needs payload.params, e.g. {'params': {'steps': 20}}")
        _check_params(spec, params, "payload.params")
        contexts = new.payload.get("contexts", {})
        if not isinstance(contexts, dict):
            raise VariantError("payload.contexts must map context labels to params")
        for label, preset in contexts.items():
            if not isinstance(preset, dict) or not preset:
                raise VariantError(f"payload.contexts[{label!r}] must be params, e.g. {{'steps': 20}}")
            _check_params(spec, preset, f"payload.contexts[{label!r}]")
    if new.kind == "learner":
        check_priors(new.payload.get("priors", {}), constants, "payload.priors")


def _check_params(spec: ExperimentSpec, params: dict[str, Any], where: str) -> None:
    space = spec.search_space()
    unknown = sorted(set(params) - set(space.params))
    if unknown:
        raise VariantError(f"{where} names {unknown}, not parameters of {spec.name!r}: {list(space.params)}")
    full = {**space.from_unit([0.5] * len(space.free)), **space.fixed, **params}
    bad = [n for n in params if not space.contains({**full, n: params[n]})]
    if bad or not all(_finite(v) for v in params.values()):
        raise VariantError(
            f"{where} { ({n: params[n] for n in bad}) } are outside the space's bounds or choices"
        )


def check_priors(priors: Any, constants: frozenset[str], where: str = "priors") -> dict[str, float]:
    """Learner constants as a learner variant or a model version may set them."""
    if not isinstance(priors, dict):
        raise VariantError(f"{where} must be a mapping of learner constants")
    unknown = sorted(set(priors) - constants)
    valid = all(isinstance(v, int | float) and not isinstance(v, bool) and _finite(v) and v > 0
                for v in priors.values())  # fmt: skip
    if unknown or not valid:
        raise VariantError(f"{where} {priors} must set positive numbers among {sorted(constants)}")
    return {k: float(v) for k, v in priors.items()}


def _finite(v: Any) -> bool:
    return not isinstance(v, float) or math.isfinite(v)
