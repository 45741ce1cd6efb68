"""`FrontierClient`: the HTTP API from Python, retrying safely.

Every call is retried on connection errors and 502/503/504 (the server was restarting,
or the store did not answer), with the same body. Idempotent calls (feedback, the GETs,
PUT preferences) are retried on 500 too: a replica killed mid-request makes Serve's
proxy answer 500, and repeating them is safe. Feedback carries an idempotency key
(generated when the caller gives none) that every retry repeats, so a retry after a lost
response is a no-op on the server. `suggest` is not idempotent: a retry after a lost
response leaves the first suggestion open, and until it is answered or its lease expires
the learner counts it as pending for that user (their next suggestions avoid its point);
a 500 on suggest is therefore raised, not retried.

Every per-user call carries `x-session-id: <the user's routing key>`, so Serve routes all
of a user's requests to the replica that holds their state in memory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import requests

from engine.online import Feedback
from engine.routing import routing_key

__all__ = ["SESSION_HEADER", "FrontierClient", "FrontierHTTPError", "HttpOnline"]

RETRY_STATUS = frozenset({502, 503, 504})
RETRY_STATUS_IDEMPOTENT = RETRY_STATUS | {500}
SESSION_HEADER = "x-session-id"  # Ray Serve's session affinity header (its default name)


class FrontierHTTPError(RuntimeError):
    """The server said no: `status` and the server's `detail`."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class FrontierClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        admin_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.session = requests.Session()
        if admin_token:
            self.session.headers["Authorization"] = f"Bearer {admin_token}"

    def suggest(
        self,
        experiment: str,
        user_id: str,
        context: str | Sequence[float] | None = None,
        opt_out: bool = False,
    ) -> dict[str, Any]:
        """{suggestion_id, params, variant, variant_version, payload, expires_at, context};
        `opt_out`: the user declined to be learnt from (default settings, nothing stored)."""
        body: dict[str, Any] = {"user_id": user_id}
        if opt_out:
            body["opt_out"] = True
        if isinstance(context, str):
            body["context"] = context
        elif context is not None:
            body["context"] = {"features": [float(v) for v in context]}
        path = f"/v1/experiments/{experiment}/suggest"
        result: dict[str, Any] = self._call(
            "POST", path, body, routing_key(experiment, user_id), idempotent=False
        )
        return result

    def feedback(
        self,
        experiment: str,
        suggestion_id: str,
        *,
        rating: int | None = None,
        signal: str | None = None,
        metrics: Mapping[str, float] | None = None,
        time_to_accept_s: float | None = None,
        retries: int | None = None,
        idempotency_key: str | None = None,
        comment: str | None = None,
    ) -> str:
        """'recorded', or 'duplicate' when this key was stored before."""
        body = {
            "suggestion_id": suggestion_id,
            "rating": rating,
            "signal": signal,
            "metrics": dict(metrics) if metrics else None,
            "time_to_accept_s": time_to_accept_s,
            "retries": retries,
            "comment": comment,
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        body = {k: v for k, v in body.items() if v is not None}
        # a suggestion id starts with its user's routing key (engine.routing.routing_key)
        path = f"/v1/experiments/{experiment}/feedback"
        result: dict[str, Any] = self._call("POST", path, body, suggestion_id[:16])
        return str(result["status"])

    def pareto(self, experiment: str, run: str | None = None) -> dict[str, Any]:
        """The newest exploration run's front, or `run`'s."""
        query = f"?run={run}" if run else ""
        result: dict[str, Any] = self._call("GET", f"/v1/experiments/{experiment}/pareto{query}")
        return result

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        path = f"/v1/experiments/{experiment}/users/{user_id}"
        result: dict[str, Any] = self._call("GET", path, session=routing_key(experiment, user_id))
        return result

    def set_preferences(
        self, experiment: str, user_id: str, weights: Mapping[str, float]
    ) -> dict[str, float]:
        """The user's own weights over the experiment's metrics; returns them as stored."""
        path = f"/v1/experiments/{experiment}/users/{user_id}/preferences"
        body = {"weights": dict(weights)}
        result: dict[str, float] = self._call("PUT", path, body, routing_key(experiment, user_id))["weights"]
        return result

    def experiments(self) -> list[str]:
        result: list[str] = self._call("GET", "/v1/experiments")
        return result

    def create_experiment(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: needs the client's `admin_token`."""
        result: dict[str, Any] = self._call("POST", "/v1/experiments", dict(spec), idempotent=False)
        return result

    def create_variant(self, experiment: str, variant: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: a new variant or version (engine.experiments.VariantSpec's fields)."""
        path = f"/v1/experiments/{experiment}/variants"
        result: dict[str, Any] = self._call("POST", path, dict(variant), idempotent=False)
        return result

    def patch_variant(self, experiment: str, name: str, change: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: weight, status, reassign."""
        path = f"/v1/experiments/{experiment}/variants/{name}"
        result: dict[str, Any] = self._call("PATCH", path, dict(change), idempotent=False)
        return result

    def decide(self, experiment: str, name: str, action: str) -> dict[str, Any]:
        """Admin: `promote` or `rollback` a variant; the event recorded."""
        path = f"/v1/experiments/{experiment}/variants/{name}/{action}"
        result: dict[str, Any] = self._call("POST", path, None, idempotent=False)
        return result

    def history(self, experiment: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/experiments/{experiment}/history")
        return result

    def variants(self, experiment: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/experiments/{experiment}/variants")
        return result

    def abtest(self, experiment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/experiments/{experiment}/abtest")
        return result

    # -- model versions, retraining, schedule, deletion ---------------------------------------

    def versions(self, experiment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/experiments/{experiment}/versions")
        return result

    def activate(
        self, experiment: str, version: str, reason: str = "requested by an admin"
    ) -> dict[str, Any]:
        """Admin: serve that model version (an earlier one: a rollback); the event recorded."""
        path = f"/v1/experiments/{experiment}/versions/{version}/activate"
        result: dict[str, Any] = self._call("POST", path, {"reason": reason}, idempotent=False)
        return result

    def retrain(
        self, experiment: str, days: float | None = None, priors: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """Admin: refit now; activated only when it beats the active version on held-out feedback."""
        body = {"days": days, "priors": dict(priors) if priors is not None else None}
        result: dict[str, Any] = self._call(
            "POST", f"/v1/experiments/{experiment}/retrain", body, idempotent=False
        )
        return result

    def schedule(self, experiment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/experiments/{experiment}/schedule")
        return result

    def export_version(self, experiment: str, version: str) -> tuple[dict[str, Any], bytes]:
        """Admin: the version as JSON, and the feedback it was fitted on as Parquet bytes."""
        path = f"/v1/experiments/{experiment}/versions/{version}/export"
        document: dict[str, Any] = self._call("GET", path)
        table: bytes = self._call("GET", path + "?format=parquet", raw=True)
        return document, table

    def import_version(self, experiment: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: a version exported elsewhere, as a new major version (a draft)."""
        path = f"/v1/experiments/{experiment}/versions"
        result: dict[str, Any] = self._call("POST", path, dict(document), idempotent=False)
        return result

    def stats(self, experiment: str) -> dict[str, Any]:
        """Counts, ratings, convergence, per parameter value / context / variant, the trend."""
        result: dict[str, Any] = self._call("GET", f"/v1/experiments/{experiment}/stats")
        return result

    def feedback_summary(self, experiment: str, bins: int = 3) -> dict[str, Any]:
        """Per context and parameter level: ratings, low ratings and signals with intervals."""
        path = f"/v1/experiments/{experiment}/feedback-summary?bins={bins}"
        result: dict[str, Any] = self._call("GET", path)
        return result

    def report(self, experiment: str, fmt: str = "html", timeout_s: float = 300.0) -> bytes:
        """The experiment's report as HTML or PDF bytes (drawing takes seconds: a long
        timeout, and a timed-out request is not sent again)."""
        path = f"/v1/experiments/{experiment}/report?format={fmt}"
        content: bytes = self._call("GET", path, raw=True, timeout_s=timeout_s)
        return content

    def refine_profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        """Each of the user's feedback with the preferred settings after it and why they moved."""
        path = f"/v1/experiments/{experiment}/users/{user_id}/history"
        result: dict[str, Any] = self._call("GET", path, session=routing_key(experiment, user_id))
        return result

    def forget(self, experiment: str, user_id: str) -> dict[str, Any]:
        """Admin: delete every event of the user; what was deleted."""
        path = f"/v1/experiments/{experiment}/users/{user_id}"
        result: dict[str, Any] = self._call("DELETE", path, None, idempotent=False)
        return result

    def healthy(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/healthz", timeout=self.timeout_s).ok
        except requests.RequestException:
            return False

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        session: str | None = None,
        idempotent: bool = True,
        raw: bool = False,
        timeout_s: float | None = None,
    ) -> Any:
        """Retry connection failures and 502/503/504 (and 500 when `idempotent`) with the
        same body; raise other errors. The body read as JSON, or as bytes when `raw`.
        `timeout_s` (default: the client's) for slow work, which a timeout does not retry."""
        retry = RETRY_STATUS_IDEMPOTENT if idempotent else RETRY_STATUS
        headers = {SESSION_HEADER: session} if session else None
        wait_s = timeout_s or self.timeout_s
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                r = self.session.request(
                    method, self.base_url + path, json=body, headers=headers, timeout=wait_s
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                if last or (timeout_s is not None and isinstance(e, requests.Timeout)):
                    raise
            else:
                if r.status_code < 400:
                    return r.content if raw else r.json()
                if r.status_code not in retry or last:
                    raise FrontierHTTPError(r.status_code, _detail(r))
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


class HttpSuggestion(SimpleNamespace):
    """A suggestion's fields as attributes, like engine.online.Suggestion."""

    suggestion_id: str
    params: dict[str, Any]


class HttpOnline:
    """The client with the in-process engine's call shapes, so `drive_users` runs over HTTP."""

    def __init__(self, client: FrontierClient) -> None:
        self.client = client
        self._experiment: dict[str, str] = {}  # suggestion id -> experiment (the URL needs it)

    def suggest(self, experiment: str, user_id: str, context: str | None = None) -> HttpSuggestion:
        s = self.client.suggest(experiment, user_id, context)
        self._experiment[s["suggestion_id"]] = experiment
        return HttpSuggestion(**s)

    def feedback(self, suggestion_id: str, feedback: Feedback, idempotency_key: str | None = None) -> str:
        """'recorded' or 'duplicate'."""
        return self.client.feedback(
            self._experiment.pop(suggestion_id),
            suggestion_id,
            rating=feedback.rating,
            signal=feedback.signal,
            metrics=feedback.metrics,
            time_to_accept_s=feedback.time_to_accept_s,
            retries=feedback.retries,
            idempotency_key=idempotency_key,
            comment=feedback.comment,
        )

    def profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        return self.client.profile(experiment, user_id)


def _detail(r: requests.Response) -> Any:
    try:
        return r.json().get("detail", r.text)
    except ValueError:
        return r.text
