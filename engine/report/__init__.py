"""What an experiment's people read: its tables exported (and, to come, status, plots, reports)."""

from engine.report.export import DECISIONS, EXPORTED, export_experiment

__all__ = ["DECISIONS", "EXPORTED", "export_experiment"]
