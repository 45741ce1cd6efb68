"""`frontier refine-profile`: a user who likes one provider and high guidance, among users who
rate at random; their profile moves to what they rate well, step by step, with reasons."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main as frontier
from engine.online import Feedback, OnlineEngine
from engine.online.protocol import UnknownUser
from engine.spec import load_spec
from engine.store import EventStore

SPEC = load_spec("configs/genai.yaml")


def taste(params: dict[str, object], likes: str, rng: np.random.Generator) -> int:
    guidance = (float(params["guidance_scale"]) - 5) / 7  # type: ignore[arg-type]
    truth = 1 + 2 * (params["provider"] == likes) + 2 * guidance
    return int(np.clip(round(truth + rng.normal(0, 0.3)), 1, 5))


def cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert frontier(list(args)) == 0
    return out.getvalue()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_profile_moves_to_what_the_user_rates_well(tmp_path: Path, seed: int) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = OnlineEngine(EventStore(url))
    engine.register(SPEC)
    rng = np.random.default_rng(seed)
    for _ in range(12):
        for i in range(4):  # the others rate at random: the population holds no taste
            s = engine.suggest("genai", f"other-{i}", "portrait")
            engine.feedback(s.suggestion_id, Feedback(rating=int(rng.integers(1, 6))))
        s = engine.suggest("genai", "ada", "portrait")
        engine.feedback(s.suggestion_id, Feedback(rating=taste(s.params, "leonardo", rng)))
    s = engine.suggest("genai", "ada", "portrait")
    engine.feedback(s.suggestion_id, Feedback(signal="like"))

    found = json.loads(cli("refine-profile", "genai", "ada", "--json", "--store", url))
    steps = found["steps"]
    assert len(steps) == 13 and [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
    assert steps[-1]["feedback"] == {"signal": "like"}
    final = steps[-1]["preferred"]
    assert final["provider"] == "leonardo" and steps[-1]["expected_reward"] > 0.5  # 0.6-1.1 measured
    assert final == engine.profile("genai", "ada")["contexts"]["portrait"]["preferred"]  # as profile says
    for step in steps:  # each reason names the parameter that moved most, or says none moved
        moved = step["moves"]
        if moved:
            assert max(moved, key=moved.__getitem__) in step["why"]
        else:
            assert "stay" in step["why"]

    text = cli("refine-profile", "genai", "ada", "--store", url)
    assert text.count("\n  #") == 13 and "provider=leonardo\n" in text.split("now preferred in portrait:")[1]
    with pytest.raises(UnknownUser):
        engine.refine_profile("genai", "nobody")
