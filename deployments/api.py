"""The HTTP API: FastAPI routes on a Serve deployment whose replicas are the state shards.

Each replica runs an `OnlineEngine` over the shared event store. Serve's consistent-hash
router sends every request carrying `x-session-id` (the user's routing key: the first 16
characters of their suggestion ids; `FrontierClient` sends it) to the replica that owns
that key, so a user's state is warm in one replica's memory; a request without it, or one
that lands elsewhere while replicas come and go, is still answered from the same state,
because every engine learns all acknowledged feedback and preference changes from the
store (below). A replica can therefore die at any time: the store holds everything
acknowledged.

The engine is not thread-safe, so its routes are coroutines that never await while they
use it: they run one at a time on the replica's event loop, without a thread hop. A store
that hangs cannot wedge that loop: every store call gives up after `store_timeout_s`
(503), and for as long again after such a call the store fails at once (503), so a
queued request waits for at most one hung call (see `engine.store.bounded`).
`check_health` probes the store the same way, so Serve replaces a replica whose store
keeps failing.

Suggest and feedback answer without reading the store first: once the response has
gone, the replica learns what it and its peers wrote (`OnlineEngine.sync`), once for a
burst of requests, and computes each rated user's next suggestion, which their next
suggest serves if nothing it depends on has changed. A suggestion therefore reflects
every feedback this replica has acknowledged, and its peers' up to the moments before;
profiles read the store first.
"""

# No `from __future__ import annotations` here: FastAPI resolves these annotations at runtime
# on the class Serve rebuilds, where postponed names cannot be found.

import asyncio
import hmac
import io
import logging
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from deployments.schemas import (
    ActivateRequest,
    ErrorBody,
    ExperimentInfo,
    FeedbackAck,
    FeedbackRequest,
    Health,
    ParetoFront,
    Preferences,
    RetrainRequest,
    SuggestionOut,
    SuggestRequest,
    UserId,
    VariantOut,
)
from engine.experiments import VariantError, VariantPatch, VariantSpec
from engine.offline import UnknownRun, front_report
from engine.online import Feedback, OnlineEngine, OnlineError
from engine.online.lifecycle import judge
from engine.ray.metrics import MeasuredRequests, serve_metrics
from engine.report import MEDIA_TYPES, feedback_summary, learnt, read_store, render, status
from engine.spec import ExperimentSpec, SpecError, parse_spec
from engine.store import DEFAULT_TIMEOUT_S, UNAVAILABLE, EventStore

__all__ = ["FrontierAPI", "api"]

log = logging.getLogger(__name__)

# Serve ships a response once the handler's ASGI call has finished, from the replica's
# main thread: work started in the handler's task (FastAPI's BackgroundTasks too) delays
# it by that work's duration. Learning is started this much later instead, when the
# response has gone (measured: a 2 ms job so scheduled left the latency unchanged).
LEARN_DELAY_S = 0.001

