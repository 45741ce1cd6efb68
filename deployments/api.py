"""The HTTP ingress: FastAPI routes on a Serve deployment, forwarding to the shards.

Replicas hold no state of their own: the online state lives in the shard deployments
(one per shard, routed by the user's hash) and the event store, so any replica answers
any request and a replica can die at any time.
"""

# No `from __future__ import annotations` here: FastAPI resolves these annotations at runtime
# on the class Serve rebuilds, where postponed names cannot be found.

import asyncio
import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from deployments.schemas import (
    ErrorBody,
    ExperimentInfo,
    FeedbackAck,
    FeedbackRequest,
    Health,
    ParetoFront,
    Preferences,
    SuggestionOut,
    SuggestRequest,
    UserId,
)
from engine.config import ExperimentSpec, SpecError, parse_spec
from engine.fronts import front_report
from engine.service import routing_key, shard_of
from engine.store import EventStore

__all__ = ["FrontierAPI", "api"]

log = logging.getLogger(__name__)

SHARD_ATTEMPTS = 20  # a restarting shard comes back within seconds; retries are idempotent
SHARD_BACKOFF_S = 0.25

api = FastAPI(
    title="Frontier",
    summary="Suggestions per user and context, feedback, Pareto fronts.",
    version="1",
)
bearer = HTTPBearer(auto_error=False, description="admin token (FRONTIER_ADMIN_TOKEN)")
ExperimentName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.-]*$")]


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the offending input, which may be huge or not JSON (NaN)."""
    detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class FrontierAPI:
    def __init__(self, shards: list[Any], store_url: str, admin_token: str | None) -> None:
        self.shards = shards
        self.store = EventStore(store_url)
        self._token = admin_token.encode() if admin_token else None

    # -- helpers ---------------------------------------------------------------------------

    def _admin(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """401 without a bearer token, 403 with a wrong one or when none is configured."""
        if self._token is None:
            raise HTTPException(403, "admin endpoints are off: start the app with FRONTIER_ADMIN_TOKEN set")
        if credentials is None:
            raise HTTPException(
                401, "send Authorization: Bearer <admin token>", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(credentials.credentials.encode(), self._token):
            raise HTTPException(403, "wrong admin token")

    def _spec(self, name: str) -> ExperimentSpec:
        stored = self.store.experiment(name)
        if stored is None:
            raise HTTPException(404, f"experiment {name!r} does not exist")
        return ExperimentSpec.model_validate(stored["spec"])

    async def _shard(self, index: int, method: str, *args: Any) -> Any:
        """Call a shard, mapping engine errors to HTTP and retrying while it restarts."""
        for attempt in range(SHARD_ATTEMPTS):
            try:
                answer = await self.shards[index].acall.remote(method, *args)
            except (ActorDiedError, ActorUnavailableError, RayActorError) as e:
                log.warning("shard %d unavailable (attempt %d): %s", index, attempt + 1, type(e).__name__)
                await asyncio.sleep(SHARD_BACKOFF_S * min(attempt + 1, 4))
                continue
            if "error" in answer:
                raise HTTPException(answer["status"], answer["error"])
            return answer["ok"]
        raise HTTPException(503, f"shard {index} did not answer; retry the request")

    # -- routes ----------------------------------------------------------------------------

    @api.get("/healthz", response_model=Health, responses=_errors(503))
    async def healthz(self) -> Health:
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ping.remote() for s in self.shards)), timeout=5)
        except Exception as e:  # any shard failure means not healthy, whatever its type
            raise HTTPException(503, f"a shard is not answering: {type(e).__name__}") from None
        return Health(status="ok", shards=len(self.shards))

    @api.get("/v1/experiments", response_model=list[str])
    def list_experiments(self) -> list[str]:
        return self.store.experiment_names()

    @api.get("/v1/experiments/{name}", response_model=ExperimentInfo, responses=_errors(404))
    def get_experiment(self, name: ExperimentName) -> ExperimentInfo:
        return ExperimentInfo(name=name, spec=self._spec(name).model_dump(mode="json"))

    @api.post(
        "/v1/experiments",
        status_code=201,
        response_model=ExperimentInfo,
        responses=_errors(401, 403, 409, 422),
    )
    def create_experiment(
        self,
        spec: dict[str, Any],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ExperimentInfo:
        """The same spec as the YAML files in configs/ (admin)."""
        self._admin(credentials)
        try:
            parsed = parse_spec(spec, source="request body")
        except SpecError as e:
            raise HTTPException(422, str(e)) from None
        if not self.store.add_experiment(parsed.name, parsed.model_dump(mode="json")):
            raise HTTPException(409, f"experiment {parsed.name!r} exists already; pick another name")
        return ExperimentInfo(name=parsed.name, spec=parsed.model_dump(mode="json"))

    @api.post(
        "/v1/experiments/{name}/suggest", response_model=SuggestionOut, responses=_errors(404, 422, 503)
    )
    async def suggest(self, name: ExperimentName, body: SuggestRequest) -> SuggestionOut:
        index = shard_of(routing_key(name, body.user_id), len(self.shards))
        row = await self._shard(index, "suggest", name, body.user_id, body.engine_context())
        return SuggestionOut(
            suggestion_id=row["suggestion_id"],
            params=row["params"],
            variant=row["variant"],
            expires_at=row["expires_at"],
            context=row["context"],
        )

    @api.post(
        "/v1/experiments/{name}/feedback",
        status_code=202,
        response_model=FeedbackAck,
        responses={**_errors(404, 410, 422, 503), 200: {"model": FeedbackAck, "description": "a duplicate"}},
    )
    async def feedback(self, name: ExperimentName, body: FeedbackRequest, response: Response) -> FeedbackAck:
        """202 once durably stored; 200 when this feedback was stored before (a no-op)."""
        feedback = body.model_dump(exclude={"suggestion_id", "idempotency_key"})  # a valid Feedback
        index = shard_of(body.suggestion_id, len(self.shards))
        args = (body.suggestion_id, feedback, body.idempotency_key, name)
        status = await self._shard(index, "feedback", *args)
        if status == "duplicate":
            response.status_code = 200
        return FeedbackAck(status=status, suggestion_id=body.suggestion_id)

    @api.get("/v1/experiments/{name}/pareto", response_model=ParetoFront, responses=_errors(404))
    def pareto(self, name: ExperimentName) -> ParetoFront:
        return ParetoFront.model_validate(front_report(self.store, self._spec(name)))

    @api.put(
        "/v1/experiments/{name}/users/{user_id}/preferences",
        response_model=Preferences,
        responses=_errors(404, 422, 503),
    )
    async def set_preferences(
        self,
        name: ExperimentName,
        user_id: Annotated[UserId, Path()],
        body: Preferences,
    ) -> Preferences:
        """The user's weights over quality/speed/cost; their past feedback is re-scored with them."""
        index = shard_of(routing_key(name, user_id), len(self.shards))
        weights = await self._shard(index, "set_preferences", name, user_id, body.weights)
        return Preferences(weights=weights)

    @api.get("/v1/experiments/{name}/users/{user_id}", responses=_errors(404, 422, 503))
    async def profile(self, name: ExperimentName, user_id: Annotated[UserId, Path()]) -> dict[str, Any]:
        """Samples, rater calibration, and per context the preferred settings and confidence."""
        index = shard_of(routing_key(name, user_id), len(self.shards))
        result: dict[str, Any] = await self._shard(index, "profile", name, user_id)
        return result
