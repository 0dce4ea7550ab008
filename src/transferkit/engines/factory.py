"""Pick and build the engine for a backbone: ``create_engine(backbone, engine, device, precision)``.

``auto`` means: on the CPU in fp32, ONNX Runtime (about 5x eager PyTorch for Lite0 on 2 cores);
on the CPU in bf16, PyTorch with bf16 autocast; on CUDA, PyTorch with fp16 autocast. A model that
cannot be exported to ONNX (or whose export does not reproduce PyTorch) falls back to PyTorch with a
warning, whether the ONNX engine was asked for or picked. ``int8`` (CPU, ONNX Runtime only) quantises the
fp32 graph on calibration images the caller passes (:mod:`.onnx_int8`); it never falls back.
"""

from __future__ import annotations

import importlib.util
import re
import warnings

from ..errors import AdvisedError, TransferkitError
from .pipeline import available_cpus
from .torch_engine import PRECISIONS, TorchEngine

ENGINES = ("auto", "onnxruntime", "torch")
INT8 = "int8"  # ONNX Runtime on the CPU only (engines/onnx_int8.py)


class EngineFallbackWarning(UserWarning):
    """The requested or preferred engine could not be used; another one runs instead."""


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda[:N]`` is checked to exist."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        raise TransferkitError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise AdvisedError("device {device}: no CUDA GPU is visible to PyTorch; use {o[device=cpu]}", device=device)
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise TransferkitError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def resolve_precision(precision: str | None, device: str) -> str:
    precision = (precision or "auto").strip().lower()
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision not in (*PRECISIONS, INT8):
        raise TransferkitError(f"unknown precision {precision!r}; choose from auto, {', '.join(PRECISIONS)}, {INT8}")
    return precision


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def create_engine(backbone, engine: str = "auto", device: str = "auto", precision: str | None = "auto",
                  threads: int | None = None, calibration=None):
    """A callable ``images (N,3,H,W) float32 -> features (N,D) float32`` with ``name``, ``device``,
    ``precision`` and ``describe()``. ``calibration``: image paths to calibrate ``int8`` on."""
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise TransferkitError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    int8 = (precision or "").strip().lower() == INT8
    if (engine == "onnxruntime" or int8) and (device or "auto").strip().lower() == "auto":
        device = "cpu"  # the ONNX engine runs on the CPU; auto must not pick a GPU and then refuse
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    threads = threads or available_cpus()
    on_cpu = device == "cpu"
    if precision == INT8:
        _check_int8(engine, device)
        from .onnx_engine import OnnxEngine

        return _int8(OnnxEngine(backbone, threads=threads), backbone.preprocess, calibration)
    if engine == "onnxruntime":
        if not on_cpu:
            raise AdvisedError(
                "{o[engine=onnxruntime]} runs on the CPU; for {device} use {o[engine=torch]} (or auto)", device=device
            )
        if precision != "fp32":
            raise AdvisedError(
                "{o[engine=onnxruntime]} runs in fp32 or int8; for {precision} use {o[engine=torch]} (or auto)",
                precision=precision,
            )
        if not onnxruntime_available():
            raise AdvisedError(
                "{o[engine=onnxruntime]} needs the onnx and onnxruntime packages: pip install onnx onnxruntime"
            )
    want_onnx = engine == "onnxruntime" or (
        engine == "auto" and on_cpu and precision == "fp32" and onnxruntime_available()
    )
    if want_onnx:
        from .onnx_engine import ExportError, OnnxEngine

        try:
            return OnnxEngine(backbone, threads=threads)
        except ExportError as exc:
            warnings.warn(
                f"{backbone.name}: cannot run with ONNX Runtime ({exc}); using the torch engine",
                EngineFallbackWarning,
                stacklevel=2,
            )
    return TorchEngine(backbone.features, device=device, threads=threads, precision=precision)


def _check_int8(engine: str, device: str) -> None:
    if engine == "torch" or device != "cpu":
        raise AdvisedError(
            "{o[precision=int8]} runs with ONNX Runtime on the CPU; use {o[engine=auto]} (or onnxruntime) and "
            "{o[device=cpu]}"
        )
    if not onnxruntime_available():
        raise AdvisedError("{o[precision=int8]} needs the onnx and onnxruntime packages: pip install onnx onnxruntime")


def _int8(fp32_engine, preprocess, calibration):
    from .onnx_int8 import Int8OnnxEngine

    if calibration is None:
        raise AdvisedError("{o[precision=int8]} needs images to calibrate on")
    return Int8OnnxEngine(fp32_engine, calibration, preprocess)


def resolve_batch_size(batch_size: int | str | None, engine, input_size: tuple[int, int] = (224, 224)) -> int:
    """An int as given; ``auto``: 32 on the CPU (throughput is flat beyond it on few cores while memory
    keeps growing), and on CUDA the largest power of two up to 256 whose forward pass fits in half the
    free GPU memory."""
    if batch_size is None:
        return 32
    if isinstance(batch_size, str):
        text = batch_size.strip().lower()
        if text != "auto":
            try:
                batch_size = int(text)
            except ValueError:
                raise TransferkitError(f"batch size must be a positive integer or 'auto', got {batch_size!r}") from None
        elif str(getattr(engine, "device", "cpu")).startswith("cuda"):
            return _cuda_batch_size(engine, input_size)
        else:
            return 32
    if int(batch_size) < 1:
        raise TransferkitError(f"batch size must be at least 1, got {batch_size}")
    return int(batch_size)


