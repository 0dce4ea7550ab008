"""Run a backbone's feature module with ONNX Runtime, exported once and cached.

The feature module (images N x 3 x H x W -> features N x D) is exported with a dynamic batch
dimension and a fixed H x W, after its run-time "same" padding is made constant
(:mod:`.static_pad`) and the graph simplified with onnxslim. Before the file enters the cache, ONNX
Runtime's output on a probe batch is compared with PyTorch fp32; a model that does not match, or that
cannot be exported at all, raises :class:`ExportError` (the engine factory then falls back to torch).

Cache: ``$TRANSFERKIT_CACHE_DIR/onnx`` (default ``~/.cache/transferkit/onnx``), one ``<key>.onnx``
with a ``<key>.json`` beside it describing what it holds. The key hashes the model name, the weights'
recorded hash *and* the bytes of the tensors actually exported, the layer, the pooling, the input
size, the module's structure, and the versions of torch, timm, onnx, onnxslim and onnxruntime, so a
change in any of them exports again instead of replaying a stale graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..atomicfile import atomic_path, atomic_write_text
from ..backbones.weights import state_dict_sha256
from ..errors import first_line
from ..versions import ONNX_GRAPH, library_versions
from .pipeline import available_cpus

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the way we export changes, to invalidate every cached file
OPSET = 17
PROBE_BATCH = 3
ATOL = 1e-4  # max |onnx - torch| allowed at export, scaled up for outputs larger than 1 in magnitude


@contextlib.contextmanager
def _native_stderr_silenced():
    """The TorchScript exporter prints the whole graph to the C++ stderr when it fails; we report the
    failure in one line instead. (Process-wide for its duration: export runs before any worker.)"""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class ExportError(RuntimeError):
    """The module cannot be exported to ONNX, or the export does not reproduce PyTorch."""


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


def probe_batch(input_size: tuple[int, int], n: int = PROBE_BATCH) -> np.ndarray:
    """Deterministic images in the range a normalised picture takes (about -2.5 .. 2.5)."""
    return np.random.default_rng(0).uniform(-2.5, 2.5, (n, 3, *input_size)).astype(np.float32)


def _torch_reference(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).float().numpy()


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def tolerance(reference: np.ndarray) -> float:
    return ATOL * max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)


def export_onnx(module, input_size: tuple[int, int], path: Path) -> dict:
    """Export ``module`` (fp32, eval) to ``path``; return facts about the export. Raises ExportError."""
    import warnings

    import torch

    from .static_pad import freeze_same_padding

    t0 = time.perf_counter()
    try:
        frozen, n_frozen = freeze_same_padding(module, input_size)
        frozen = frozen.float().eval()
        example = torch.from_numpy(probe_batch(input_size, 2))
        with warnings.catch_warnings(), _native_stderr_silenced():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                frozen, (example,), str(path), dynamo=False, opset_version=OPSET,
                input_names=["images"], output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        raise ExportError(f"{type(exc).__name__}: {first_line(exc)}") from exc
    facts = {"padding_layers_frozen": n_frozen, "export_seconds": round(time.perf_counter() - t0, 2)}
    try:
        import onnx
        import onnxslim

        model = onnx.load(str(path))
        facts["nodes_exported"] = len(model.graph.node)
        slim = onnxslim.slim(model)
        onnx.save(slim, str(path))
        facts["nodes"] = len(slim.graph.node)
    except ImportError:
        facts["nodes"] = facts.get("nodes_exported")
    except Exception as exc:  # a simplifier failure is not fatal: the exported graph is still right
        log.warning("onnxslim could not simplify the graph (%s); using it as exported", exc)
    return facts


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

        self.input_size = tuple(input_size or backbone.preprocess.input_size)
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
            facts = export_onnx(backbone.features, self.input_size, tmp)
            if verify:
                x = probe_batch(self.input_size)
                ref = _torch_reference(backbone.features, x)
                try:
                    got = _session(tmp, self.threads).run(None, {"images": x})[0]
                except Exception as exc:
                    raise ExportError(f"ONNX Runtime cannot run the exported graph ({exc})") from exc
                if got.shape != ref.shape:
                    raise ExportError(f"exported graph gives shape {got.shape}, PyTorch {ref.shape}")
                diff, tol = max_difference(got, ref), tolerance(ref)
                if not diff <= tol:
                    raise ExportError(f"exported graph differs from PyTorch by {diff:.3g} (allowed {tol:.3g})")
                facts["max_abs_diff"] = diff
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
