"""Distributed extraction on a Ray cluster (optional: ``pip install transferkit[ray]``): a source of
feature batches that :func:`transferkit.extract` drains into its one working file.

Nothing here imports Ray at import time; :func:`ray_batches` connects when it runs.
"""

from .engine_plan import planned_engine
from .order import InOrder
from .ray_extract import RayOptions, RayReport, WorkerSetup, ray_batches
from .shards import Shard, make_shards

__all__ = ["InOrder", "planned_engine", "RayOptions", "RayReport", "Shard", "WorkerSetup", "make_shards",
           "ray_batches"]
