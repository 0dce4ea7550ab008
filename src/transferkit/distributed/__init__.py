"""Distributed extraction on a Ray cluster (optional: ``pip install transferkit[ray]``).

Nothing here imports Ray at import time; :func:`run_on_ray` connects when it runs.
"""

from .engine_plan import planned_engine
from .ray_extract import RayExtractResult, RayOptions, run_on_ray
from .shards import PartsDir, Shard, make_shards

__all__ = ["planned_engine", "PartsDir", "RayExtractResult", "RayOptions", "Shard", "make_shards", "run_on_ray"]
