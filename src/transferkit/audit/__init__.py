"""Auditing a feature file: label issues, duplicates and train/test leakage, outliers.

- :mod:`.neighbours`: exact blockwise cosine nearest neighbours in NumPy (bounded memory);
- :mod:`.label_issues`: confident-learning scores on out-of-fold probabilities;
- :mod:`.duplicates`: exact and near-duplicate pairs, leakage across train/test;
- :mod:`.outliers`: rows far from their nearest neighbours;
- :mod:`.run`: the :func:`audit` verb; :mod:`.outputs`: CSV, JSON and HTML (``.report`` is its old name).
"""

from .._lazy import lazy_exports

__all__ = ["AuditResult", "Finding", "audit"]
__getattr__, __dir__ = lazy_exports(__package__, dict.fromkeys(__all__, ".run"))
