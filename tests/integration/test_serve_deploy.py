"""`serve deploy configs/serve.yaml` on a head started with `ray start` in another
directory, as on a cluster; and the app's refusal of a SQLite store on several nodes."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import deployments.app
from deployments.app import TOKEN_ENV, AppArgs, app_builder
from engine.ports import free_port
from tests.integration.conftest import BIN, ROOT, RayHead, ray_auth_headers, ray_head

ADMIN_TOKEN = "cluster-admin-token"


@pytest.fixture
def head(tmp_path: Path) -> Iterator[RayHead]:
    """The admin token is in the environment of `ray start`, as the README says."""
    with ray_head(tmp_path, {TOKEN_ENV: ADMIN_TOKEN}) as h:
        yield h


def serve_config(tmp_path: Path) -> tuple[Path, int]:
    """configs/serve.yaml as committed, but on a free HTTP port."""
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port


def wait_until_running(head: RayHead, app: str, timeout_s: float = 180) -> None:
    """Fails fast with Serve's message when the deploy fails, instead of timing out."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    url, headers = f"{head.address}/api/serve/applications/", ray_auth_headers(head)
    while time.monotonic() < deadline:
        r = requests.get(url, headers=headers, timeout=30)
        status = r.json().get("applications", {}).get(app, {}) if r.ok else {}
        if status.get("status") == "RUNNING":
            return
        assert status.get("status") != "DEPLOY_FAILED", status.get("message")
        time.sleep(0.5)
    pytest.fail(f"{app} not RUNNING after {timeout_s} s: {status}")


def test_serve_deploy_on_a_cluster(head: RayHead, tmp_path: Path) -> None:
    config, port = serve_config(tmp_path)
    shell = {k: v for k, v in head.env.items() if k != TOKEN_ENV}  # the deploying shell has no token
    deploy = subprocess.run(
        [BIN / "serve", "deploy", str(config), "--address", head.address],
        cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    wait_until_running(head, "frontier")
    base = f"http://127.0.0.1:{port}/v1/experiments"

    s = requests.post(f"{base}/genai/suggest", json={"user_id": "alice", "context": "portrait"}, timeout=30)
    assert s.status_code == 200, s.text
    body = {"suggestion_id": s.json()["suggestion_id"], "rating": 4, "idempotency_key": "k1"}
    feedback = requests.post(f"{base}/genai/feedback", json=body, timeout=30)
    assert feedback.status_code == 202, feedback.text

    spec = yaml.safe_load((ROOT / "configs" / "genai.yaml").read_text()) | {"name": "genai-cluster"}
    admin = requests.post(base, json=spec, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    assert admin.status_code == 201, admin.text
    wrong = requests.post(base, json=spec, headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert wrong.status_code == 403, wrong.text


def test_relative_spec_paths_resolve_against_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head started elsewhere runs the builder in its own directory, not the project's."""
    monkeypatch.chdir(tmp_path)
    args = AppArgs(experiments=["configs/genai.yaml", "configs/*.yaml"])
    assert args.experiments == ["configs/genai.yaml", "configs/*.yaml"]
    with pytest.raises(ValueError, match=r"configs/nothing\.yaml.*runtime_env"):
        AppArgs(experiments=["configs/nothing.yaml"])


def test_a_sqlite_store_warns_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with caplog.at_level(logging.WARNING, logger="deployments.app"):
        app_builder(AppArgs(store_url=url, experiments=[], replicas=1))
    assert any("SQLite" in r.getMessage() and url in r.getMessage() for r in caplog.records)


def test_a_sqlite_store_is_refused_on_several_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployments.app, "alive_nodes", lambda: 3)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.raises(ValueError, match=r"store_url=.*3 nodes.*postgresql://"):
        app_builder(AppArgs(store_url=url, experiments=[], replicas=1))
