"""Feature batches computed on a Ray cluster: shards of the image list go to actors that hold the backbone.

Design (see docs/distributed.md):

- Ray is only a source of feature batches. :func:`transferkit.extract` does everything else exactly as
  for a local run: the mode (new, ``--resume``, ``--update``, ``--overwrite``), the dataset, the split,
  the settings check, the lock, the crash-safe working file and the finished file
  (:class:`transferkit.store.ExtractionRun`). :func:`ray_batches` takes the place of
  :func:`transferkit.engines.batches.feature_batches`: it yields ``(positions, features, failures)``
  in input order, one shard at a time, so the driver drains finished shards in order into the same
  working file, and a killed driver resumes like a killed local run (committed rows are not redone).
- Workers are plain Ray actors (:class:`.worker.ShardWorker`), each holding one backbone, fed shard by
  shard (two shards queued per actor, so an actor never waits for the driver between shards). Ray
  restarts an actor whose process dies (``max_restarts``) and retries the shards it was running
  (``max_task_retries``); the restarted actor reloads the backbone and carries on.
- A finished shard travels back through the object store (a few MB). Shards that finish before the
  ones ahead of them wait in the driver (:class:`.order.InOrder`), within a bounded window.

Why actors and not Ray Data's ``map_batches``: the shard is our unit of retry and of order, and Ray
Data chooses its own block boundaries; its streaming executor also reserves CPUs for read and map
tasks, which deadlocks a small cluster (two CPUs, two actors) unless actors get fractional CPUs.
Plain actors on a queue have no such interplay, start faster, and keep the decode + inference
pipeline of the single-process path inside every worker.
"""

from __future__ import annotations

import logging
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import AdvisedError, TransferkitError, first_line
from .order import InOrder
from .shards import make_shards
from .spec import spec_sha256
from .worker import ShardWorker

NAMESPACE = "transferkit"
IN_FLIGHT_PER_WORKER = 2
WINDOW_PER_WORKER = 8  # shards sent ahead of the first unfinished one, per worker (bounds what the driver holds)


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
            raise AdvisedError("{o[ray]} needs 'auto', 'local' or a cluster address (host:port)")
        if self.workers is not None and self.workers < 1:
            raise AdvisedError("{o[ray_workers]} must be at least 1, got {got}", got=self.workers)
        if self.cpus_per_worker <= 0:
            raise AdvisedError("{o[ray_cpus_per_worker]} must be positive, got {got}", got=self.cpus_per_worker)
        if self.gpus_per_worker < 0:
            raise AdvisedError("{o[ray_gpus_per_worker]} must be 0 or more, got {got}", got=self.gpus_per_worker)
        if self.shard_size < 1:
            raise AdvisedError("{o[ray_shard_size]} must be at least 1, got {got}", got=self.shard_size)


@dataclass
class WorkerSetup:
    """What every worker builds and runs, decided once on the driver."""

    backbone_kwargs: dict  # create_backbone(**backbone_kwargs), as the driver did
    engine_kwargs: dict  # engine, precision and (int8) calibration images, as the driver resolved them
    batch_size: int
    decode_workers: int | None
    dataset_root: str
    spec: dict  # the driver's backbone spec: a worker with another network refuses to run
    engine: object  # the driver's (planned) engine: name, precision and, for int8, its calibration


@dataclass
class RayReport:
    """What a Ray run did, for the result and the file's ``ray`` attribute."""

    shard_size: int
    cpus_per_worker: float
    gpus_per_worker: float
    shards: int = 0
    workers: int = 0
    hosts: list[str] = field(default_factory=list)
    worker_processes: int = 0  # more than ``workers``: Ray restarted a worker that died

    def to_dict(self) -> dict:
        return dict(self.__dict__)


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
        raise AdvisedError(
            "{o[ray=@address]}: nothing answers at {target}; is the head node up (`ray start --head`)?",
            address=address, target=target,
        )
    try:
        if target is None:
            ray.init(include_dashboard=False, **common)  # a new single-machine cluster, gone when we finish
        else:
            ray.init(address=target, **common)
    except (ConnectionError, ValueError, TimeoutError) as exc:
        why = first_line(exc, 1000)
        if "InvalidAuthToken" in repr(exc.__cause__) or "Authentication" in type(exc.__cause__).__name__:
            why = (
                "the cluster uses token authentication: set RAY_AUTH_MODE=token and give the token in "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token"
            )
        raise AdvisedError(
            "{o[ray=@address]}: cannot connect to a Ray cluster ({why})", address=address, why=why
        ) from None
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
        raise AdvisedError(
            "{n} Ray workers x ({c:g} CPU, {g:g} GPU) need {need_cpus:g} CPUs and {need_gpus:g} GPUs; the cluster "
            "has {cpus:g} CPUs and {gpus:g} GPUs (lower {o[ray_workers]} or the per-worker resources)",
            n=n, c=c, g=g, need_cpus=n * c, need_gpus=n * g, cpus=cpus, gpus=gpus,
        )
    return max(1, min(n, n_todo))


