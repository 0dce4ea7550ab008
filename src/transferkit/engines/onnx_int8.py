"""int8 ONNX Runtime engine: the cached fp32 graph, statically quantised (QDQ) on the user's own images.

Why these settings (measured on Lite0, 2 AVX-512 VNNI cores, see BENCHMARKS.md "int8"): QDQ with
per-channel int8 weights and uint8 activations (MinMax calibration) runs the network ~2.2-2.6x faster
than fp32 with a mean cosine of ~0.994 to the fp32 features. Per-tensor weights fall to ~0.90 (the
depthwise convolutions' channels differ too much for one scale); int8 activations (S8S8) are slower on
x86; QOperator is the same graph less flexibly; reduce_range only helps CPUs without VNNI. The first
convolution (3 input channels: little work, raw pixels) stays fp32: mean cosine 0.9937 -> 0.9950 on
photos, 0.976 -> 0.984 on the test suite's drawings, for ~10 % of the int8 speed-up.

Calibration: up to ``CALIBRATION_IMAGES`` images drawn deterministically (evenly spaced over the sorted
paths, so every class folder contributes), identified by the SHA-256 of their bytes. The quantised
graph is cached beside the fp32 one (``<fp32 key>-int8-<key>.onnx`` + ``.json``), keyed on the fp32
graph's key, the calibration images' identity, the preprocessing that fed them, the quantisation
settings, the onnx/onnxruntime versions and transferkit's own quantising and decoding code.

Quality gate: the mean cosine similarity between int8 and fp32 features over the calibration images is
measured when the graph is built, stored with it (and in the feature file). Below ``MIN_COSINE`` the
engine refuses; below ``WARN_COSINE`` it warns. Why 0.965 / 0.99, measured on flowers17 (Lite0, logistic
regression, same split): mean cosine 0.995 -> accuracy unchanged; 0.976 (reduce_range) -> -0.3 point;
0.897 (per-tensor weights) -> -1.5 points. The loss grows roughly as 14 points x (1 - cosine), so 0.965
is where it reaches the 0.5-point budget; 0.99 leaves a margin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomicfile import atomic_path, atomic_write_text
from ..errors import AdvisedError, TransferkitError, first_line
from ..versions import INT8_GRAPH, library_versions
from .onnx_engine import OnnxEngine, _session
from .onnx_index import code_sha256
from .pipeline import iter_batches

log = logging.getLogger(__name__)

INT8_FORMAT = 1
# The code that decides what an int8 graph becomes: how it quantises, and how calibration images are decoded.
_CODE = ("engines/onnx_int8.py", "backbones/preprocess.py", "data/decode.py")
CALIBRATION_IMAGES = 300
MIN_CALIBRATION = 8  # decodable images needed to calibrate at all
CALIBRATION_BATCH = 8  # the calibration run keeps a batch's activations alive: memory grows with it
MIN_COSINE = 0.965  # refuse below this mean cosine to fp32 (see module docstring)
WARN_COSINE = 0.99  # warn below this
SETTINGS = {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 asymmetric",
            "method": "MinMax", "reduce_range": False, "fp32": "first convolution"}


class Int8QualityError(AdvisedError):
    """The quantised graph's features are too far from fp32 to be used."""


class Int8QualityWarning(UserWarning):
    """The quantised graph's features are further from fp32 than we like."""


def calibration_sample(paths: Sequence[str | os.PathLike], n: int = CALIBRATION_IMAGES) -> list[Path]:
    """Up to ``n`` of ``paths``, evenly spaced over them sorted (deterministic; every class folder contributes)."""
    ordered = sorted((Path(p) for p in paths), key=str)
    if len(ordered) <= n:
        return ordered
    return [ordered[i] for i in np.linspace(0, len(ordered) - 1, n).round().astype(int)]


