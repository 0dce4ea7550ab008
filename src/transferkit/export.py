"""Export a trained model as ONE ONNX graph: preprocessed images (N×3×H×W float32) -> class probabilities.

The graph is the backbone (cut at the recorded layer and pooling) followed by the head's torch form
(``head.to_torch()``), with a dynamic batch dimension, exported by the same pipeline as the feature
cache (:mod:`transferkit.engines.onnx_export`: "same" padding made constant for the fixed input size,
onnxslim, and a check against PyTorch with ONNX Runtime before the file is kept).

Next to ``model.onnx`` goes ``model.onnx.json``: the preprocessing (as numbers and as steps in words),
the class names in output order, the input/output names and shapes and the provenance, i.e. what a
consumer in any language needs. The same JSON is also stored in the ONNX file's metadata.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .atomicfile import atomic_path, atomic_write_text
from .backbones import PreprocessConfig
from .engines.onnx_export import OPSET, PROBE, ExportError, MismatchError, export_graph
from .errors import TransferkitError
from .heads import TrainedModel

EXPORT_FORMAT = "transferkit-onnx"
EXPORT_FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
DEFAULT_OPSET = OPSET


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    max_abs_diff: float | None  # ONNX Runtime vs PyTorch on the probe batch (None: not checked)
    n_nodes: int
    size_bytes: int
    seconds: float
    slimmed: bool


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_onnx(
    model: TrainedModel | str | os.PathLike,
    output: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    slim: bool = True,
    tolerance: float | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``output`` (.onnx) and ``output + ".json"`` for ``model``; see the module docstring.

    ``check``: run the graph with ONNX Runtime on a probe batch and refuse the export when a
    probability differs from PyTorch's by more than ``tolerance`` (None: the rule every export
    follows, see :mod:`transferkit.engines.onnx_export`: 1e-4 for probabilities).
    """
    import torch

    from .heads.model_file import as_model
    from .prediction import backbone_for

    start = time.perf_counter()
    model = as_model(model)
    output = Path(output)
    sidecar = sidecar_path(output)
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    for existing in (output, sidecar):
        if existing.exists() and not overwrite:
            raise TransferkitError(f"{existing}: already exists; pass --overwrite (overwrite=True) to replace it")
    to_torch = getattr(model.head, "to_torch", None)
    if not callable(to_torch):
        raise TransferkitError(
            f"{model.path or 'model'}: its {getattr(model.head, 'kind', 'head')} head cannot be exported (no "
            "to_torch())"
        )
    if model.backbone_state is not None:  # fine-tuned: the weights are in the model file
        from .backbones.finetuned import finetuned_backbone

        backbone = finetuned_backbone(model, str(model.path or "model"))
    else:
        backbone = backbone_for(model.backbone, str(model.path or "model"))
    model.check_feature_dim(backbone.feature_dim)
    preprocess = model.preprocess_config()
    head_net = to_torch()
    if model.calibration:  # `train --calibrate temperature`: the same softmax(log p / T) as predict
        from .heads.torch_modules import TemperatureScaled

        head_net = TemperatureScaled(head_net, model.calibration["temperature"])
    net = torch.nn.Sequential(backbone.features, head_net).eval()  # images -> features -> probabilities
    info = describe_export(model, preprocess, opset, output.name)
    metadata = {
        "transferkit": json.dumps(info, ensure_ascii=False),
        "class_names": json.dumps(info["class_names"], ensure_ascii=False),
        "preprocess": json.dumps(info["preprocess"]),
    }
    with atomic_path(output) as tmp:
        try:
            facts = export_graph(net, preprocess.array_size, tmp, output_name=OUTPUT_NAME, opset=opset, slim=slim,
                                 check=check, atol=tolerance, metadata=metadata)
        except MismatchError as exc:
            raise TransferkitError(
                f"{output}: the exported graph differs from PyTorch by {exc.diff:.2e} (> {exc.allowed:g}); not written"
            ) from None
        except ExportError as exc:
            raise TransferkitError(f"{output}: cannot export this model to ONNX ({exc}); not written") from None
    diff = facts.get("max_abs_diff")
    if check:
        info["check"] = {"max_abs_diff": diff, "tolerance": facts["tolerance"], "probe": PROBE}
    info["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(sidecar, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return ExportResult(
        path=output,
        sidecar=sidecar,
        max_abs_diff=diff,
        n_nodes=facts["nodes"],
        size_bytes=output.stat().st_size,
        seconds=time.perf_counter() - start,
        slimmed=facts["slimmed"],
    )


def describe_export(model: TrainedModel, preprocess: PreprocessConfig, opset: int, file_name: str) -> dict:
    """The sidecar's content: everything a consumer needs to feed the graph and read its output."""
    from . import __version__

    h, w = preprocess.input_size
    aw = preprocess.array_size[1]  # the input's width: five crops side by side with --tta ten-crop
    head = (
        {k: v for k, v in model.head.describe().items() if k not in ("backbone", "classes", "history")}
        if hasattr(model.head, "describe")
        else {}
    )
    pre = preprocess.to_dict()
    if preprocess.crop:
        pre["resize_shorter"] = preprocess.resize_shorter
    steps = [
        "decode the file to 8-bit RGB: apply the EXIF orientation, composite transparency on white, "
        "replicate grayscale to three channels"
    ]
    if preprocess.crop:
        steps += [
            f"resize so that the shorter side is {preprocess.resize_shorter} px ({preprocess.interpolation}, "
            "aspect ratio kept: the longer side becomes floor(longer * resize_shorter / shorter))",
            f"centre-crop {h}x{w} (height x width); offsets round((size - crop) / 2)",
        ]
        if preprocess.five_crop:  # --tta ten-crop: the graph averages the five crops and their mirror images
            steps[-1] = (f"crop five {h}x{w} pieces (height x width): the centre (offsets round((size - crop) / 2)), "
                         "then the top-left, top-right, bottom-left and bottom-right corners; lay them side by "
                         f"side in that order, left to right, into one {h}x{5 * w} picture")
    else:
        steps += [f"resize to {h}x{w} (height x width, {preprocess.interpolation}, aspect ratio not kept)"]
    steps += [
        f"scale to [0, 1] (divide by 255), subtract mean {list(preprocess.mean)} and divide by std "
        f"{list(preprocess.std)} per channel (R, G, B)",
        f"transpose HWC -> CHW and stack images into a float32 batch N x 3 x {h} x {aw}",
    ]
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "onnx_file": file_name,
        "opset": opset,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, h, aw],
            "dtype": "float32",
            "layout": "NCHW",
            "channels": "RGB",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(model.class_names)],
            "dtype": "float32",
            "meaning": "softmax probabilities; column i is class_names[i]",
        },
        "class_names": list(model.class_names),
        "preprocess": pre,
        "preprocess_steps": steps,
        "backbone": {k: v for k, v in model.backbone.items() if k != "preprocess"},
        "head": head,
        **({"calibration": model.calibration} if model.calibration else {}),
        "source_model": str(model.path) if model.path else None,
        "transferkit_version": __version__,
    }
