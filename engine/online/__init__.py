"""The online phase: suggestions per user and context, feedback turned into rewards, and the
model that learns from them (global, context and user levels: docs/online-model.md)."""

from engine.online.contexts import ContextClusters
from engine.online.model import OnlineModel
from engine.online.priors import Priors
from engine.online.protocol import (
    MAX_ID,
    ConflictingFeedback,
    ExpiredSuggestion,
    FeedbackResult,
    InvalidRequest,
    OnlineError,
    Suggestion,
    UnknownExperiment,
    UnknownSuggestion,
)
from engine.online.rater import Rater
from engine.online.regression import PopulationModel
from engine.online.rewards import SIGNAL_REWARD, Feedback, Signal, quality_reward, terms, utility
from engine.online.service import OnlineEngine
from engine.online.user_gp import UserHistory

__all__ = [
    "MAX_ID",
    "SIGNAL_REWARD",
    "ConflictingFeedback",
    "ContextClusters",
    "ExpiredSuggestion",
    "Feedback",
    "FeedbackResult",
    "InvalidRequest",
    "OnlineEngine",
    "OnlineError",
    "OnlineModel",
    "PopulationModel",
    "Priors",
    "Rater",
    "Signal",
    "Suggestion",
    "UnknownExperiment",
    "UnknownSuggestion",
    "UserHistory",
    "quality_reward",
    "terms",
    "utility",
]
