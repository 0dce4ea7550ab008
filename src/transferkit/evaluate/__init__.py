"""Metrics and reports."""

from .metrics import classification_metrics, format_report

__all__ = ["classification_metrics", "format_report"]
