"""Shard actors over the store: a killed shard loses no acknowledged feedback."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from engine.online import Feedback, OnlineEngine, UnknownSuggestion
from engine.ray import ShardRouter
from engine.routing import routing_key, shard_of
from engine.spec import load_spec
from engine.store import EventStore
from objectives.users import population

pytestmark = pytest.mark.usefixtures("ray_session")


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, so pytest.approx can compare every number."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}/{k}"))
    return out


def test_killed_shard_recovers_exactly_what_the_store_holds(store_url: str) -> None:
    router = ShardRouter(store_url, shards=2, lease_s=600, grace_s=600, max_users=100)
    assert router.register(load_spec("configs/genai.yaml"))
    users = population(6, seed=7)
    acked: list[tuple[str, str, int]] = []
    for round_ in range(5):
        for u in users:
            s = router.suggest("genai", u.user_id, "portrait")
            stars = u.rate(s.params, "portrait")
            shard = router.shards[shard_of(s.suggestion_id, 2)]
            call = shard.feedback.remote(s.suggestion_id, Feedback(rating=stars).model_dump(), "k")
            if round_ == 2:
                ray.kill(shard, no_restart=False)  # while the call is queued, running or done
            # Ray retries the call on the restarted actor: stored once, whichever happened
            assert ray.get(call).status in {"recorded", "duplicate"}
            acked.append((s.suggestion_id, "k", stars))

    stored = [(r["suggestion_id"], r["rating"]) for r in EventStore(store_url).events("feedback")]
    assert sorted(stored) == sorted((sid, float(stars)) for sid, _, stars in acked)
    # a client retrying after the crash: no-op
    sid, key, stars = acked[0]
    assert router.feedback(sid, Feedback(rating=stars), key).status == "duplicate"
    # each shard's state equals a state rebuilt from the store alone
    rebuilt = OnlineEngine(EventStore(store_url), lease_s=600, grace_s=600)
    for u in users:
        # equal up to BLAS rounding: actors and this process may use different thread counts
        assert flat(router.profile("genai", u.user_id)) == pytest.approx(
            flat(rebuilt.profile("genai", u.user_id))
        )
    assert {shard_of(routing_key("genai", u.user_id), 2) for u in users} == {0, 1}
    with pytest.raises(UnknownSuggestion):
        router.feedback("nope", Feedback(rating=3))


def test_simulate_writes_rounds_and_ratings_to_target(tmp_path: Any) -> None:
    from engine.sim.driver import simulate

    result = simulate(load_spec("configs/genai.yaml"), users=4, rounds=3, out_dir=tmp_path, progress=False)
    assert len(result.rounds) == 12 and set(result.rounds["round"]) == {1, 2, 3}
    assert result.rounds["stars"].between(1, 5).all()
    # ratings to target: the first round whose recommendation scores >= 4.5 stars, else 4
    rounds = result.rounds.set_index("user_id")
    for user, needed in result.ratings_to_target.items():
        reached = rounds.loc[[user]].query("recommended_stars >= 4.5")["round"]
        assert needed == (reached.min() if len(reached) else 4)
    for name in ("simulation", "suggestions", "feedback"):
        assert (tmp_path / f"{name}.parquet").exists()