api = FastAPI(
    title="Frontier",
    summary="Suggestions per user and context, feedback, Pareto fronts.",
    version="1",
)
api.add_middleware(MeasuredRequests)
bearer = HTTPBearer(auto_error=False, description="admin token (FRONTIER_ADMIN_TOKEN)")
ExperimentName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.-]*$")]


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the offending input, which may be huge or not JSON (NaN)."""
    detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _store_down(request: Request, exc: Exception) -> JSONResponse:
    """503, which clients retry (FrontierClient does), instead of a 500."""
    log.warning("the store is not answering: %s", type(exc).__name__)
    return JSONResponse({"detail": "the store is not answering; retry shortly"}, status_code=503)


for _unavailable in UNAVAILABLE:
    api.add_exception_handler(_unavailable, _store_down)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error bodies a route documents; every route may answer 503 (the store is down)."""
    return {code: {"model": ErrorBody} for code in (*codes, 503)}


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class FrontierAPI:
    def __init__(
        self,
        store_url: str,
        engine_options: dict[str, Any],
        admin_token: str | None,
        store_timeout_s: float = DEFAULT_TIMEOUT_S,
        schedule_poll_s: float = 30.0,
    ) -> None:
        self.store = EventStore(store_url, timeout_s=store_timeout_s)
        self.engine = OnlineEngine(self.store, **engine_options)
        self.engine.load_all()  # replay the store now: a replica is ready once it is warm
        self._token = admin_token.encode() if admin_token else None
        self.metrics = serve_metrics()
        self._learning = False  # a sync is scheduled; it will see every write before it runs
        # Serve builds a replica on its event loop: the scheduler runs beside the routes
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule(schedule_poll_s))

    async def _schedule(self, poll_s: float) -> None:
        """Every `poll_s`, run the scheduled jobs due whose claim this replica wins (one
        replica per period: engine.experiments.schedule), after anonymising the events past
        each experiment's retention; the fitting runs in a thread,
        the engine's reads and writes on the loop, as every route's."""
        while True:
            await asyncio.sleep(poll_s)
            try:
                self.engine.apply_retention()
                for name, job in self.engine.due_jobs():
                    judged = await asyncio.to_thread(judge, job.plan)
                    log.info("%s: scheduled retrain: %s", name, self.engine.finish_job(name, job, judged))
            except Exception as e:  # the store is down, say: the next poll tries again
                log.warning("scheduled jobs failed (%s); will retry", e)

    def _learn_soon(self) -> None:
        """After this response: learn what was written, once for a burst of requests."""
        if not self._learning:
            self._learning = True
            asyncio.get_running_loop().call_later(LEARN_DELAY_S, self._learn)

    def check_health(self) -> None:
        """Serve's probe (every 10 s): raises when the store does not answer within its
        timeout, and Serve replaces the replica after a few failures in a row."""
        self.store.ping()

    def _learn(self) -> None:
        self._learning = False
        try:
            self.engine.sync(ahead=True)  # and the rated users' next suggestions
            self.metrics.memory(self.engine.memory())
        except Exception as e:  # the store is unreachable: the next request's sync retries
            log.warning("learning from the store failed (%s); will retry", e)

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

    # -- routes ----------------------------------------------------------------------------

    @api.get("/healthz", response_model=Health, responses=_errors())
    def healthz(self) -> Health:
        try:
            self.store.experiment_names()
        except Exception as e:  # whatever the driver raises, the store is not answering
            raise HTTPException(503, f"the store is not answering: {type(e).__name__}") from None
        return Health(status="ok")

    @api.get("/v1/experiments", response_model=list[str], responses=_errors())
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
        try:
            created = self.engine.register(parsed)
        except OnlineError as e:  # its A/B range overlaps another experiment's in its layer
            raise HTTPException(e.status, str(e)) from None
        if not created:
            raise HTTPException(409, f"experiment {parsed.name!r} exists already; pick another name")
        return ExperimentInfo(name=parsed.name, spec=parsed.model_dump(mode="json"))

    @api.post("/v1/experiments/{name}/suggest", response_model=SuggestionOut, responses=_errors(404, 422))
    async def suggest(self, name: ExperimentName, body: SuggestRequest) -> SuggestionOut:
        """Send `x-session-id: <routing key>` to reach the replica holding this user warm."""
        try:
            s = self.engine.suggest(
                name, body.user_id, body.engine_context(), sync=False, opt_out=body.opt_out
            )
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None
        self._learn_soon()
        self.metrics.suggestion(name, s.variant)
        return SuggestionOut(
            suggestion_id=s.suggestion_id,
            params=s.params,
            variant=s.variant,
            variant_version=s.variant_version,
            payload=s.payload,
            expires_at=s.expires_at,
            context=s.context,
        )

    @api.post(
        "/v1/experiments/{name}/feedback",
        status_code=202,
        response_model=FeedbackAck,
        responses={**_errors(404, 409, 410, 422), 200: {"model": FeedbackAck, "description": "a duplicate"}},
    )
    async def feedback(self, name: ExperimentName, body: FeedbackRequest, response: Response) -> FeedbackAck:
        """202 once durably stored; 200 when this feedback was stored before under this key
        (a no-op); 409 when the key was used on this suggestion for other feedback.
        `learnt` says whether the weights in force give what it carries any weight."""
        feedback = Feedback.model_validate(body.model_dump(exclude={"suggestion_id", "idempotency_key"}))
        try:
            result = self.engine.feedback(
                body.suggestion_id,
                feedback,
                body.idempotency_key,
                experiment=name,
                learn=False,
            )
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None
        self._learn_soon()
        if result.status == "duplicate":
            response.status_code = 200
        elif result.variant is not None:  # stored (an opted-out user's is only counted)
            self.metrics.feedback_stored(name, result.variant, feedback)
        return FeedbackAck(
            status=result.status, suggestion_id=body.suggestion_id, learnt=result.learnt, reason=result.reason
        )

    @api.get("/v1/experiments/{name}/pareto", response_model=ParetoFront, responses=_errors(404))
    def pareto(
        self, name: ExperimentName, run: Annotated[str | None, Query(max_length=64)] = None
    ) -> ParetoFront:
        """The newest exploration run's front, or `?run=<run id>`'s (`runs` lists them)."""
        try:
            return ParetoFront.model_validate(front_report(self.store, self._spec(name), run))
        except UnknownRun as e:
            raise HTTPException(404, str(e)) from None

    @api.put(
        "/v1/experiments/{name}/users/{user_id}/preferences",
        response_model=Preferences,
        responses=_errors(404, 422),
    )
    async def set_preferences(
        self,
        name: ExperimentName,
        user_id: Annotated[UserId, Path()],
        body: Preferences,
    ) -> Preferences:
        """The user's weights over quality/speed/cost; their past feedback is re-scored with them."""
        try:
            return Preferences(weights=self.engine.set_preferences(name, user_id, body.weights))
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/users/{user_id}", responses=_errors(404, 422))
    async def profile(self, name: ExperimentName, user_id: Annotated[UserId, Path()]) -> dict[str, Any]:
        """Samples, rater calibration, and per context the preferred settings and confidence."""
        try:
            return self.engine.profile(name, user_id)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/users/{user_id}/history", responses=_errors(404, 422))
    async def refine_profile(
        self, name: ExperimentName, user_id: Annotated[UserId, Path()]
    ) -> dict[str, Any]:
        """Each of the user's feedback, oldest first, with the preferred settings after it,
        what moved most and why (replayed with the population model of now)."""
        try:
            return self.engine.refine_profile(name, user_id)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.delete("/v1/experiments/{name}/users/{user_id}", responses=_errors(401, 403, 404, 422))
    async def forget(
        self,
        name: ExperimentName,
        user_id: Annotated[UserId, Path()],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> dict[str, Any]:
        """Delete every event of the user (admin): their suggestions, feedback, assignments
        and preferences go, a tombstone naming no one is recorded, and every replica
        rebuilds its state from the store without them. 404 when nothing of theirs is stored."""
        self._admin(credentials)
        try:
            return self.engine.forget(name, user_id)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    # -- variants and A/B tests -------------------------------------------------------------

    @api.post(
        "/v1/experiments/{name}/variants",
        status_code=201,
        response_model=VariantOut,
        responses=_errors(401, 403, 404, 409, 422),
    )
    async def create_variant(
        self,
        name: ExperimentName,
        body: VariantSpec,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> VariantOut:
        """A new variant, or a new version of one (admin). One variant is the control."""
        self._admin(credentials)
        try:
            return VariantOut(**self.engine.create_variant(name, body).public())
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.patch(
        "/v1/experiments/{name}/variants/{variant}",
        response_model=VariantOut,
        responses=_errors(401, 403, 404, 422),
    )
    async def patch_variant(
        self,
        name: ExperimentName,
        variant: Annotated[str, Path(min_length=1, max_length=64)],
        body: VariantPatch,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> VariantOut:
        """Weight and status (admin); assigned users keep their variant unless `reassign`."""
        self._admin(credentials)
        try:
            return VariantOut(**self.engine.patch_variant(name, variant, body).public())
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/variants", response_model=list[VariantOut], responses=_errors(404))
    async def list_variants(self, name: ExperimentName) -> list[VariantOut]:
        try:
            return [VariantOut(**v.public()) for v in self.engine.variants(name)]
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/abtest", responses=_errors(404))
    async def abtest(self, name: ExperimentName) -> dict[str, Any]:
        """Per variant: users, samples, mean rating and metrics with intervals; against the
        control: lift with intervals, p-values (fixed and sequential), P(beat control),
        expected loss; the sample-ratio check; and a recommendation with its reason."""
        try:
            return self.engine.abtest(name)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.post(
        "/v1/experiments/{name}/variants/{variant}/{action}",
        responses=_errors(401, 403, 404, 409),
    )
    async def decide(
        self,
        name: ExperimentName,
        variant: Annotated[str, Path(min_length=1, max_length=64)],
        action: Literal["promote", "rollback"],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> dict[str, Any]:
        """Promote a variant (it becomes the control, the old control stops) or roll it back
        (stopped: its users get the control) (admin); answers with the event recorded."""
        self._admin(credentials)
        try:
            return self.engine.decide(name, variant, action)
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/history", responses=_errors(404))
    async def history(self, name: ExperimentName) -> list[dict[str, Any]]:
        """Every variant change, promotions and rollbacks with their statistics, oldest first."""
        try:
            return self.engine.history(name)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    # -- model versions, retraining, schedule (engine.online.lifecycle) ----------------------

    @api.get("/v1/experiments/{name}/versions", responses=_errors(404))
    async def versions(self, name: ExperimentName) -> dict[str, Any]:
        """Every model version (semantic version, parent, reason, constants, the feedback seq
        it was fitted up to, its scores at creation, status) and every activation."""
        try:
            return self.engine.versions(name)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None

    @api.post(
        "/v1/experiments/{name}/versions/{version}/activate", responses=_errors(401, 403, 404, 409, 422)
    )
    async def activate(
        self,
        name: ExperimentName,
        version: Annotated[str, Path(min_length=1, max_length=32)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        body: ActivateRequest | None = None,
    ) -> dict[str, Any]:
        """Serve this model version from now on (an earlier one: a rollback) (admin); every
        replica rebuilds its learner from it. Answers with the event recorded."""
        self._admin(credentials)
        try:
            return self.engine.activate(name, version, (body or ActivateRequest()).reason)
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.post("/v1/experiments/{name}/versions", status_code=201, responses=_errors(401, 403, 404, 409, 422))
    async def import_version(
        self,
        name: ExperimentName,
        document: dict[str, Any],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> dict[str, Any]:
        """Import a version exported by `…/versions/{version}/export` (admin): a new major
        version, a draft until activated."""
        self._admin(credentials)
        try:
            return self.engine.import_version(name, document)
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/versions/{version}/export", responses=_errors(401, 403, 404, 422))
    async def export_version(
        self,
        name: ExperimentName,
        version: Annotated[str, Path(min_length=1, max_length=32)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        format: Literal["json", "parquet"] = "json",
    ) -> Any:
        """The version as JSON, or the feedback it was fitted on as Parquet (users
        pseudonymised) (admin)."""
        self._admin(credentials)
        try:
            document, table = self.engine.export_version(name, version)
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None
        if format == "json":
            return document
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet")

    @api.post("/v1/experiments/{name}/retrain", responses=_errors(401, 403, 404, 409, 422))
    async def retrain(
        self,
        name: ExperimentName,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        body: RetrainRequest | None = None,
    ) -> dict[str, Any]:
        """Refit the learner on the last `days` of feedback now (admin); the new version is
        activated only when it beats the active one on the held-out last 20%, else it stays
        a draft with the reason. The fitting runs off the event loop."""
        self._admin(credentials)
        body = body or RetrainRequest()
        try:
            job = self.engine.start_retrain(name, body.days, body.priors)
            judged = await asyncio.to_thread(judge, job.plan)
            return self.engine.finish_job(name, job, judged)
        except (OnlineError, VariantError) as e:
            raise HTTPException(e.status, str(e)) from None

    @api.get("/v1/experiments/{name}/stats", responses=_errors(404))
    def stats(self, name: ExperimentName) -> dict[str, Any]:
        """Users, suggestions, feedback and its rate, ratings (mean, share of 4+, best), the
        convergence score with its definition, per categorical parameter value, context and
        variant, the trend per 10 ratings, and signals per most-changed parameter."""
        return status(self.store, self._spec(name))

    @api.get("/v1/experiments/{name}/feedback-summary", responses=_errors(404, 422))
    def feedback_summary(
        self, name: ExperimentName, bins: Annotated[int, Query(ge=1, le=20)] = 3
    ) -> dict[str, Any]:
        """Per context and parameter value or quantile bin: ratings with a 95% t interval,
        the shares of low ratings and of each signal with 95% Wilson intervals."""
        return feedback_summary(self.store, self._spec(name), bins)

    @api.get(
        "/v1/experiments/{name}/report",
        responses={**_errors(404, 422), 200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
    )
    async def report(self, name: ExperimentName, format: Literal["html", "pdf"] = "html") -> Response:
        """The experiment's report: a self-contained HTML page, or a PDF, with the Pareto
        front, hypervolume per searcher, parameter importance, the rating trend and
        convergence, variants, best settings per context and rater calibration. The learner is
        asked on the loop; the store is read and the plots drawn in a thread."""
        spec = self._spec(name)
        try:
            view = learnt(self.engine, name)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None
        drawn = await asyncio.to_thread(lambda: render(read_store(self.store, spec, view), (format,)))
        return Response(drawn.documents[format], media_type=MEDIA_TYPES[format])

    @api.get("/v1/experiments/{name}/schedule", responses=_errors(404))
    async def schedule(self, name: ExperimentName) -> dict[str, Any]:
        """The schedule (cron, UTC), the next run, and the last runs with their results."""
        try:
            return self.engine.schedule(name)
        except OnlineError as e:
            raise HTTPException(e.status, str(e)) from None
