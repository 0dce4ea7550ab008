"""What a feature file holds: provenance, rows per class and split, skipped files, completeness.
Works on incomplete files too (it shows what is there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.split import SPLIT_NAMES, SPLITS, STRATIFIED, describe_split_source
from .store import open_features


def describe_features(path: str | Path) -> dict:
    with open_features(path) as ff:
        attrs = ff.attrs
        names = ff.label_names
        labels, split = ff.labels, ff.split
        shown = [n for n in SPLIT_NAMES if n != "val" or np.any(split == SPLITS["val"])]  # val only when there is one
        classes = {
            name: {s: int(np.sum((labels == i) & (split == SPLITS[s]))) for s in shown}
            for i, name in enumerate(names)
        }
        return {
            "path": str(path),
            "complete": ff.complete,
            "n_rows": ff.n_rows,
            "feature_dim": ff.feature_dim,
            "layers": ff.layers,
            "dtype": str(ff.h5["features"].dtype),
            "compression": ff.h5["features"].compression,
            "progress": ff.progress,  # None once complete; else rows/inputs done of planned
            "extraction_request": None if ff.complete else ff.extraction_request(),  # what resuming takes
            "n_train": int(np.sum(split == 0)),
            "n_test": int(np.sum(split == 1)),
            "n_val": int(np.sum(split == SPLITS["val"])),
            "split_source": attrs.get("split_source") or STRATIFIED,
            "split_from": describe_split_source(attrs),
            "classes": classes,
            "skipped": [{"path": p, "reason": r} for p, r in ff.skipped],
            "provenance": {k: v for k, v in attrs.items() if k != "complete"},
            "file_bytes": Path(path).stat().st_size,
        }
