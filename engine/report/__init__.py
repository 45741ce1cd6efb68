"""What an experiment's people read: its status and its tables exported (plots and reports
to come)."""

from engine.report.export import DECISIONS, EXPORTED, export_experiment
from engine.report.status import CONVERGED_LAST, CONVERGED_STARS, TREND_BUCKET, status

__all__ = [
    "CONVERGED_LAST",
    "CONVERGED_STARS",
    "DECISIONS",
    "EXPORTED",
    "TREND_BUCKET",
    "export_experiment",
    "status",
]
