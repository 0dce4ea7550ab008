"""Features of a list of image files, batch by batch: the decoding pipeline feeding an engine. The one loop
that extraction (local and on Ray workers), prediction and the report's image scoring share."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Sequence

from .pipeline import iter_batches

if TYPE_CHECKING:
    from ..backbones import PreprocessConfig

ProgressCallback = Callable[[int, int], None]  # (images done, images total); not store.working.Progress


def feature_batches(
    paths: Sequence[str | os.PathLike],
    preprocess: PreprocessConfig,
    engine,
    batch_size: int,
    workers: int | None,
    progress: ProgressCallback | None,
):
    """Yield (positions, features, failures) per batch, in input order."""
    done = 0
    for batch in iter_batches(paths, preprocess, batch_size=batch_size, workers=workers):
        feats = engine(batch.arrays) if batch.indices else None
        done += len(batch.indices) + len(batch.failures)
        if progress:
            progress(done, len(paths))
        yield batch.indices, feats, batch.failures