def ray_batches(
    paths: Sequence[str],
    setup: WorkerSetup,
    options: RayOptions,
    progress: Callable[[int, int], None] | None = None,
    report: RayReport | None = None,
):
    """Yield ``(positions, features, failures)`` for ``paths`` shard by shard, in order, computed on Ray
    (positions index ``paths``, as :func:`transferkit.engines.batches.feature_batches` yields them).
    ``report`` (optional) is filled in with the shards, workers and hosts of the run."""
    options.validate()
    report = report if report is not None else RayReport(options.shard_size, options.cpus_per_worker,
                                                         options.gpus_per_worker)
    shards = make_shards(len(paths), options.shard_size)
    report.shards = len(shards)
    if not shards:
        return
    run_id = uuid.uuid4().hex[:12]
    with ray_session(options.address) as ray:
        from ray.exceptions import RayActorError, RayTaskError

        n_workers = _worker_count(ray, options, len(shards))
        report.workers = n_workers
        actors = _start_workers(ray, setup, options, n_workers, run_id)
        order = InOrder(WINDOW_PER_WORKER * n_workers)
        pending: dict = {}  # object ref -> (shard, actor)
        idle: list = []
        next_shard = 0
        done = 0
        seen: set = set()

        def send(actor) -> bool:
            nonlocal next_shard
            if next_shard >= len(shards) or not order.may_send(next_shard):
                return False
            shard = shards[next_shard]
            next_shard += 1
            pending[actor.run.remote(shard.start, list(paths[shard.start : shard.stop]))] = (shard, actor)
            return True

        try:
            for _ in range(IN_FLIGHT_PER_WORKER):
                for actor in actors:
                    send(actor)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard, actor = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except RayTaskError as exc:
                    if isinstance(exc.cause, AdvisedError):  # keeps its facts: the CLI words its options as flags
                        raise exc.cause.with_traceback(None) from None
                    if isinstance(exc.cause, TransferkitError):
                        raise TransferkitError(str(exc.cause)) from None
                    raise
                except RayActorError as exc:
                    raise AdvisedError(
                        "shard {shard} (images {first}-{last} of this run): its Ray worker died {times} times "
                        "({why}); the rows before it are kept: rerun with {o[resume!]}",
                        shard=shard.index, first=shard.start, last=shard.stop - 1,
                        times=options.max_restarts + 1, why=first_line(exc),
                    ) from None
                _check_same_engine(result, setup.engine)
                seen.add((result.get("host", ""), int(result.get("pid", -1))))
                report.hosts, report.worker_processes = sorted({h for h, _ in seen}), len(seen)
                order.put(shard.index, (shard, result))
                if not send(actor):
                    idle.append(actor)
                for _, (s, r) in order.ready():
                    done += s.size
                    if progress:
                        progress(done, len(paths))
                    # the worker numbered its rows and failures from the shard's start: positions in ``paths``
                    yield [int(i) for i in r["index"]], r["features"], [(int(i), why) for i, why in r["failures"]]
                while idle and send(idle[-1]):
                    idle.pop()
        finally:
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass


def _start_workers(ray, setup: WorkerSetup, options: RayOptions, n_workers: int, run_id: str) -> list:
    gpus = options.gpus_per_worker
    threads = max(1, int(options.cpus_per_worker))
    remote = ray.remote(concurrency_groups={"control": 1})(ShardWorker)
    kwargs = dict(
        backbone_kwargs=setup.backbone_kwargs,
        engine_kwargs=setup.engine_kwargs,
        device="cuda" if gpus > 0 else "cpu",
        threads=threads,
        decode_workers=setup.decode_workers or threads,
        batch_size=setup.batch_size,
        dataset_root=setup.dataset_root,
        spec_sha256=spec_sha256(setup.spec),
    )
    return [
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


def _check_same_engine(result: dict, engine) -> None:
    """A worker must run the engine the file records (no silent fallback; int8: the same quantised graph)."""
    name = getattr(engine, "name", None)
    if name and result.get("engine") not in (None, name):
        raise AdvisedError(
            "worker on {host}: ran the {ran} engine, not {planned} as planned (an engine fallback on that node?); "
            "pass {o[engine]} explicitly",
            host=str(result.get("host")), ran=str(result["engine"]), planned=str(name),
        )
    want = getattr(engine, "calibration", None)
    got = result.get("calibration")
    if want is not None and (got or {}).get("graph") != want.get("graph"):
        raise TransferkitError(
            f"worker on {result.get('host')}: its int8 graph ({(got or {}).get('graph')}) is not the driver's "
            f"({want.get('graph')}); install the same transferkit, onnx and onnxruntime on every node"
        )
