"""The HTTP API's request and response bodies; FastAPI turns them into /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.online import MAX_ID, Feedback
from engine.spec import MAX_CONTEXT_FEATURES, MAX_CONTEXT_LABEL

__all__ = [
    "ActivateRequest",
    "ContextFeatures",
    "ErrorBody",
    "ExperimentInfo",
    "FeedbackAck",
    "FeedbackRequest",
    "FrontPoint",
    "Health",
    "ParetoFront",
    "Preferences",
    "RetrainRequest",
    "SuggestRequest",
    "SuggestionOut",
    "UserId",
    "VariantOut",
]

Id = Field(min_length=1, max_length=MAX_ID, pattern=r"\S")
UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextFeatures(_Body):
    """A context described by numbers (for `vectorize`, the image features); clustered online.

    The engine refuses non-finite values and a length other than the experiment's (422)."""

    features: list[float] = Field(min_length=1, max_length=MAX_CONTEXT_FEATURES)


ContextLabel = Annotated[str, Field(min_length=1, max_length=MAX_CONTEXT_LABEL, pattern=r"\S")]


class SuggestRequest(_Body):
    user_id: str = Id
    context: ContextLabel | ContextFeatures | None = Field(
        default=None, description="a context label, or {'features': [...]} to be clustered"
    )
    opt_out: bool = Field(
        default=False,
        description="the user declined to be learnt from: default settings, only counts stored",
    )

    def engine_context(self) -> str | list[float] | None:
        return self.context.features if isinstance(self.context, ContextFeatures) else self.context


class SuggestionOut(_Body):
    suggestion_id: str
    params: dict[str, Any]
    variant: str = Field(description="the variant served ('default' when the experiment has none)")
    variant_version: str | None = Field(default=None, description="its semantic version")
    payload: dict[str, Any] | None = Field(default=None, description="its payload, e.g. a prompt template")
    expires_at: float = Field(description="Unix time after which the lease ends")
    context: str | None = Field(description="the context label used (a cluster's for features)")


class FeedbackRequest(Feedback):
    """A rating, a signal and/or measured metrics on one suggestion."""

    suggestion_id: str = Id
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID, description="a retry with the same key is a no-op"
    )


class Preferences(_Body):
    """A user's own weights over the experiment's metrics (missing ones weigh 0); the
    engine refuses unknown metrics and weights that are negative, non-finite or all 0."""

    weights: dict[str, float] = Field(min_length=1, max_length=16)


class FeedbackAck(_Body):
    status: Literal["recorded", "duplicate"]
    suggestion_id: str
    learnt: bool = Field(description="whether a model learns from it under the weights in force")
    reason: str | None = Field(default=None, description="why it is not learnt")


class ExperimentInfo(_Body):
    name: str
    spec: dict[str, Any]


class FrontPoint(_Body):
    trial_id: str
    params: dict[str, Any]
    metrics: dict[str, float]


class ParetoFront(_Body):
    experiment: str
    run_id: str | None = Field(description="the exploration run shown (None: nothing published)")
    runs: list[str] = Field(description="every published run, the newest last")
    trials: int = Field(description="the run's published trials (`frontier explore --store`)")
    reference_point: dict[str, float]
    hypervolume: float
    front: list[FrontPoint]


class VariantOut(_Body):
    name: str
    version: str
    kind: str
    payload: dict[str, Any]
    parent: str | None
    status: str
    weight: float
    control: bool
    versions: list[str] = Field(description="every version created, oldest first")
    cap: float = Field(description="the most of new users it may get: its ramp step")
    ramp_users: int = Field(description="its rated users when its ramp step began")
    reason: str | None = Field(default=None, description="why this version was made")
    metrics: dict[str, Any] | None = Field(
        default=None, description="its parent's and the control's statistics when it was made"
    )


class Health(_Body):
    status: Literal["ok"]


class ErrorBody(BaseModel):
    detail: Any


class RetrainRequest(_Body):
    """`days`: recent feedback to fit on (default: the spec's `lifecycle.days`); `priors`:
    learner constants to judge instead of a fit (e.g. {"noise": 0.25})."""

    days: float | None = Field(default=None, gt=0, le=3650)
    priors: dict[str, float] | None = Field(default=None, max_length=16)


class ActivateRequest(_Body):
    reason: str = Field(default="requested by an admin", min_length=1, max_length=500)
