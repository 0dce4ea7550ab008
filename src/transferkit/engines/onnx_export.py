"""The one way a PyTorch module becomes an ONNX graph, for the feature cache (:mod:`.onnx_engine`) and
for ``transferkit export`` (:mod:`transferkit.export`) alike.

1. Run-time "same" padding (the tf_ EfficientNets) is made constant for the fixed input size
   (:mod:`.static_pad`), so the graph holds plain Conv nodes whatever onnxslim can fold.
2. TorchScript export, fp32, with a dynamic batch dimension; any exporter failure is an :class:`ExportError`.
3. onnxslim simplifies the graph when it is installed; a failure there is not fatal (the graph as
   exported is still right).
4. Checked before anyone keeps it: ONNX Runtime's output on a probe batch (3 images, run as batches of
   2 and 1, so the dynamic batch is exercised) must be within :func:`tolerance` of PyTorch fp32:
   ``1e-4 × max(1, max |output|)`` (absolute 1e-4 for features or probabilities of magnitude ≤ 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import first_line

log = logging.getLogger(__name__)

OPSET = 17
PROBE_BATCH = 3
ATOL = 1e-4  # max |onnx - torch| allowed at export, scaled up for outputs larger than 1 in magnitude
PROBE = f"{PROBE_BATCH} random images, uniform in [-2.5, 2.5], run in batches of 2 and 1"


class ExportError(RuntimeError):
    """The module cannot be exported to ONNX, or the export does not reproduce PyTorch."""


class MismatchError(ExportError):
    """The exported graph's output differs from PyTorch's by ``diff``, more than ``allowed``."""

    def __init__(self, diff: float, allowed: float):
        self.diff, self.allowed = diff, allowed
        super().__init__(f"exported graph differs from PyTorch by {diff:.3g} (allowed {allowed:.3g})")


def probe_batch(input_size: tuple[int, int], n: int = PROBE_BATCH) -> np.ndarray:
    """Deterministic images in the range a normalised picture takes (about -2.5 .. 2.5)."""
    return np.random.default_rng(0).uniform(-2.5, 2.5, (n, 3, *input_size)).astype(np.float32)


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def tolerance(reference: np.ndarray) -> float:
    return ATOL * max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)


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


def export_graph(
    module,
    input_size: tuple[int, int],
    path: Path,
    *,
    output_name: str = "features",
    opset: int = OPSET,
    slim: bool = True,
    check: bool = True,
    atol: float | None = None,
    metadata: dict[str, str] | None = None,
) -> dict:
    """Export ``module`` (images N x 3 x H x W -> ``output_name``) to ``path`` (see the module
    docstring); return facts about the export. ``metadata``: key/value strings stored in the graph.
    ``atol``: the allowed difference instead of :func:`tolerance`. Raises :class:`ExportError`."""
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
                frozen, (example,), str(path), dynamo=False, opset_version=opset,
                input_names=["images"], output_names=[output_name],
                dynamic_axes={"images": {0: "batch"}, output_name: {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        raise ExportError(f"{type(exc).__name__}: {first_line(exc)}") from exc
    facts = {"padding_layers_frozen": n_frozen, "export_seconds": round(time.perf_counter() - t0, 2)}
    _simplify(path, facts, slim, metadata)
    if check:
        facts.update(_check(module, path, input_size, output_name, atol))
    return facts


def _simplify(path: Path, facts: dict, slim: bool, metadata: dict[str, str] | None) -> None:
    import onnx

    graph = onnx.load(str(path))
    facts["nodes"] = facts["nodes_exported"] = len(graph.graph.node)
    facts["slimmed"] = False
    if slim:
        try:
            import onnxslim

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = onnxslim.slim(graph)
            facts["nodes"], facts["slimmed"] = len(graph.graph.node), True
        except ImportError:
            pass
        except Exception as exc:  # a simplifier failure is not fatal: the exported graph is still right
            log.warning("onnxslim could not simplify the graph (%s); using it as exported", first_line(exc))
    if metadata:
        del graph.metadata_props[:]
        for key, value in metadata.items():
            prop = graph.metadata_props.add()
            prop.key, prop.value = key, value
    if facts["slimmed"] or metadata:
        onnx.save(graph, str(path))


def _check(module, path: Path, input_size: tuple[int, int], output_name: str, atol: float | None) -> dict:
    import onnxruntime as ort
    import torch

    x = probe_batch(input_size)
    with torch.inference_mode():
        ref = module(torch.from_numpy(x)).float().numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run([output_name], {"images": x[i : i + 2]})[0] for i in range(0, len(x), 2)])
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot run the exported graph ({first_line(exc)})") from exc
    if got.shape != ref.shape:
        raise ExportError(f"exported graph gives shape {got.shape}, PyTorch {ref.shape}")
    diff, allowed = max_difference(got, ref), tolerance(ref) if atol is None else atol
    if not diff <= allowed:
        raise MismatchError(diff, allowed)
    return {"max_abs_diff": diff, "tolerance": allowed}
