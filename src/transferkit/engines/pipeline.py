"""Decode and preprocess images in worker threads, ahead of the engine, and hand out batches in order.

Pillow releases the GIL while it decodes and resizes, so threads overlap decoding with inference
without copying pixels between processes. Batches always come out in input order; a file that
cannot be decoded is reported in its batch's ``failures`` and does not stop the run.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..backbones.preprocess import PreprocessConfig
from ..data.decode import DecodeError, load_image


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Batch:
    indices: list[int] = field(default_factory=list)  # positions in the input list, in order
    arrays: np.ndarray | None = None  # (len(indices), 3, H, W) float32
    failures: list[tuple[int, str]] = field(default_factory=list)  # (position, reason)


def _decode(path: Path, preprocess: PreprocessConfig) -> np.ndarray | str:
    try:
        return preprocess.to_array(load_image(path, min_size=preprocess.min_decode_size))
    except DecodeError as exc:
        return str(exc)


def iter_batches(
    paths: Sequence[str | os.PathLike],
    preprocess: PreprocessConfig,
    batch_size: int = 32,
    workers: int | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` objects covering ``paths`` in order."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    workers = workers or available_cpus()
    lookahead = 2 * batch_size + 2 * workers  # bounded: memory stays ~2 batches of pixels
    h, w = preprocess.array_size
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transferkit-decode") as pool:
        pending: deque = deque()
        next_submit = 0

        def fill():
            nonlocal next_submit
            while next_submit < len(paths) and len(pending) < lookahead:
                pending.append((next_submit, pool.submit(_decode, Path(paths[next_submit]), preprocess)))
                next_submit += 1

        fill()
        batch, arrays = Batch(), []
        while pending:
            index, future = pending.popleft()
            result = future.result()
            fill()
            if isinstance(result, str):
                batch.failures.append((index, result))
            else:
                batch.indices.append(index)
                arrays.append(result)
            if len(batch.indices) == batch_size:
                batch.arrays = np.stack(arrays)
                yield batch
                batch, arrays = Batch(), []
        if batch.indices or batch.failures:
            batch.arrays = np.stack(arrays) if arrays else np.empty((0, 3, h, w), np.float32)
            yield batch
