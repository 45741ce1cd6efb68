"""FrontierClient's retries over real HTTP, and the Serve app's arguments."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from deployments.app import AppArgs, register_experiments
from engine.client import FrontierClient, FrontierHTTPError
from engine.store import EventStore


class Flaky:
    """An HTTP server that answers the first `failures` requests with `status`, then 202."""

    def __init__(self, failures: int, status: int) -> None:
        self.failures, self.status = failures, status
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                failed = len(outer.bodies) <= outer.failures
                code = outer.status if failed else 202
                payload = {"detail": "try later"} if failed else {"status": "recorded", "suggestion_id": "s"}
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Flaky:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_retries_repeat_the_same_idempotency_key() -> None:
    with Flaky(failures=2, status=503) as server:
        client = FrontierClient(server.url, retries=3, backoff_s=0.0)
        assert client.feedback("genai", "s", rating=4) == "recorded"
    assert len(server.bodies) == 3
    keys = {b["idempotency_key"] for b in server.bodies}
    assert len(keys) == 1 and server.bodies[0] == server.bodies[2]


def test_idempotent_calls_are_retried_on_500_suggest_is_not() -> None:
    """Serve's proxy answers 500 for a replica killed mid-request: feedback is safe to repeat
    (same key); a repeated suggest would leave an extra pending suggestion."""
    with Flaky(failures=1, status=500) as server:
        client = FrontierClient(server.url, retries=3, backoff_s=0.0)
        assert client.feedback("genai", "s", rating=4) == "recorded"
    assert len(server.bodies) == 2 and server.bodies[0] == server.bodies[1]
    with Flaky(failures=1, status=500) as server:
        client = FrontierClient(server.url, retries=3, backoff_s=0.0)
        with pytest.raises(FrontierHTTPError) as err:
            client.suggest("genai", "u", "portrait")
    assert err.value.status == 500 and len(server.bodies) == 1


def test_client_errors_are_not_retried() -> None:
    with Flaky(failures=5, status=422) as server:
        client = FrontierClient(server.url, retries=3, backoff_s=0.0)
        with pytest.raises(FrontierHTTPError) as err:
            client.feedback("genai", "s", rating=4)
    assert err.value.status == 422 and err.value.detail == "try later"
    assert len(server.bodies) == 1


def test_gives_up_after_the_last_retry() -> None:
    with Flaky(failures=10, status=503) as server:
        client = FrontierClient(server.url, retries=2, backoff_s=0.0)
        with pytest.raises(FrontierHTTPError) as err:
            client.suggest("genai", "u", "portrait")
    assert err.value.status == 503 and len(server.bodies) == 3
    assert server.bodies[0] == {"user_id": "u", "context": "portrait"}


def test_serve_yaml_args_validate() -> None:
    config = yaml.safe_load(Path("configs/serve.yaml").read_text())
    for app in config["applications"]:
        AppArgs.model_validate(app["args"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"replicas": 0}, "replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"experiments": ["configs/nothing-*.yaml"]}, "experiments"),
        ({"sharts": 2}, "sharts"),
    ],
)
def test_bad_app_args_name_the_field(args: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AppArgs.model_validate(args)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def test_register_experiments_keeps_what_is_stored(store: EventStore, tmp_path: Path) -> None:
    assert register_experiments(store, ["configs/genai.yaml", "configs/zdt1.yaml"]) == ["genai", "zdt1"]
    changed = yaml.safe_load(Path("configs/genai.yaml").read_text()) | {"seed": 99}
    (tmp_path / "genai.yaml").write_text(yaml.safe_dump(changed))
    assert register_experiments(store, [str(tmp_path)]) == ["genai"]
    stored = store.experiment("genai")
    assert stored is not None and stored["spec"]["seed"] == 0
