"""Metrics and reports."""

from .._lazy import lazy_exports

__all__ = ["classification_metrics", "format_report"]
__getattr__, __dir__ = lazy_exports(__package__, dict.fromkeys(__all__, ".metrics"))
