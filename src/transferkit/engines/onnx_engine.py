"""Run a backbone's feature module with ONNX Runtime, exported once and cached.

The feature module (images N x 3 x H x W -> features N x D) is exported by
:func:`.onnx_export.export_graph` (the same pipeline as ``transferkit export``), with a fixed H x W.
Before the file enters the cache, ONNX Runtime's output on a probe batch is compared with PyTorch fp32;
a model that does not match, or that cannot be exported at all, raises :class:`ExportError` (the engine
factory then falls back to torch).

Cache: ``$TRANSFERKIT_CACHE_DIR/onnx`` (default ``~/.cache/transferkit/onnx``), one ``<key>.onnx``
with a ``<key>.json`` beside it describing what it holds. The key hashes the model name, the weights'
recorded hash *and* the bytes of the tensors actually exported, the layer, the pooling, the input
size, the module's structure, and the versions of torch, timm, onnx, onnxslim and onnxruntime, so a
change in any of them exports again instead of replaying a stale graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..atomicfile import atomic_path, atomic_write_text
from ..backbones.weights import state_dict_sha256
from ..versions import ONNX_GRAPH, library_versions
from .onnx_export import OPSET, ExportError, export_graph, probe_batch, tolerance  # noqa: F401  (re-exported)
from .pipeline import available_cpus

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the way we export changes, to invalidate every cached file


def cache_dir() -> Path:
    root = os.environ.get("TRANSFERKIT_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "transferkit"
    return base / "onnx"


def cache_key(backbone, input_size: tuple[int, int]) -> tuple[str, dict]:
    """(hex key, the JSON-able description it hashes)."""
    desc = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "model": backbone.name,
        "weights_sha256": backbone.weights_sha256,
        "tensors_sha256": state_dict_sha256(backbone.features),  # the tensors actually exported
        "structure_sha256": hashlib.sha256(repr(backbone.features).encode()).hexdigest(),
        "layer": backbone.layer,
        "pool": backbone.pool,
        "input_size": [int(v) for v in input_size],
        "versions": library_versions(ONNX_GRAPH, missing="-"),
    }
    key = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]
    return f"{backbone.name.replace('/', '_')}-{key}", desc


def _session(path: Path, threads: int, providers: list[str] | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Do not let idle ORT threads spin: decoding threads share these cores and need them between batches.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


class OnnxEngine:
    """``engine(images N x 3 x H x W float32) -> features N x D float32`` through ONNX Runtime."""

    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, backbone, input_size: tuple[int, int] | None = None, threads: int | None = None,
                 cache: Path | None = None, verify: bool = True):
        import onnxruntime  # noqa: F401  (fail early, before exporting, when it is not installed)

        self.input_size = tuple(input_size or backbone.preprocess.array_size)
        self.threads = threads or available_cpus()
        self.device = "cpu"
        key, desc = cache_key(backbone, self.input_size)
        folder = Path(cache) if cache else cache_dir()
        self.path = folder / f"{key}.onnx"
        self.cache_hit = self.path.exists()
        if not self.cache_hit:
            self._export(backbone, folder, desc, verify)
        self.session = _session(self.path, self.threads)
        self._input = self.session.get_inputs()[0].name

    @classmethod
    def from_file(cls, path: Path, input_size: tuple[int, int], threads: int | None = None) -> "OnnxEngine":
        """The engine for a graph already in the cache (found through :mod:`.onnx_index`: no PyTorch)."""
        self = cls.__new__(cls)
        self.input_size = tuple(input_size)
        self.threads = threads or available_cpus()
        self.device = "cpu"
        self.path = Path(path)
        self.cache_hit = True
        self.session = _session(self.path, self.threads)
        self._input = self.session.get_inputs()[0].name
        return self

    def _export(self, backbone, folder: Path, desc: dict, verify: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # a unique temporary name: a concurrent run may be exporting the same graph; it sees a whole file or none
        with atomic_path(self.path, unique=True, sync=False) as tmp:
            facts = export_graph(backbone.features, self.input_size, tmp, check=verify)
            meta = json.dumps({**desc, **facts}, indent=2, sort_keys=True)
            atomic_write_text(folder / f"{self.path.stem}.json", meta, unique=True, sync=False)
        log.info("exported %s to %s (%s)", backbone.name, self.path, facts)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.empty((0, 0), np.float32)
        x = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0]

    def describe(self) -> dict:
        return {"engine": self.name, "device": self.device, "precision": self.precision, "threads": self.threads}