def _files_sha256(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        try:
            h.update(hashlib.sha256(Path(f).read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")  # the pipeline reports it; the identity stays defined
    return h.hexdigest()


def int8_key(fp32_path: Path, calibration_sha256: str, preprocess) -> tuple[str, dict]:
    desc = {
        "int8_format": INT8_FORMAT,
        "fp32_graph": Path(fp32_path).stem,  # itself a hash of model, weights, layers, pooling, size, versions
        "calibration_sha256": calibration_sha256,
        "preprocess": preprocess.to_dict(),
        "settings": SETTINGS,
        "versions": library_versions(INT8_GRAPH, missing="-"),
        "code": code_sha256(_CODE),
    }
    key = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]
    return f"{Path(fp32_path).stem}-int8-{key}", desc


def _batches(files, preprocess, workers):
    for batch in iter_batches(files, preprocess, batch_size=CALIBRATION_BATCH, workers=workers):
        if batch.indices:
            yield batch.arrays


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (1 where both rows are zero)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (a * b).sum(1) / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.nan_to_num(cos))


def quantise(fp32_path: Path, out: Path, files: Sequence[Path], preprocess, threads: int, workers=None) -> dict:
    """Write the int8 graph of ``fp32_path`` to ``out``, calibrated on ``files``; return its facts."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = _batches(files, preprocess, workers)
            self.n = 0

        def get_next(self):
            x = next(self.it, None)
            if x is None:
                return None
            self.n += len(x)
            return {"images": x}

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            reader = Reader()
            import onnx

            graph = onnx.load(str(pre)).graph
            first = [n.name for n in graph.node if n.op_type == "Conv" and graph.input[0].name in n.input][:1]
            try:
                quantize_static(
                    str(pre),
                    str(out),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    reduce_range=False,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=first,
                    # no CalibMaxIntermediateOutputs: onnxruntime 1.32 drops (not merges) the batches it
                    # clears; what it keeps per batch is each tensor's min and max, so memory stays small
                )
            except Exception as exc:  # onnxruntime raises many types; all mean "cannot quantise"
                if reader.n >= MIN_CALIBRATION:
                    raise AdvisedError(
                        "{graph}: ONNX Runtime cannot quantise this graph ({why}); use {o[precision=fp32]}",
                        graph=Path(fp32_path).name, why=first_line(exc),
                    ) from exc
    if reader.n < MIN_CALIBRATION:
        raise TransferkitError(
            f"int8 needs at least {MIN_CALIBRATION} decodable images to calibrate on, got {reader.n}"
        )
    facts = {"calibration_images": reader.n, "quantise_seconds": round(time.perf_counter() - t0, 2)}
    # How far int8 is from fp32, on the same images.
    fp32, int8 = _session(fp32_path, threads), _session(out, threads)
    cos = np.concatenate(
        [
            row_cosine(fp32.run(None, {"images": x})[0], int8.run(None, {"images": x})[0])
            for x in _batches(files, preprocess, workers)
        ]
    )
    facts["cosine_mean"] = round(float(cos.mean()), 6)
    facts["cosine_min"] = round(float(cos.min()), 6)
    return facts


class Int8OnnxEngine(OnnxEngine):
    """The fp32 ONNX engine's graph quantised to int8; ``calibration`` holds what the feature file records."""

    precision = "int8"

    def __init__(self, fp32: OnnxEngine, calibration: Sequence[str | os.PathLike], preprocess, workers=None):
        files = calibration_sample(calibration)
        if len(files) < MIN_CALIBRATION:
            raise AdvisedError(
                "int8 needs at least {least} images to calibrate on, got {got}; use {o[precision=fp32]}",
                least=MIN_CALIBRATION, got=len(files),
            )
        self.input_size, self.threads, self.device = fp32.input_size, fp32.threads, "cpu"
        self.fp32_path = fp32.path
        sha = _files_sha256(files)
        key, desc = int8_key(fp32.path, sha, preprocess)
        self.path = fp32.path.parent / f"{key}.onnx"
        meta = self.path.with_suffix(".json")
        self.cache_hit = self.path.exists() and meta.exists()
        if self.cache_hit:
            facts = json.loads(meta.read_text())
        else:
            facts = self._build(files, preprocess, workers, desc, meta)
        self.calibration = {
            "images": int(facts["calibration_images"]),
            "sha256": sha,
            "graph": key,
            "cosine_mean": float(facts["cosine_mean"]),
            "cosine_min": float(facts["cosine_min"]),
            "settings": SETTINGS,
        }
        check_quality(self.calibration["cosine_mean"], key)
        self.session = _session(self.path, self.threads)
        self._input = self.session.get_inputs()[0].name

    def _build(self, files, preprocess, workers, desc: dict, meta: Path) -> dict:
        with atomic_path(self.path, unique=True, sync=False) as tmp:  # concurrent runs: whole file or none
            facts = {**desc, **quantise(self.fp32_path, tmp, files, preprocess, self.threads, workers)}
        # the graph first: a json beside it means both are whole
        atomic_write_text(meta, json.dumps(facts, indent=2, sort_keys=True), unique=True, sync=False)
        log.info("quantised %s to %s (%s)", self.fp32_path.name, self.path, facts)
        return facts

    def describe(self) -> dict:
        return {**super().describe(), "calibration": self.calibration}


def check_quality(cosine_mean: float, what: str) -> None:
    if cosine_mean < MIN_COSINE:
        raise Int8QualityError(
            "{what}: int8 features are too far from fp32 (mean cosine {cosine_mean:.4f} < {least}); "
            "use {o[precision=fp32]}",
            what=what, cosine_mean=cosine_mean, least=MIN_COSINE,
        )
    if cosine_mean < WARN_COSINE:
        warnings.warn(
            f"{what}: int8 features differ from fp32 more than usual (mean cosine {cosine_mean:.4f} "
            f"< {WARN_COSINE}); check accuracy against --precision fp32",
            Int8QualityWarning,
            stacklevel=3,
        )
