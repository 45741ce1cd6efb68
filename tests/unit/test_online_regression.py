"""The online model's suggestions are a pure function of the seed and the stored events.

A fixed seeded run (users rating, signalling, measuring, changing their preferences, in
labelled and feature contexts, with few context models held so some are rebuilt, and a
second engine replaying the same store) is compared with what is recorded in
`data/online_regression.json`: the params of its 336 suggestions, and every user's
profile (recommended settings, expected reward, confidence, calibration) as the engine
that learnt it online and the replica that replayed it see them. A refactoring of the
online model must leave all of it unchanged: names and choices exactly, numbers to 1e-9
relative (BLAS and libm round the last bits differently between CPUs: a machine of
2026-12-07 changed 146 of the profiles' numbers in their 16th digit); a change to the model
itself re-records it (`python -m tests.unit.test_online_regression --record`) and says
why in its commit.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from engine.online.rewards import Feedback
from engine.online.service import OnlineEngine
from engine.spec import load_spec
from engine.store import EventStore
from objectives.users import population

FIXTURE = Path(__file__).parent / "data" / "online_regression.json"
USERS, ROUNDS = 12, 25
LABELS = ("portrait", "landscape")
FEATURES = ([0.2, 0.4, 0.6, 800.0, 600.0], [0.9, 0.1, 0.3, 1024.0, 1024.0])


def run(db: Path) -> dict[str, list[Any]]:
    """Every suggestion's params, in the order they were made, and the users' profiles."""
    spec = load_spec("configs/genai.yaml")
    url = f"sqlite:///{db}"
    engine = OnlineEngine(EventStore(url), lease_s=1e9, grace_s=1e9, seed=3, max_context_models=2)
    engine.register(spec)
    people = population(USERS, seed=5)
    out: list[dict[str, Any]] = []
    now = 1_000.0
    for r in range(ROUNDS):
        for i, u in enumerate(people):
            now += 1.0
            where = (r + i) % 3
            label = LABELS[where] if where < 2 else "portrait"
            context: str | list[float] = LABELS[where] if where < 2 else FEATURES[i % 2]
            s = engine.suggest(spec.name, u.user_id, context, now=now)
            out.append(s.params)
            stars = u.rate(s.params, label)
            if i % 4 == 0:
                fb = Feedback.model_validate({"signal": u.signal(s.params, label)})
            elif i % 4 == 1:
                fb = Feedback(rating=stars, metrics={"speed": 3000.0 + 100 * stars, "cost": 0.01})
            elif i % 4 == 2:
                fb = Feedback(rating=stars, time_to_accept_s=float(r % 7), retries=i % 3)
            else:
                fb = Feedback(rating=stars)
            engine.feedback(s.suggestion_id, fb, f"k{r}", now=now)
        if r == 10:
            engine.set_preferences(spec.name, people[1].user_id, {"quality": 1.0, "speed": 0.5})
        if r % 5 == 4:
            engine.sync(ahead=True)
    replica = OnlineEngine(EventStore(url), lease_s=1e9, grace_s=1e9, seed=3, max_context_models=2)
    profiles = [e.profile(spec.name, u.user_id) for e in (engine, replica) for u in people]
    for u in people:
        for context in (*LABELS, FEATURES[0]):
            out.append(replica.suggest(spec.name, u.user_id, context, now=now + 1).params)
    return {"suggestions": out, "profiles": profiles}


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative, with the same keys and lengths."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def test_suggestions_and_profiles_match_the_recorded_run(tmp_path: Path) -> None:
    recorded = json.loads(FIXTURE.read_text())
    now = json.loads(json.dumps(run(tmp_path / "store.db")))  # as recorded: JSON floats round-trip
    for part in ("suggestions", "profiles"):
        assert len(now[part]) == len(recorded[part])
        changed = [
            i for i, (a, b) in enumerate(zip(now[part], recorded[part], strict=True)) if not same(a, b)
        ]
        assert not changed, f"{len(changed)} of {len(now[part])} {part} changed, first at #{changed[0]}"


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        FIXTURE.write_text(json.dumps(run(Path(tmp) / "store.db")) + "\n")
    print(f"recorded {FIXTURE}")
