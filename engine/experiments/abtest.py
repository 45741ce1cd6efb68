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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.experiments.allocation import capped, pick, shares, unit_hash
from engine.experiments.analysis import Member, Tally, analyse, arm_summaries, guardrails
from engine.experiments.comments import tags
from engine.experiments.evolution import EVOLVED, preset, recombine
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
class _User:
    """What this replica read of one user: their assignment in this epoch, and tallies of
    what they reported (O(users) memory, not O(ratings))."""

    assigned: str | None = None
    holdout: bool = False
    at: float = 0.0  # when the assignment was written
    member: Member | None = None  # their tallies since the assignment
    before: Tally = field(default_factory=Tally)  # ratings before any assignment of this epoch


class ABTest:
    def __init__(
        self,
        store: EventStore,
        spec: ExperimentSpec,
        constants: frozenset[str] = frozenset(),
        presets: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        """`presets`: the learner's best settings per context now (evolution's parameter
        presets; the online layer provides it)."""
        self.store = store
        self.spec = spec
        self.presets = presets
        self.rated: Counter[str] = Counter()  # ratings per variant served, since the start
        self.book = VariantBook(spec, constants)
        self.users: dict[str, _User] = {}
        self.expected: dict[str, float] = {}  # per variant, the sum of its assigned users' chances
        self.issues: dict[str, Counter[str]] = {}  # per variant served, the issues comments named
        self.assignments_seq = 0
        self.outcomes_seq = 0
        self.synced_at = -float("inf")
        self.shares: dict[str, float] = {}

    # -- reading the store ---------------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Read what the store holds since the last read, if `ab.sync_s` has passed.

        Outcomes are read before assignments: a feedback row's assignment was written
        before its suggestion, so every assignment a row read here depends on is visible
        to the assignments read after it, and applied first."""
        now = time.monotonic()
        if not force and now - self.synced_at < self.spec.ab.sync_s:
            return
        self.synced_at = now
        name = self.spec.name
        self._read_variants()
        if not self.book.variants:  # nothing to compare yet: the first variant reads it all
            return
        outcomes = self.store.feedback_since(name, self.outcomes_seq)
        for row in self.store.since("assignments", name, self.assignments_seq):
            self._remember(row)
            self.assignments_seq = row["seq"]
        for row in outcomes:
            self._tally(row)
            self.outcomes_seq = row["seq"]
        self._allocate()
        g = self.spec.ab.guardrails
        if g.auto or g.ramp or g.metrics:
            self._guard()
        if self.spec.ab.evolution.enabled:
            self.evolve()

    def _read_variants(self) -> None:
        for row in self.store.since("variants", self.spec.name, self.book.seq):
            epoch = self.book.epoch
            self.book.apply(row)
            if self.book.epoch != epoch:
                self._new_epoch()

    def _guard(self) -> None:
        """Do what the guardrails decide (promote, roll back, ramp up), once, on whichever
        replica sees it first."""
        control = self.book.control()
        if control is None:
            return
        variants = list(self.book.variants.values())
        found = guardrails(
            self.spec.ab, variants, control.name, self.members(), self.expected, self._directions()
        )
        for name, verdict in found.items():
            action = verdict["action"]
            if action is None:
                continue
            if action == "ramp":
                variant, change = self.book.ramp(name, verdict["rated"])
            else:
                variant, change = (self.book.promote if action == "promote" else self.book.rollback)(name)
            # keyed by the state it was made in: replicas that read the same log write it once
            key = f"{self.spec.name}/{variant.name}/{change}/after/{self.book.seq}"
            self.store.add_event(
                "variants", idempotency_key=key, **self._row(variant, change, {"by": "guardrails", **verdict})
            )
            self._read_variants()
            self._allocate()  # new users follow the decision at once
            return  # one decision at a time: the next is judged against the new state

    def evolve(self, force: bool = False) -> Variant | None:
        """A candidate once the variants got `every` more ratings since the last one (or now,
        with `force`: a scheduled run), while fewer than `max_live` run
        (engine.experiments.evolution); replicas that decide at once create it once (its
        key names its generation). Returns the candidate made, if any."""
        evo = self.spec.ab.evolution
        running = self.book.running()
        evolved = [v for v in self.book.variants.values() if v.name.startswith(EVOLVED)]
        if not running or sum(v.status == "running" for v in evolved) >= evo.max_live:
            return None
        total = sum(self.rated.values())
        last = max((int(v.payload.get("evolution", {}).get("after_ratings", 0)) for v in evolved), default=0)
        if total - last < evo.every and not force:
            return None
        means = arm_summaries(self.members(), [v.name for v in running])
        ranked = sorted(running, key=lambda v: -means[v.name].mean if means[v.name].n else 0.0)
        generation = len(evolved) + 1
        name, meta = f"{EVOLVED}{generation}", {"generation": generation, "after_ratings": total}
        kinds = (
            evo.kinds[(generation - 1) % len(evo.kinds) :] + evo.kinds[: (generation - 1) % len(evo.kinds)]
        )
        for kind in kinds:
            if kind == "prompt":
                issues = self.issues.get(ranked[0].name, Counter())
                new = recombine(ranked, issues, name, meta, evo.weight)
            else:
                new = preset(ranked[0], self.presets() if self.presets else {}, name, meta, evo.weight)
            if new is not None:
                break
        else:
            return None
        try:
            variant, change = self.book.create(new)
        except VariantError:  # a bound reached (variants, payload): nothing to add
            return None
        variant = self._with_metrics(variant)
        self.store.add_event("variants", idempotency_key=f"{self.spec.name}/{name}@{new.version}",
                             **self._row(variant, change))  # fmt: skip
        self._read_variants()
        self._allocate()
        return self.book.variants.get(name)

    def _with_metrics(self, variant: Variant) -> Variant:
        """The variant with its parent's and the control's statistics of the moment (the
        report's rows: users, mean rating with its interval, lift against the control)."""
        if not self.book.variants:
            return variant
        rows = {r["name"]: r for r in self._analyse()["variants"]}
        keep = ("version", "users", "rated_users", "samples", "mean_rating", "ci", "vs_control")
        control = self.book.control()
        named = {"parent": served_name(variant.parent) if variant.parent else None,
                 "control": control.name if control else None}  # fmt: skip
        found = {k: {f: rows[n].get(f) for f in keep} for k, n in named.items() if n in rows}
        return replace(variant, metrics=found or None)

    def _new_epoch(self) -> None:
        """Everyone is drawn again: all they reported so far is from before that."""
        for user in self.users.values():
            if user.member is not None:
                user.before.merge(user.member.pre)
                if "rating" in user.member.outcomes:
                    user.before.merge(user.member.outcomes["rating"])
            user.assigned, user.member = None, None
        self.expected.clear()

    def _remember(self, row: dict[str, Any]) -> _User:
        user = self.users.setdefault(row["user_id"], _User())
        if row["epoch"] != self.book.epoch or user.assigned is not None:
            return user
        user.assigned, user.holdout, user.at = row["variant"], bool(row["holdout"]), row["recorded_at"]
        user.member = Member(row["variant"], user.holdout, pre=user.before)
        user.before = Tally()
        if not user.holdout:
            total = sum(row["shares"].values())
            for variant, share in row["shares"].items():
                self.expected[variant] = self.expected.get(variant, 0.0) + share / total
        return user

    def _tally(self, row: dict[str, Any]) -> None:
        """Attribute one feedback row: before the user's assignment (CUPED's covariate), to
        their arm while it served them, or to nothing (they were served the control while
        their variant was paused)."""
        if row["comment"]:
            self.issues.setdefault(served_name(row["variant"]), Counter()).update(tags(row["comment"]))
        if row["rating"] is not None and row["variant"]:
            self.rated[served_name(row["variant"])] += 1
        user = self.users.setdefault(row["user_id"], _User())
        member = user.member
        if member is None or row["recorded_at"] < user.at:
            if row["rating"] is not None:
                (member.pre if member is not None else user.before).add(row["rating"])
            return
        if served_name(row["variant"]) != user.assigned:
            return
        values = dict(row["metrics"] or {})
        if row["rating"] is not None:
            values["rating"] = row["rating"]
        for metric, value in values.items():
            member.outcomes.setdefault(metric, Tally()).add(float(value))

    def _allocate(self) -> None:
        running = {v.name: v.weight for v in self.book.running()}
        if not running:
            self.shares = {}
            return
        arms = arm_summaries(self.members(), list(running))
        ab = self.spec.ab
        found = shares(ab.allocation, running, arms, ab.floor, seed=self.spec.seed)
        caps = {v.name: v.cap for v in self.book.running() if v.cap < 1}
        self.shares = capped(found, caps) if caps else found

    # -- assignment ------------------------------------------------------------------------------

    def current(self, user_id: str) -> Assignment:
        """What the user is served as far as this replica has read, drawing nothing."""
        found = self.users.get(user_id)
        fallback = self._fallback()
        if found is None or found.assigned is None or not self.book.running():
            return Assignment(fallback if self.book.running() else None, None)
        arm = self.book.variants[found.assigned]
        if arm.status != "running":
            return Assignment(fallback, None, found.holdout)
        return Assignment(arm, found.assigned, found.holdout)

    def _fallback(self) -> Variant | None:
        control = self.book.control()
        return control if control is not None and control.status == "running" else None

    def assign(self, user_id: str) -> Assignment:
        """The user's variant: the stored one, or drawn now and stored (first write wins)."""
        self.sync()
        if not self.book.running():
            return Assignment(None, None)
        control = self.book.control()
        fallback = self._fallback()
        found = self.users.get(user_id)
        if found is None or found.assigned is None:
            ab = self.spec.ab
            low, high = ab.range
            if not low <= unit_hash(f"layer/{self.spec.layer()}", user_id) < high:
                return Assignment(fallback, None)  # another experiment of the layer has this user
            salt = self.spec.salt()
            holdout = unit_hash(f"{salt}/holdout", user_id) < ab.holdout
            variant = (
                control.name
                if holdout and control
                else pick(self.shares, unit_hash(f"{salt}/{self.book.epoch}", user_id))
            )
            row = self.store.assign(
                experiment=self.spec.name, layer=self.spec.layer(), epoch=self.book.epoch, user_id=user_id,
                variant=variant, holdout=holdout, shares=self.shares,
            )  # fmt: skip
            self._remember(row)
        return self.current(user_id)

    # -- variants --------------------------------------------------------------------------------

    def create(self, new: VariantSpec) -> Variant:
        """Store a new variant or version, checked against the current state first."""
        self.sync(force=True)
        variant, change = self.book.create(new)
        variant = self._with_metrics(variant)
        key = f"{self.spec.name}/{new.name}@{new.version}"
        if not self.store.add_event("variants", idempotency_key=key, **self._row(variant, change)):
            raise VariantError(f"variant {new.name!r} version {new.version} exists already", 409)
        self.sync(force=True)
        return self.book.get(new.name)

    def decide(self, name: str, action: str) -> dict[str, Any]:
        """Promote or roll back by hand (admin); returns the event recorded, with the
        statistics of the moment."""
        self.sync(force=True)
        variant, change = self.book.promote(name) if action == "promote" else self.book.rollback(name)
        report = self._analyse()
        row: dict[str, Any] = next((r for r in report.get("variants", []) if r["name"] == name), {})
        evidence = {"by": "admin", "vs_control": row.get("vs_control"), "mean_rating": row.get("mean_rating")}
        self.store.add_event(
            "variants", idempotency_key=uuid.uuid4().hex, **self._row(variant, change, evidence)
        )
        self._read_variants()
        return self.history()[-1]

    def history(self) -> list[dict[str, Any]]:
        """Every change of every variant, oldest first, as stored."""
        rows = self.store.since("variants", self.spec.name, 0)
        keep = ("seq", "variant", "version", "change", "state", "recorded_at")
        return [{k: r[k] for k in keep} for r in rows]

    def patch(self, name: str, change: VariantPatch) -> Variant:
        self.sync(force=True)
        variant, kind = self.book.patch(name, change)
        self.store.add_event("variants", idempotency_key=uuid.uuid4().hex, **self._row(variant, kind))
        self.sync(force=True)
        return self.book.get(name)

    def _row(self, variant: Variant, change: str, evidence: dict[str, Any] | None = None) -> dict[str, Any]:
        state = variant.state() if evidence is None else {**variant.state(), "decision": evidence}
        return {
            "experiment": self.spec.name,
            "variant": variant.name,
            "version": variant.version,
            "change": change,
            "state": state,
        }

    # -- analysis --------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """This epoch's assigned users with their tallies."""
        return [u.member for u in self.users.values() if u.member is not None]

    def report(self) -> dict[str, Any]:
        """What `/abtest` serves (engine.experiments.analysis), with the decisions made."""
        self.sync(force=True)
        found = self._analyse()
        for row in found["variants"]:  # what users' comments name, most often first
            row["issues"] = dict(self.issues.get(row["name"], Counter()).most_common())
        decisions = [r for r in self.history() if r["change"] in ("promoted", "rolled_back")]
        return {**found, "decisions": decisions}

    def _directions(self) -> dict[str, str]:
        return {m.name: m.direction for m in self.spec.metrics}

    def _analyse(self) -> dict[str, Any]:
        variants = list(self.book.variants.values())
        control = self.book.control()
        if control is None:
            advice = {"action": "keep running", "reason": "no variants yet: create one (POST .../variants)"}
            return {"experiment": self.spec.name, "variants": [], "recommendation": advice}
        directions = self._directions()
        members = self.members()
        found = analyse(self.spec.ab, variants, control.name, members, self.shares, self.expected, directions)
        return {"experiment": self.spec.name, "layer": self.spec.layer(), "epoch": self.book.epoch, **found}
