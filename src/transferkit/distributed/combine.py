"""Combine the part files of a distributed extraction into one ordinary feature file.

The parts are COPIED, in shard order, through the writer that :func:`transferkit.extract` builds
for the single-process path (``make_writer``), so the result has the usual layout, chunking, provenance and
``complete`` flag, and nothing downstream needs to know it was made on a cluster.

Why a copy and not HDF5 virtual datasets: a virtual dataset keeps pointing at the part files by
path. Moving or copying the output would silently break it, the parts folder would have to live as
long as the output, and HDF5 reads a missing source as fill values (zeros) rather than failing. The
copy costs one sequential pass over the features (about 5 KB per image for a 1280-wide backbone,
i.e. 5 GB per million images), small next to the extraction itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .shards import PartsDir, Shard


def combine_parts(parts: PartsDir, shards: list[Shard], output: Path, *, make_writer: Callable, attrs: dict,
                  labels: np.ndarray, split: np.ndarray, rel_paths: list[str]) -> int:
    """Write ``output`` from the parts of ``shards``, in order; return the number of rows written.

    ``make_writer(path, attrs)`` returns the feature writer (a context manager with ``add``,
    ``add_skipped``, ``rows_written``, ``buffered_rows``), marking the file complete on a clean exit.
    """
    with make_writer(output, attrs) as writer:
        for shard in shards:
            part = parts.read(shard)
            for pos, reason in part["failures"]:
                writer.add_skipped(rel_paths[pos], reason)
            idx = part["index"]
            if len(idx):
                writer.add(part["features"], labels[idx], [rel_paths[p] for p in idx], split[idx])
        n_rows = writer.rows_written + writer.buffered_rows
    return n_rows


def run_summary(records: list[dict]) -> list[dict]:
    """Per driver run (in order of first appearance): how many shards it computed, on which hosts, in how
    many worker processes (more processes than workers means Ray restarted a worker)."""
    runs: dict[str, dict] = {}
    for r in records:
        run = runs.setdefault(r["run_id"], {"run_id": r["run_id"], "shards": 0, "hosts": set(), "processes": set()})
        run["shards"] += 1
        run["hosts"].add(r["host"])
        run["processes"].add((r["host"], r["pid"]))
    return [{"run_id": v["run_id"], "shards": v["shards"], "hosts": sorted(v["hosts"]),
             "worker_processes": len(v["processes"])} for v in runs.values()]
