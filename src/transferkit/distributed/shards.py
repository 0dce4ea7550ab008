"""Shards of a distributed extraction: contiguous ranges of the images still to do, in dataset order.

A shard is the unit of work and of retry (a worker that dies has its shards run again). Finished
shards are drained in order (:mod:`.order`) into the extraction's working file, exactly as a local run
adds its batches, so resuming after a killed driver is the ordinary ``--resume`` of that file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TransferkitError


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def make_shards(n_images: int, shard_size: int) -> list[Shard]:
    """Contiguous ranges of at most ``shard_size`` images covering ``range(n_images)`` in order."""
    if shard_size < 1:
        raise TransferkitError(f"shard size must be at least 1, got {shard_size}")
    return [
        Shard(i, start, min(start + shard_size, n_images)) for i, start in enumerate(range(0, n_images, shard_size))
    ]
