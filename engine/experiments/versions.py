"""Versions of an experiment's learned model, and which one serves: a fold of the `models` log.

A model version is what the learner is made of besides its data: its constants (the
priors, fitted or the defaults), the published exploration run it starts from, and the
store position (seq) of the last feedback it was fitted on. The base version `1.0.0`
(the defaults and the run published last) exists without being written; a retrain
derives the next minor version from the active one, an import the next major. Activating
a version is an event too: the learner is rebuilt from that version's constants and goes
on learning every stored rating. Versions are never changed once written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.experiments.variants import VariantError, parse_version

__all__ = ["BASE_VERSION", "ModelBook", "ModelVersion", "VersionStatus"]

BASE_VERSION = "1.0.0"
MAX_VERSIONS = 1024  # versions kept per experiment (a daily retrain for almost three years)
VersionStatus = Literal["active", "draft", "retired"]


@dataclass(frozen=True)
class ModelVersion:
    """One model version as written; its status follows from the activations after it."""

    version: str
    parent: str | None
    reason: str
    priors: dict[str, float]  # the learner's constants that differ from the defaults
    front_run: str | None  # the published exploration run it starts from (None: none)
    fitted_seq: int  # the last feedback seq its fit read (0: fitted on nothing)
    metrics: dict[str, Any] = field(default_factory=dict)  # at creation (held-out scores)
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ModelVersion:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in state.items() if k in known})


class ModelBook:
    """The `models` rows of one experiment, folded in seq order."""

    def __init__(self, base_run: str | None = None) -> None:
        self.base = ModelVersion(BASE_VERSION, None, "the defaults", {}, base_run, 0)
        self.versions: dict[str, ModelVersion] = {BASE_VERSION: self.base}
        self.active = BASE_VERSION
        self.activated: set[str] = {BASE_VERSION}  # ever served
        self.events: list[dict[str, Any]] = []
        self.seq = 0

    def apply(self, row: dict[str, Any]) -> None:
        if row["change"] == "created":
            self.versions[row["version"]] = ModelVersion.from_dict(row["state"])
        elif row["change"] == "activated":
            self.active = row["version"]
            self.activated.add(row["version"])
        head = {"seq": row["seq"], "version": row["version"], "change": row["change"]}
        self.events.append({**head, "at": row["recorded_at"], **row["state"]})
        self.seq = row["seq"]

    def status(self, version: str) -> VersionStatus:
        if version == self.active:
            return "active"
        return "retired" if version in self.activated else "draft"

    def get(self, version: str) -> ModelVersion:
        parse_version(version)
        found = self.versions.get(version)
        if found is None:
            raise VariantError(f"model version {version!r} does not exist; GET …/versions lists them", 404)
        return found

    def next_version(self, bump: Literal["major", "minor"]) -> str:
        """The next free version: a retrain bumps the active version's minor, past any taken."""
        if len(self.versions) >= MAX_VERSIONS:
            full = f"{MAX_VERSIONS} model versions exist; export one and start a new experiment"
            raise VariantError(full, 409)
        taken = [parse_version(v) for v in self.versions]
        if bump == "major":
            return f"{max(t[0] for t in taken) + 1}.0.0"
        major = parse_version(self.active)[0]
        return f"{major}.{max(t[1] for t in taken if t[0] == major) + 1}.0"

    def listing(self) -> list[dict[str, Any]]:
        """Every version, oldest first, with its status."""
        return [{**v.to_dict(), "status": self.status(v.version)} for v in self.versions.values()]
