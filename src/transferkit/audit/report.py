"""The old name of :mod:`transferkit.audit.outputs` (the audit's CSV, JSON and HTML), kept so that
``from transferkit.audit.report import csv_text, render_html`` still works."""

from .outputs import CSV_COLUMNS, as_json, csv_text, render_html, write_text  # noqa: F401
