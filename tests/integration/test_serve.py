"""The HTTP API on a local Ray Serve: every endpoint, every status code, the admin rules."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml
from pypdf import PdfReader

from engine.cli import main as frontier
from engine.client import SESSION_HEADER, FrontierClient
from engine.offline.explore import explore, run_local
from engine.offline.fronts import publish
from engine.report import feedback_summary
from engine.routing import routing_key
from engine.spec import load_spec, parse_spec
from engine.store import EventStore
from objectives.users import SPACE
from tests.integration.conftest import ADMIN_TOKEN, Served, drop_database, pg_database

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def post(url: str, body: Any, **kw: Any) -> requests.Response:
    """JSON as Python writes it: NaN and Infinity included, as careless clients send them."""
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return requests.post(url, data=json.dumps(body), headers=headers, timeout=30, **kw)


def suggest(served: Served, user: str, context: Any = "portrait") -> dict[str, Any]:
    """With the user's session header, as FrontierClient sends it: one replica holds them."""
    headers = {SESSION_HEADER: routing_key("genai", user)}
    r = post(
        f"{served.base}/v1/experiments/genai/suggest", {"user_id": user, "context": context}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def counts(served: Served) -> dict[str, int]:
    store = EventStore(served.store_url)
    return {t: len(list(store.events(t))) for t in ("experiments", "suggestions", "feedback")}


def test_health_and_experiments(served: Served) -> None:
    health = requests.get(f"{served.base}/healthz", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert "genai" in requests.get(f"{served.base}/v1/experiments", timeout=30).json()
    one = requests.get(f"{served.base}/v1/experiments/genai", timeout=30)
    assert one.status_code == 200
    assert one.json()["spec"] == load_spec("configs/genai.yaml").model_dump(mode="json")
    assert requests.get(f"{served.base}/v1/experiments/nope", timeout=30).status_code == 404


def test_admin_rules(served: Served) -> None:
    spec = yaml.safe_load(Path("configs/genai.yaml").read_text()) | {"name": "genai-admin-test"}
    url = f"{served.base}/v1/experiments"
    missing = post(url, spec)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert post(url, spec, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert post(url, spec, headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}).status_code == 403
    created = post(url, spec, headers=ADMIN)
    assert created.status_code == 201 and created.json()["name"] == "genai-admin-test"
    assert parse_spec(created.json()["spec"]).name == "genai-admin-test"
    assert post(url, spec, headers=ADMIN).status_code == 409
    bad = post(url, spec | {"searcher": {"name": "simulated-annealing"}, "name": "other"}, headers=ADMIN)
    assert bad.status_code == 422 and "searcher" in bad.text
    # an app started without FRONTIER_ADMIN_TOKEN keeps its admin endpoints shut, token or not
    for headers in ({}, ADMIN, {"Authorization": "Bearer "}):
        assert post(f"{served.noadmin}/v1/experiments", spec, headers=headers).status_code == 403
    assert requests.get(f"{served.base}/v1/experiments/genai-admin-test", timeout=30).status_code == 200


def test_suggest_returns_a_lease_on_params_inside_the_space(served: Served) -> None:
    before = time.time()
    s = suggest(served, "alice")
    assert set(s) == {
        "suggestion_id",
        "params",
        "variant",
        "variant_version",
        "payload",
        "expires_at",
        "context",
    }
    assert s["context"] == "portrait" and s["variant"] == "default"
    assert s["expires_at"] > before
    assert s["params"]["provider"] in SPACE["provider"]["choices"]
    for name in ("init_strength", "guidance_scale", "controlnet_weight"):
        assert SPACE[name]["low"] <= s["params"][name] <= SPACE[name]["high"]
    clustered = suggest(served, "alice", {"features": [120.0, 0.3, 5.1, 256.0, 256.0]})
    assert clustered["context"].startswith("cluster-")
    # concurrent (pending) suggestions for one user differ (their replica knows both)
    assert suggest(served, "bob")["params"] != suggest(served, "bob")["params"]


def test_feedback_status_codes(served: Served) -> None:
    s = suggest(served, "carol")
    url = f"{served.base}/v1/experiments/genai/feedback"
    body = {"suggestion_id": s["suggestion_id"], "rating": 4, "idempotency_key": "carol-1"}
    first = post(url, body)
    assert first.status_code == 202 and first.json()["status"] == "recorded"
    again = post(url, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    conflict = post(url, body | {"rating": 1})  # the same key on this suggestion, other feedback
    assert conflict.status_code == 409 and "carol-1" in conflict.json()["detail"]
    signal = post(
        url, {"suggestion_id": s["suggestion_id"], "signal": "super_like", "metrics": {"speed": 900.0}}
    )
    assert signal.status_code == 202 and signal.json()["learnt"] is True
    # genai weighs quality only: a measured speed alone is stored, and the answer says why
    # it is not learnt; a metric genai does not have is refused with the ones it has
    speed_only = post(url, {"suggestion_id": s["suggestion_id"], "metrics": {"speed": 900.0}})
    assert speed_only.status_code == 202 and speed_only.json()["learnt"] is False
    assert "speed" in speed_only.json()["reason"]
    unknown = post(url, {"suggestion_id": s["suggestion_id"], "metrics": {"latency_ms": 100.0}})
    assert unknown.status_code == 422 and "'quality', 'speed', 'cost'" in unknown.json()["detail"]
    assert post(url, {"suggestion_id": "f" * 48, "rating": 3}).status_code == 404
    other = post(f"{served.base}/v1/experiments/genai-admin-test/feedback", body | {"idempotency_key": "x"})
    assert other.status_code == 404  # the suggestion belongs to another experiment


def test_bad_input_is_422_and_changes_nothing(served: Served) -> None:
    s = suggest(served, "dave")
    before = counts(served)
    fb = f"{served.base}/v1/experiments/genai/feedback"
    sg = f"{served.base}/v1/experiments/genai/suggest"
    for body in (
        {"suggestion_id": s["suggestion_id"], "rating": 0},
        {"suggestion_id": s["suggestion_id"], "rating": 6},
        {"suggestion_id": s["suggestion_id"]},
        {"suggestion_id": s["suggestion_id"], "signal": "meh"},
        {"suggestion_id": s["suggestion_id"], "metrics": {"speed": float("nan")}},
        {"suggestion_id": s["suggestion_id"], "rating": 3, "extra": 1},
    ):
        assert post(fb, body).status_code == 422, body
    for body in (
        {"user_id": ""},
        {"user_id": "u" * 10_000_000},
        {"user_id": "eve", "context": {"features": [1.0, float("inf")]}},
        {"user_id": "eve", "context": {"features": [1.0, 2.0]}},  # not the stored dimension
        {"user_id": "eve", "context": ""},
        {"user_id": "eve", "surprise": True},
    ):
        assert post(sg, body).status_code == 422, str(body)[:80]
    assert post(f"{served.base}/v1/experiments/nope/suggest", {"user_id": "eve"}).status_code == 404
    assert counts(served) == before


def test_feedback_after_the_grace_window_is_410(served: Served) -> None:
    r = post(f"{served.noadmin}/v1/experiments/genai/suggest", {"user_id": "late"})
    assert r.status_code == 200
    time.sleep(1.5)  # the noadmin app leases for 1 s with no grace: this suggestion has lapsed
    late = post(
        f"{served.noadmin}/v1/experiments/genai/feedback",
        {"suggestion_id": r.json()["suggestion_id"], "rating": 5},
    )
    assert late.status_code == 410 and "grace" in late.json()["detail"]


def test_profile_reflects_feedback(served: Served) -> None:
    for stars in (5, 4, 5):
        s = suggest(served, "frank")
        post(
            f"{served.base}/v1/experiments/genai/feedback",
            {"suggestion_id": s["suggestion_id"], "rating": stars},
        )
    profile = requests.get(f"{served.base}/v1/experiments/genai/users/frank", timeout=30).json()
    assert profile["samples"] == 3
    assert profile["contexts"]["portrait"]["samples"] == 3
    assert set(profile["calibration"]) == {"bias", "scale"}
    assert 0.0 <= profile["contexts"]["portrait"]["confidence"] <= 1.0
    assert requests.get(f"{served.base}/v1/experiments/nope/users/frank", timeout=30).status_code == 404


def test_refine_profile_and_feedback_summary_over_http(served: Served) -> None:
    """The CLI's --url answers what its --store answers (a user's steps, the summary)."""
    for signal in ("like", "undo"):
        s = suggest(served, "grace")
        body = {"suggestion_id": s["suggestion_id"], "signal": signal}
        post(f"{served.base}/v1/experiments/genai/feedback", body)
    client = FrontierClient(served.base)
    steps = client.refine_profile("genai", "grace")["steps"]
    assert [s["feedback"] for s in steps] == [{"signal": "like"}, {"signal": "undo"}]
    assert all(s["why"] and set(s["preferred"]) == set(SPACE) for s in steps)
    stored = feedback_summary(EventStore(served.store_url), load_spec("configs/genai.yaml"), 2)
    assert client.feedback_summary("genai", bins=2) == stored
    missing = requests.get(f"{served.base}/v1/experiments/genai/users/nobody/history", timeout=30)
    assert missing.status_code == 404


def test_report_over_http(served: Served, tmp_path: Path) -> None:
    """`frontier report --url` writes what GET …/report serves: the HTML page and the PDF."""
    suggest(served, "heidi")  # something to report, whatever ran before
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert frontier(["report", "genai", "--url", served.base, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<h2>") == 7
    assert len(PdfReader(tmp_path / "report.pdf").pages) == 8
    url = f"{served.base}/v1/experiments/genai/report"
    r = requests.get(url, params={"format": "pdf"}, timeout=60)
    assert (
        r.status_code == 200
        and r.headers["content-type"] == "application/pdf"
        and r.content.startswith(b"%PDF")
    )
    assert requests.get(url, params={"format": "doc"}, timeout=30).status_code == 422
    assert requests.get(f"{served.base}/v1/experiments/nope/report", timeout=30).status_code == 404


def test_pareto_serves_the_published_front(served: Served, tmp_path: Any) -> None:
    data = {
        "name": "zdt1-served",
        "objective": {"ref": "objectives.synthetic:ZDT1"},
        "metrics": [
            {"name": "f1", "direction": "min", "reference": 1.1},
            {"name": "f2", "direction": "min", "reference": 6.0},
        ],
        "searcher": {"name": "random"},
        "budget": {"trials": 40},
        "preference": {"f1": 1.0, "f2": 1.0},
    }
    spec = parse_spec(data)
    old = explore(spec, tmp_path / "old", runner=run_local, progress=False, store=served.store_url)
    # a second exploration (another seed) publishes its own run: the front served is the new one
    spec = spec.model_copy(update={"seed": 1})
    new = explore(spec, tmp_path / "new", runner=run_local, progress=False, store=served.store_url)
    url = f"{served.base}/v1/experiments/zdt1-served/pareto"
    body = requests.get(url, timeout=30).json()
    assert (body["run_id"], body["runs"]) == (new.run_id, [old.run_id, new.run_id])
    earlier = requests.get(url, params={"run": old.run_id}, timeout=30).json()
    assert earlier["run_id"] == old.run_id and earlier["front"] != body["front"]
    assert requests.get(url, params={"run": "nope"}, timeout=30).status_code == 404
    trials = [
        t
        for t in EventStore(served.store_url).events("trials", experiment="zdt1-served")
        if t["run_id"] == new.run_id
    ]
    assert body["trials"] == 40 == len(trials)
    points = {t["trial_id"]: (t["metrics"]["f1"], t["metrics"]["f2"]) for t in trials}
    dominated = {
        i
        for i, (a1, a2) in points.items()
        for b1, b2 in points.values()
        if b1 <= a1 and b2 <= a2 and (b1, b2) != (a1, a2)
    }
    assert {p["trial_id"] for p in body["front"]} == set(points) - dominated
    assert body["reference_point"] == {"f1": 1.1, "f2": 6.0}
    assert body["hypervolume"] > 0
    assert publish(EventStore(served.store_url), spec, [], new.run_id) == 0  # nothing new
    assert requests.get(f"{served.base}/v1/experiments/nope/pareto", timeout=30).status_code == 404


def test_preferences_per_user(served: Served) -> None:
    url = f"{served.base}/v1/experiments/genai/users/gwen/preferences"
    r = requests.put(url, json={"weights": {"speed": 2.0, "quality": 1.0}}, timeout=30)
    assert r.status_code == 200 and r.json()["weights"] == {"quality": 1.0, "speed": 2.0, "cost": 0.0}
    profile = requests.get(f"{served.base}/v1/experiments/genai/users/gwen", timeout=30).json()
    assert profile["weights"]["speed"] == 2.0
    bad: list[dict[str, Any]] = [
        {"weights": {"beauty": 1.0}},
        {"weights": {"speed": -1.0}},
        {"weights": {}},
        {},
    ]
    for body in bad:
        assert requests.put(url, json=body, timeout=30).status_code == 422, body
    missing = requests.put(url.replace("/genai/", "/nope/"), json={"weights": {"speed": 1.0}}, timeout=30)
    assert missing.status_code == 404


def test_a_store_that_stops_answering_is_503_not_500(served: Served) -> None:
    """503 tells clients to retry (FrontierClient does); a 500 would read as our bug."""
    from ray import serve

    from deployments.app import AppArgs, app_builder

    with pg_database() as url:
        app = app_builder(AppArgs(store_url=url, experiments=["configs/genai.yaml"], replicas=1))
        serve.run(app, name="storedown", route_prefix="/storedown", logging_config={"log_level": "ERROR"})
        base = f"{served.base}/storedown"
        try:
            s = post(f"{base}/v1/experiments/genai/suggest", {"user_id": "ann"}).json()
            drop_database(sa.engine.make_url(url).database or "")
            assert requests.get(f"{base}/healthz", timeout=30).status_code == 503
            down = post(f"{base}/v1/experiments/genai/suggest", {"user_id": "ann"})
            assert down.status_code == 503 and "retry" in down.json()["detail"]
            fb = post(
                f"{base}/v1/experiments/genai/feedback", {"suggestion_id": s["suggestion_id"], "rating": 4}
            )
            assert fb.status_code == 503
            assert requests.get(f"{base}/v1/experiments/genai/users/ann", timeout=30).status_code == 503
        finally:
            serve.delete("storedown")
