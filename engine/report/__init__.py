"""What an experiment's people read: its status, analytics, reports with plots (HTML and
PDF), and its tables exported."""

from engine.report.agreement import AGREEMENT_BINS, rater_agreement
from engine.report.document import FORMATS, MEDIA_TYPES, Report, render, write_report
from engine.report.export import DECISIONS, EXPORTED, export_experiment, stored_spec
from engine.report.gather import ReportData, gather, learnt, read_store
from engine.report.status import CONVERGED_LAST, CONVERGED_STARS, TREND_BUCKET, status
from engine.report.summary import LOW_STARS, feedback_summary

__all__ = [
    "AGREEMENT_BINS",
    "CONVERGED_LAST",
    "CONVERGED_STARS",
    "DECISIONS",
    "EXPORTED",
    "FORMATS",
    "LOW_STARS",
    "MEDIA_TYPES",
    "TREND_BUCKET",
    "Report",
    "ReportData",
    "export_experiment",
    "feedback_summary",
    "gather",
    "learnt",
    "rater_agreement",
    "read_store",
    "render",
    "status",
    "stored_spec",
    "write_report",
]
