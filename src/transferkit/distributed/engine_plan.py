"""What the workers' engine will be, resolved on the driver without building it (the driver may have no
GPU, and building an ONNX engine there would only cost time)."""

from __future__ import annotations

from dataclasses import dataclass

from ..engines.factory import ENGINES, INT8, onnxruntime_available, resolve_precision
from ..errors import AdvisedError, TransferkitError


@dataclass(frozen=True)
class PlannedEngine:
    name: str
    device: str
    precision: str


def planned_engine(engine: str, device: str, precision: str, gpus_per_worker: float) -> PlannedEngine:
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise TransferkitError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    worker_device = "cuda" if gpus_per_worker > 0 else "cpu"
    asked = (device or "auto").strip().lower()
    if asked not in ("auto", worker_device) and not (asked.startswith("cuda") and worker_device == "cuda"):
        raise AdvisedError("{o[device=@device]}: with {o[ray]} the workers' device follows {o[ray_gpus_per_worker]} "
                           "({worker_device} here)", device=device, worker_device=worker_device)
    precision = resolve_precision(precision, worker_device)
    if precision == INT8:  # ONNX Runtime on the CPU only (engines/onnx_int8.py)
        if engine == "torch" or worker_device != "cpu":
            raise AdvisedError("{o[precision=int8]} runs with ONNX Runtime on CPU workers; use {o[engine=auto]} (or "
                               "onnxruntime) and no {o[ray_gpus_per_worker]}")
        return PlannedEngine("onnxruntime", worker_device, precision)
    if engine == "auto":
        on_cpu_fp32 = worker_device == "cpu" and precision == "fp32"
        engine = "onnxruntime" if on_cpu_fp32 and onnxruntime_available() else "torch"
    elif engine == "onnxruntime" and (worker_device != "cpu" or precision != "fp32"):
        raise AdvisedError("{o[engine=onnxruntime]} runs on the CPU in fp32; use {o[engine=torch]} for GPU workers")
    return PlannedEngine(engine, worker_device, precision)
