"""A/B tests over HTTP through two replicas: variants, their admin rules and bad input,
sticky assignment whichever replica answers, and simulated users whose true preference
`/abtest` must find."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from engine.cli import main as frontier
from engine.client import FrontierClient, FrontierHTTPError
from tests.integration.conftest import ADMIN_TOKEN, Served
from tests.unit.test_readme import python_blocks

NAME = "ab-e2e"


def status_of(call: Any) -> int:
    try:
        call()
    except FrontierHTTPError as e:
        return e.status
    return 200


def test_variants_assignment_and_abtest_over_http(served: Served) -> None:
    admin = FrontierClient(served.base, admin_token=ADMIN_TOKEN)
    anyone = FrontierClient(served.base)
    spec = yaml.safe_load(Path("configs/genai.yaml").read_text())
    admin.create_experiment({**spec, "name": NAME, "ab": {"sync_s": 0.0, "min_users": 20}})

    control = {"name": "control", "control": True, "payload": {"template": "a photo of {subject}"}}
    assert status_of(lambda: anyone.create_variant(NAME, control)) == 401
    assert admin.create_variant(NAME, control)["control"]
    vivid = {"name": "vivid", "payload": {"template": "a vivid, saturated photo of {subject}"}}
    assert admin.create_variant(NAME, vivid)["version"] == "1.0.0"

    # bad input: a clear error, and nothing changes
    before = admin.variants(NAME)
    assert status_of(lambda: admin.create_variant(NAME, {"name": "other", "control": True})) == 409
    assert status_of(lambda: admin.create_variant(NAME, {"name": "neg", "weight": -1})) == 422
    assert status_of(lambda: admin.patch_variant(NAME, "nope", {"weight": 1.0})) == 404
    for name in ("control", "vivid"):  # both at 0 would leave nothing to split
        admin.patch_variant(NAME, name, {"weight": 0.5})
    assert status_of(lambda: admin.patch_variant(NAME, "vivid", {"weight": -0.5})) == 422
    admin.patch_variant(NAME, "vivid", {"weight": 0.0})
    assert status_of(lambda: admin.patch_variant(NAME, "control", {"weight": 0.0})) == 422
    admin.patch_variant(NAME, "vivid", {"weight": 0.5})
    assert [v["name"] for v in admin.variants(NAME)] == [v["name"] for v in before]
    assert status_of(lambda: anyone.patch_variant(NAME, "vivid", {"weight": 9.0})) == 401

    # users with a known preference: vivid is a star better; each user rates twice, and
    # their second request goes to any replica (no session header): the same variant
    rng = np.random.default_rng(13)
    seen: dict[str, str] = {}
    for i in range(240):
        user = f"user-{i}"
        for turn in range(2):
            if turn == 0:
                s = anyone.suggest(NAME, user)
            else:
                r = requests.post(
                    f"{served.base}/v1/experiments/{NAME}/suggest", json={"user_id": user}, timeout=30
                )
                s = r.json()
            seen.setdefault(user, s["variant"])
            assert s["variant"] == seen[user] and s["variant_version"] == "1.0.0"
            assert s["payload"]["template"].startswith("a vivid" if s["variant"] == "vivid" else "a photo")
            truth = 4.0 if s["variant"] == "vivid" else 3.0
            rating = int(np.clip(round(truth + rng.normal(0, 0.8)), 1, 5))
            anyone.feedback(NAME, s["suggestion_id"], rating=rating)
    too_long = {"suggestion_id": s["suggestion_id"], "rating": 3, "comment": "x" * 1001}
    r = requests.post(f"{served.base}/v1/experiments/{NAME}/feedback", json=too_long, timeout=30)
    assert r.status_code == 422 and "comment" in r.text
    assert anyone.feedback(NAME, s["suggestion_id"], rating=3, comment="a bit too dark") == "recorded"
    split = sum(v == "vivid" for v in seen.values())
    assert 80 < split < 160  # 1:1 weights

    report = anyone.abtest(NAME)
    rows = {r["name"]: r for r in report["variants"]}
    assert rows["vivid"]["users"] == split and rows["control"]["users"] == 240 - split
    assert rows["vivid"]["samples"] + rows["control"]["samples"] == 2 * 240 + 1
    assert rows[seen["user-239"]]["issues"] == {"too dark": 1}
    assert not report["srm"]["mismatch"]
    lift = rows["vivid"]["vs_control"]
    assert lift["sequential_ci"][0] > 0 and lift["prob_beat_control"] > 0.99
    assert report["recommendation"]["action"] == "ship" and report["recommendation"]["variant"] == "vivid"

    # the CLI prints the same report through the same client
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert frontier(["ab", NAME, "--url", served.base]) == 0
    assert "recommendation: ship vivid" in out.getvalue()

    # promotion by hand: admin only, bad input changes nothing, the event answers
    before = anyone.history(NAME)
    wrong = FrontierClient(served.base, admin_token="wrong")
    assert status_of(lambda: anyone.decide(NAME, "vivid", "promote")) == 401
    assert status_of(lambda: wrong.decide(NAME, "vivid", "promote")) == 403
    assert status_of(lambda: admin.decide(NAME, "nope", "promote")) == 404
    assert status_of(lambda: admin.decide(NAME, "control", "promote")) == 409  # the control already
    assert status_of(lambda: admin.decide(NAME, "vivid", "launch")) == 422
    assert anyone.history(NAME) == before
    event = admin.decide(NAME, "vivid", "promote")
    assert event["change"] == "promoted" and event["state"]["decision"]["vs_control"]["lift"] > 0
    assert anyone.history(NAME)[-1] == event and anyone.abtest(NAME)["decisions"] == [event]
    assert {v["name"]: v["control"] for v in anyone.variants(NAME)} == {"control": False, "vivid": True}


def test_the_readme_walkthrough_runs_as_pasted(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [b for b in python_blocks() if "create_variant(" in b]
    assert '"http://127.0.0.1:8000"' in example
    monkeypatch.setenv("FRONTIER_ADMIN_TOKEN", ADMIN_TOKEN)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(
            compile(example.replace('"http://127.0.0.1:8000"', repr(served.base)), "README.md", "exec"),
            namespace,
        )
    report: Any = namespace["report"]
    assert report["recommendation"]["action"] == "ship" and report["recommendation"]["variant"] == "vivid"
    assert "'action': 'ship'" in out.getvalue()
