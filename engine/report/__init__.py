"""What an experiment's people read: its status and its tables exported (plots and reports
to come)."""

from engine.report.agreement import AGREEMENT_BINS, rater_agreement
from engine.report.export import DECISIONS, EXPORTED, export_experiment, stored_spec
from engine.report.status import CONVERGED_LAST, CONVERGED_STARS, TREND_BUCKET, status
from engine.report.summary import LOW_STARS, feedback_summary

__all__ = [
    "AGREEMENT_BINS",
    "CONVERGED_LAST",
    "CONVERGED_STARS",
    "DECISIONS",
    "EXPORTED",
    "LOW_STARS",
    "TREND_BUCKET",
    "export_experiment",
    "feedback_summary",
    "rater_agreement",
    "status",
    "stored_spec",
]