def pictures_per_batch(batch_size: int, preprocess) -> int:
    """Pictures per forward pass for ``batch_size`` network inputs: a ten-crop model runs ten views of each
    picture (five crops and their mirror images), so a batch holds a tenth of the pictures and its memory
    stays what ``batch_size`` inputs need (32 pictures x 10 views in one ONNX Runtime call: ~8 GB)."""
    return max(1, batch_size // 10) if preprocess.five_crop else batch_size


def _cuda_batch_size(engine, input_size: tuple[int, int], largest: int = 256) -> int:
    """Probe the engine on the GPU with doubling batches; stop before running out of memory."""
    import numpy as np
    import torch

    best, b = 8, 8
    while b <= largest:
        try:
            torch.cuda.reset_peak_memory_stats(engine.device)
            free, _ = torch.cuda.mem_get_info(engine.device)
            engine(np.zeros((b, 3, *input_size), np.float32))
            peak = torch.cuda.max_memory_allocated(engine.device)
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        best = b
        if peak * 4 > free:  # the next doubling (about 2x the peak) would not leave half the memory free
            break
        b *= 2
    return best


def cpu_only_machine() -> bool:
    """True when no GPU can be visible to PyTorch, told without importing it (Linux: no NVIDIA or AMD
    device nodes; macOS: never CUDA). False means "ask PyTorch"."""
    import glob
    import os
    import sys

    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        return not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg"))
    return False


def backbone_spec(model: str, *, weights=None, layer=None, pool=None) -> dict:
    """What a feature file of this request records about its backbone (:meth:`Backbone.spec`). When an
    earlier run exported this backbone, the ONNX cache's index knows it and PyTorch is never imported
    (see :func:`backbone_and_engine`); otherwise the network is built to find out."""
    import os

    from ..backbones.registry import create_backbone, normalise_weights
    from . import onnx_index

    weights = normalise_weights(weights)
    if os.environ.get("TRANSFERKIT_ONNX_INDEX", "1") != "0":
        keyed = onnx_index.request_key(model, weights, onnx_index.request(layer, pool))
        found = onnx_index.lookup(*keyed) if keyed else None
        if found:
            return found[0].spec()
    return create_backbone(model, weights=weights, layer=layer, pool=pool).spec()


def backbone_and_engine(
    model: str,
    *,
    weights=None,
    layer=None,
    pool=None,
    image_size=None,
    crop_pct=None,
    crop=None,
    preprocess=None,
    engine: str = "auto",
    device: str = "auto",
    precision: str | None = "auto",
    threads: int | None = None,
    calibration=None,
):
    """``(backbone, engine)`` for a request, as :func:`create_backbone` + :func:`create_engine` give them.

    When the request resolves to ONNX Runtime on the CPU and an earlier run exported this very backbone,
    the graph is opened straight from the cache and the backbone comes from the cache's index
    (:mod:`.onnx_index`): PyTorch is never imported (seconds and ~700 MB less per run). Its ``net`` and
    ``features`` are then None; everything a feature file or model records is there.
    ``TRANSFERKIT_ONNX_INDEX=0`` turns the index off (always build the network). ``calibration``: the image
    paths ``int8`` is calibrated on (a deterministic sample of them).
    """
    import os

    from ..backbones.registry import create_backbone, normalise_weights
    from . import onnx_index

    weights = normalise_weights(weights)
    engine_n, device_n, precision_n = ((v or "auto").strip().lower() for v in (engine, device, precision))
    on_cpu = device_n == "cpu" or (
        device_n == "auto" and (engine_n == "onnxruntime" or precision_n == INT8 or cpu_only_machine())
    )
    keyed = None
    if (
        os.environ.get("TRANSFERKIT_ONNX_INDEX", "1") != "0"
        and engine_n in ("auto", "onnxruntime")
        and on_cpu
        and precision_n in ("auto", "fp32", INT8)
        and onnxruntime_available()
    ):
        request = onnx_index.request(
            layer,
            pool,
            image_size,
            crop_pct,
            crop,
            preprocess.to_dict() if hasattr(preprocess, "to_dict") else preprocess,
        )
        keyed = onnx_index.request_key(model, weights, request)
        found = onnx_index.lookup(*keyed) if keyed else None
        if found:
            from .onnx_engine import OnnxEngine

            backbone, path = found
            fp32 = OnnxEngine.from_file(path, backbone.preprocess.array_size, threads)
            return backbone, _int8(fp32, backbone.preprocess, calibration) if precision_n == INT8 else fp32
    backbone = create_backbone(
        model,
        weights=weights,
        layer=layer,
        pool=pool,
        image_size=image_size,
        crop_pct=crop_pct,
        crop=crop,
        preprocess=preprocess,
    )
    built = create_engine(
        backbone, engine=engine, device=device, precision=precision, threads=threads, calibration=calibration
    )
    if keyed and built.name == "onnxruntime":
        # under the request as asked, and as `predict` will replay it from the recorded spec
        replay = onnx_index.request(backbone.layer, backbone.pool, preprocess=backbone.preprocess.to_dict())
        for key in {keyed[0], onnx_index.request_key(model, weights, replay)[0]}:
            onnx_index.record(key, backbone, getattr(built, "fp32_path", built.path))
    return backbone, built
