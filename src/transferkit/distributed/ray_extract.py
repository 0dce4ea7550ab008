"""Run an extraction on a Ray cluster: shards of the image list go to actors that hold the backbone.

Design (see docs/distributed.md):

- The driver does everything that decides the result: it discovers the dataset, computes the split
  (once, over all files, exactly as the single-process path), cuts the image list into contiguous
  shards, and writes every part file and the final output. Workers only compute features.
- Workers are plain Ray actors (``ShardWorker``), each holding one backbone, fed shard by shard
  (two shards queued per actor, so an actor never waits for the driver between shards). Ray restarts
  an actor whose process dies (``max_restarts``) and retries the shards it was running
  (``max_task_retries``); the restarted actor reloads the backbone and carries on.
- A finished shard travels back through the object store (a few MB) and becomes one part file,
  written atomically by the driver. ``--resume`` after a dead driver recomputes only the shards
  without a part file. Then the parts are copied, in order, into one ordinary feature file.

Why actors and not Ray Data's ``map_batches``: the shard is our unit of retry, of resume and of
output, and Ray Data chooses its own block boundaries and bundles rows into blocks as it likes, so
"which shards are done" would be guesswork; its streaming executor also reserves CPUs for read and
map tasks, which deadlocks a small cluster (two CPUs, two actors) unless actors get fractional CPUs.
Plain actors on a queue have no such interplay, start faster, and keep the decode + inference
pipeline of the single-process path inside every worker.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TransferkitError
from ..extract_result import ExtractResult
from ..store import open_features
from .combine import combine_parts, run_summary
from .shards import PartsDir, listing_sha256, make_shards
from .spec import spec_sha256
from .worker import ShardWorker

NAMESPACE = "transferkit"
IN_FLIGHT_PER_WORKER = 2


@dataclass
class RayOptions:
    """How to run on Ray. ``address``: "auto" (the cluster this machine belongs to, else a new local
    one), "local" (always a new local one), or a cluster address such as "10.0.0.5:6379"."""

    address: str = "auto"
    workers: int | None = None  # None: as many as the cluster's CPUs (or GPUs) allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    shard_size: int = 256
    max_restarts: int = 3  # per worker process that dies
    max_task_retries: int = 3  # per shard whose worker died

    def validate(self) -> None:
        if not self.address:
            raise TransferkitError("--ray needs 'auto', 'local' or a cluster address (host:port)")
        if self.workers is not None and self.workers < 1:
            raise TransferkitError(f"--ray-workers must be at least 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise TransferkitError(f"--ray-cpus-per-worker must be positive, got {self.cpus_per_worker}")
        if self.gpus_per_worker < 0:
            raise TransferkitError(f"--ray-gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if self.shard_size < 1:
            raise TransferkitError(f"--ray-shard-size must be at least 1, got {self.shard_size}")


@dataclass
class RayExtractResult(ExtractResult):
    n_shards: int = 0
    shards_reused: int = 0  # finished by an earlier, interrupted run and kept
    workers: int = 0
    hosts: list[str] = field(default_factory=list)


def _listening(address: str, timeout: float = 5.0) -> bool:
    """Whether something accepts connections at ``host:port`` (Ray itself retries a dead address for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return True  # not host:port (e.g. ray://...): let Ray judge it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _running_cluster() -> str | None:
    """The address of the cluster this machine belongs to (RAY_ADDRESS, or the one `ray start` recorded), if it
    is up."""
    try:
        from ray._private.services import get_ray_address_from_environment

        address = get_ray_address_from_environment("auto", None)
    except Exception:  # none recorded (or Ray moved its helper): treat as no cluster
        return None
    return address if address and address != "auto" and _listening(address) else None


@contextmanager
def ray_session(address: str):
    """Connect to (or start) Ray; disconnect afterwards only if we connected.

    A process that has already called ``ray.init`` keeps its connection (``address`` is then not used).
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    common = dict(namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
    target = _running_cluster() if address == "auto" else None if address == "local" else address
    if target is not None and not _listening(target):
        raise TransferkitError(
            f"--ray {address}: nothing answers at {target}; is the head node up (`ray start --head`)?"
        )
    try:
        if target is None:
            ray.init(include_dashboard=False, **common)  # a new single-machine cluster, gone when we finish
        else:
            ray.init(address=target, **common)
    except (ConnectionError, ValueError, TimeoutError) as exc:
        why = str(exc).splitlines()[0]
        if "InvalidAuthToken" in repr(exc.__cause__) or "Authentication" in type(exc.__cause__).__name__:
            why = (
                "the cluster uses token authentication: set RAY_AUTH_MODE=token and give the token in "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token"
            )
        raise TransferkitError(f"--ray {address}: cannot connect to a Ray cluster ({why})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _worker_count(ray, options: RayOptions, n_todo: int) -> int:
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    c, g = options.cpus_per_worker, options.gpus_per_worker
    n = options.workers
    if n is None:
        n = int(gpus // g) if g > 0 else int(cpus // c)
        if n < 1:
            what = f"{g:g} GPU" if g > 0 else f"{c:g} CPU"
            raise TransferkitError(f"the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs) cannot fit one worker of {what}")
    # Actors that do not fit would wait for resources forever: refuse instead of hanging.
    if n * c > cpus + 1e-9 or n * g > gpus + 1e-9:
        raise TransferkitError(
            f"{n} Ray workers x ({c:g} CPU, {g:g} GPU) need {n * c:g} CPUs and {n * g:g} GPUs; the cluster has "
            f"{cpus:g} CPUs and {gpus:g} GPUs (lower --ray-workers or the per-worker resources)"
        )
    return max(1, min(n, n_todo))


def run_on_ray(
    *,
    dataset,
    labels: np.ndarray,
    split: np.ndarray,
    backbone,
    attrs: dict,
    output: Path,
    options: RayOptions,
    backbone_kwargs: dict,
    engine_kwargs: dict,
    make_writer: Callable,
    batch_size: int,
    workers: int | None,
    overwrite: bool,
    resume: bool,
    progress: Callable[[int, int], None] | None,
) -> RayExtractResult:
    """Extract ``dataset`` on Ray into ``output``.

    Everything that decides the result comes from :func:`transferkit.extract`, computed once on the
    driver: ``labels``, ``split``, the provenance ``attrs``, ``backbone_kwargs`` (what every worker passes
    to ``create_backbone``), ``engine_kwargs`` (to the worker's engine), and ``make_writer(path, attrs)``,
    the writer of the final file.
    """
    options.validate()
    start_time = time.perf_counter()
    output = Path(output)
    n = len(dataset)
    rel_paths = [s.path for s in dataset.samples]
    root = Path(dataset.root).resolve()
    abs_paths = [str(root / p) for p in rel_paths]

    parts = PartsDir(output)
    if parts.path.exists() and not (resume or overwrite):
        raise TransferkitError(
            f"{parts.path}: an interrupted distributed extraction left its finished shards here; pass --resume to "
            "continue it, or --overwrite to start over"
        )
    if resume and not parts.exists() and output.exists():
        with open_features(output) as ff:
            done = ff.complete
        raise TransferkitError(
            f"{output}: already complete, nothing to resume"
            if done
            else f"{output}: no finished shards to resume from ({parts.path} is missing); "
            "pass --overwrite to start over"
        )
    settings = {
        **attrs,
        "shard_size": int(options.shard_size),
        "listing_sha256": listing_sha256(rel_paths, labels, dataset.class_names),
    }
    parts.open(settings, resume=resume)
    try:
        if overwrite and output.exists():
            output.unlink()
        shards = make_shards(n, options.shard_size)
        todo = [s for s in shards if not parts.is_done(s)]
        reused = len(shards) - len(todo)
        done_images = sum(s.size for s in shards) - sum(s.size for s in todo)
        if progress:
            progress(done_images, n)
        n_workers = 0
        if todo:
            n_workers = _compute_shards(
                todo,
                parts,
                abs_paths,
                backbone,
                options,
                attrs=attrs,
                backbone_kwargs=backbone_kwargs,
                engine_kwargs=engine_kwargs,
                batch_size=batch_size,
                decode_workers=workers,
                root=str(root),
                done_images=done_images,
                n_images=n,
                progress=progress,
            )
        ray_attrs = {
            "shard_size": int(options.shard_size),
            "n_shards": len(shards),
            "workers": n_workers,
            "cpus_per_worker": options.cpus_per_worker,
            "gpus_per_worker": options.gpus_per_worker,
        }
        runs = run_summary([parts.record(s) for s in shards])
        ray_attrs["runs"] = runs
        n_rows = combine_parts(
            parts,
            shards,
            output,
            make_writer=make_writer,
            attrs={**attrs, "ray": ray_attrs},
            labels=labels,
            split=split,
            rel_paths=rel_paths,
        )
    except BaseException:
        if any(parts.path.glob("part-*.h5")):
            parts.close()  # keep the finished shards for --resume
        else:
            parts.remove()  # nothing finished (e.g. no cluster reachable): leave no trace
        raise
    parts.remove()  # the output is complete: the parts are redundant now
    seconds = time.perf_counter() - start_time
    with open_features(output) as ff:
        written_split, skipped = ff.split, ff.skipped
    return RayExtractResult(
        path=output,
        n_images=n,
        n_rows=n_rows,
        skipped=skipped,
        seconds=seconds,
        class_counts=dataset.counts(),
        n_train=int((written_split == 0).sum()),
        n_test=int((written_split == 1).sum()),
        n_shards=len(shards),
        shards_reused=reused,
        workers=n_workers,
        hosts=sorted({h for r in runs for h in r["hosts"]}),
    )


def _compute_shards(
    todo,
    parts: PartsDir,
    abs_paths,
    backbone,
    options: RayOptions,
    *,
    attrs,
    backbone_kwargs,
    engine_kwargs,
    batch_size,
    decode_workers,
    root,
    done_images,
    n_images,
    progress,
) -> int:
    """Run ``todo`` shards on Ray workers, writing each part as it arrives; return the number of workers."""
    run_id = uuid.uuid4().hex[:12]
    with ray_session(options.address) as ray:
        from ray.exceptions import RayActorError, RayTaskError

        n_workers = _worker_count(ray, options, len(todo))
        gpus = options.gpus_per_worker
        threads = max(1, int(options.cpus_per_worker))
        remote = ray.remote(concurrency_groups={"control": 1})(ShardWorker)
        kwargs = dict(
            backbone_kwargs=backbone_kwargs,
            engine_kwargs=engine_kwargs,
            device="cuda" if gpus > 0 else "cpu",
            threads=threads,
            decode_workers=decode_workers or threads,
            batch_size=batch_size,
            dataset_root=root,
            spec_sha256=spec_sha256(backbone.spec()),
        )
        actors = [
            remote.options(
                name=f"extract-{run_id}-w{i}",
                namespace=NAMESPACE,
                num_cpus=options.cpus_per_worker,
                num_gpus=gpus,
                max_restarts=options.max_restarts,
                max_task_retries=options.max_task_retries,
                scheduling_strategy="SPREAD",
            ).remote(**kwargs)
            for i in range(n_workers)
        ]
        queue = deque(todo)
        pending: dict = {}

        def submit(actor) -> None:
            if queue:
                shard = queue.popleft()
                pending[actor.run.remote(shard.start, abs_paths[shard.start : shard.stop])] = (shard, actor)

        try:
            for _ in range(IN_FLIGHT_PER_WORKER):
                for actor in actors:
                    submit(actor)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard, actor = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except RayTaskError as exc:
                    if isinstance(exc.cause, TransferkitError):
                        raise TransferkitError(str(exc.cause)) from None
                    raise
                except RayActorError as exc:
                    raise TransferkitError(
                        f"shard {shard.index} (images {shard.start}-{shard.stop - 1}): its Ray worker died "
                        f"{options.max_restarts + 1} times ({str(exc).splitlines()[0][:200]}); the finished shards are "
                        f"kept in {parts.path}: rerun with --resume"
                    ) from None
                if attrs.get("engine") and result.get("engine") not in (None, attrs["engine"]):
                    raise TransferkitError(
                        f"worker on {result.get('host')}: ran the {result['engine']} engine, not {attrs['engine']} "
                        "as planned (an engine fallback on that node?); pass --engine explicitly"
                    )
                parts.write(shard, result, backbone.feature_dim, run_id)
                done_images += shard.size
                if progress:
                    progress(done_images, n_images)
                submit(actor)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # already gone
                    pass
    return n_workers
