"""One experiment's A/B state over the store: its variants, who is assigned what, and
what they reported. A cache like every online state: rebuilt by reading the store.

A user's assignment is written once, unique on (experiment, layer, epoch, user): the
first write wins, and every replica, before or after a restart, reads that one. A new
user's variant comes from the allocation in force (`engine.experiments.allocation`),
computed from what this replica read of the store at its last sync, at most `ab.sync_s`
ago: replicas agree within a sync interval, and a fixed split, drawn from a salted hash,
needs no agreement at all. A change that reassigns bumps the epoch, and users are drawn
again; other changes (weights, status) leave assigned users where they are. A user whose
variant is paused or stopped is served the control meanwhile, and what they report then
is not counted for either.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from engine.experiments.allocation import pick, shares, unit_hash
from engine.experiments.analysis import Member, analyse, arm_summaries
from engine.experiments.variants import Variant, VariantBook, VariantError, VariantPatch, VariantSpec
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["DEFAULT_VARIANT", "ABTest", "Assignment", "served_name"]

DEFAULT_VARIANT = "default"  # what a suggestion carries in an experiment without variants


def served_name(stored: str | None) -> str:
    """The variant's name in a suggestion's stored `name@version`."""
    return (stored or DEFAULT_VARIANT).rpartition("@")[0] or (stored or DEFAULT_VARIANT)


@dataclass(frozen=True)
class Assignment:
    """What a user is served, and the arm they are counted in (None: not enrolled)."""

    variant: Variant | None  # None: no variant applies (the experiment's default)
    arm: str | None
    holdout: bool = False

    def label(self) -> str:
        """What the suggestion stores: `name@version`, or `default`."""
        return f"{self.variant.name}@{self.variant.version}" if self.variant else DEFAULT_VARIANT


@dataclass
class _Assigned:
    variant: str
    holdout: bool
    shares: dict[str, float]
    at: float


class ABTest:
    def __init__(
        self, store: EventStore, spec: ExperimentSpec, constants: frozenset[str] = frozenset()
    ) -> None:
        self.store = store
        self.spec = spec
        self.book = VariantBook(spec, constants)
        self.assigned: dict[str, _Assigned] = {}  # this epoch's
        self.reports: dict[str, list[tuple[float, str, float | None, dict[str, Any] | None]]] = {}
        self.assignments_seq = 0
        self.outcomes_seq = 0
        self.synced_at = -float("inf")
        self.shares: dict[str, float] = {}

    # -- reading the store ---------------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Read what the store holds since the last read, if `ab.sync_s` has passed."""
        now = time.monotonic()
        if not force and now - self.synced_at < self.spec.ab.sync_s:
            return
        self.synced_at = now
        name = self.spec.name
        for row in self.store.since("variants", name, self.book.seq):
            epoch = self.book.epoch
            self.book.apply(row)
            if self.book.epoch != epoch:
                self.assigned.clear()
        for row in self.store.since("assignments", name, self.assignments_seq):
            self._remember(row)
            self.assignments_seq = row["seq"]
        for row in self.store.outcomes_since(name, self.outcomes_seq):
            report = (row["recorded_at"], served_name(row["variant"]), row["rating"], row["metrics"])
            self.reports.setdefault(row["user_id"], []).append(report)
            self.outcomes_seq = row["seq"]
        self._allocate()

    def _remember(self, row: dict[str, Any]) -> _Assigned:
        found = _Assigned(row["variant"], bool(row["holdout"]), dict(row["shares"]), row["recorded_at"])
        if row["epoch"] == self.book.epoch:
            self.assigned[row["user_id"]] = found
        return found

    def _allocate(self) -> None:
        running = {v.name: v.weight for v in self.book.running()}
        if not running:
            self.shares = {}
            return
        arms = arm_summaries(self.members(), list(running))
        ab = self.spec.ab
        self.shares = shares(ab.allocation, running, arms, ab.floor, seed=self.spec.seed)

    # -- assignment ------------------------------------------------------------------------------

    def assign(self, user_id: str) -> Assignment:
        """The user's variant: the stored one, or drawn now and stored (first write wins)."""
        self.sync()
        if not self.book.running():
            return Assignment(None, None)
        control = self.book.control()
        fallback = control if control is not None and control.status == "running" else None
        found = self.assigned.get(user_id)
        if found is None:
            ab = self.spec.ab
            low, high = ab.range
            if not low <= unit_hash(f"layer/{self.spec.layer()}", user_id) < high:
                return Assignment(fallback, None)  # another experiment of the layer has this user
            salt = self.spec.salt()
            holdout = unit_hash(f"{salt}/holdout", user_id) < ab.holdout
            if holdout and control is None:
                return Assignment(None, None, True)
            variant = (
                control.name
                if holdout and control
                else pick(self.shares, unit_hash(f"{salt}/{self.book.epoch}", user_id))
            )
            row = self.store.assign(
                experiment=self.spec.name, layer=self.spec.layer(), epoch=self.book.epoch, user_id=user_id,
                variant=variant, holdout=holdout, shares=self.shares,
            )  # fmt: skip
            found = self._remember(row)
        arm = self.book.variants[found.variant]
        if arm.status != "running":
            return Assignment(fallback, None, found.holdout)
        return Assignment(arm, found.variant, found.holdout)

    # -- variants --------------------------------------------------------------------------------

    def create(self, new: VariantSpec) -> Variant:
        """Store a new variant or version, checked against the current state first."""
        self.sync(force=True)
        variant, change = self.book.create(new)
        key = f"{self.spec.name}/{new.name}@{new.version}"
        if not self.store.add_variant(idempotency_key=key, **self._row(variant, change)):
            raise VariantError(f"variant {new.name!r} version {new.version} exists already", 409)
        self.sync(force=True)
        return self.book.get(new.name)

    def patch(self, name: str, change: VariantPatch) -> Variant:
        self.sync(force=True)
        variant, kind = self.book.patch(name, change)
        self.store.add_variant(idempotency_key=uuid.uuid4().hex, **self._row(variant, kind))
        self.sync(force=True)
        return self.book.get(name)

    def _row(self, variant: Variant, change: str) -> dict[str, Any]:
        return {
            "experiment": self.spec.name,
            "variant": variant.name,
            "version": variant.version,
            "change": change,
            "state": variant.state(),
        }

    # -- analysis --------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """This epoch's assigned users with what they reported while served their arm, and
        their ratings from before their assignment."""
        out = []
        for user_id, a in self.assigned.items():
            member = Member(a.variant, a.holdout, a.shares)
            for at, served, rating, metrics in self.reports.get(user_id, ()):
                if at < a.at:
                    if rating is not None:
                        member.pre.append(rating)
                elif served == a.variant:
                    if rating is not None:
                        member.outcomes.setdefault("rating", []).append(rating)
                    for k, v in (metrics or {}).items():
                        member.outcomes.setdefault(k, []).append(float(v))
            out.append(member)
        return out

    def report(self) -> dict[str, Any]:
        """What `/abtest` serves (engine.experiments.analysis)."""
        self.sync(force=True)
        variants = list(self.book.variants.values())
        control = self.book.control()
        if control is None:
            advice = {"action": "keep running", "reason": "no variants yet: create one (POST .../variants)"}
            return {"experiment": self.spec.name, "variants": [], "recommendation": advice}
        found = analyse(self.spec.ab, variants, control.name, self.members(), self.shares)
        return {"experiment": self.spec.name, "layer": self.spec.layer(), "epoch": self.book.epoch, **found}
