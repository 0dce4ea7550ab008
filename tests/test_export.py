"""`transferkit export`: one ONNX graph (images -> probabilities) that matches `transferkit predict`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import transferkit as tk
from transferkit.backbones import PreprocessConfig
from transferkit.data import list_images, load_image


@dataclass
class Exported:
    path: Path
    sidecar: Path
    output: str  # what the command printed


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """`transferkit export MODEL -o model.onnx`, run in-process (the command is a thin layer over export_onnx)."""
    from typer.testing import CliRunner

    from transferkit.cli import app

    out = tmp_path_factory.mktemp("export") / "model.onnx"
    res = CliRunner().invoke(app, ["export", str(trained.path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return Exported(out, out.with_name("model.onnx.json"), res.stdout)


def test_export_matches_predict_on_real_images(exported, trained, dataset_dir):
    side = json.loads(exported.sidecar.read_text(encoding="utf-8"))
    assert exported.sidecar.name == "model.onnx.json"
    names = trained.model.class_names
    assert side["class_names"] == names
    assert side["input"] == {"name": "images", "shape": ["batch", 3, 224, 224], "dtype": "float32",
                             "layout": "NCHW", "channels": "RGB"}
    assert side["output"]["shape"] == ["batch", len(names)]
    assert side["preprocess"]["resize_shorter"] == 256 and side["backbone"]["model"] == "efficientnet_lite0"
    assert side["check"]["max_abs_diff"] <= 1e-4 and "checked with ONNX Runtime" in exported.output

    # a consumer that knows only the sidecar: preprocess as it says, run the graph, read the columns
    pre = PreprocessConfig.from_dict(side["preprocess"])
    files = list_images(dataset_dir)  # all formats of the tiny dataset: jpg, png, gif, bmp, webp, tiff
    images = np.stack([pre.to_array(load_image(f, min_size=pre.min_decode_size)) for f in files])
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(["probabilities"], {"images": images[i : i + 7]})[0]
                          for i in range(0, len(images), 7)])  # batches of 7 and 3: the batch axis is dynamic

    r = tk.predict(trained.path, files, top_k=len(names))
    assert [p.path for p in r.predictions] == [str(f) for f in files]
    want = np.zeros_like(got)
    for row, p in enumerate(r.predictions):
        for label, prob in zip(p.labels, p.probabilities):
            want[row, names.index(label)] = prob
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


def test_export_is_one_plain_graph_with_metadata(exported):
    graph = onnx.load(str(exported.path))
    onnx.checker.check_model(graph)
    ops = {n.op_type for n in graph.graph.node}
    assert "Softmax" in ops and "Conv" in ops
    assert not ops & {"Shape", "Gather", "Pad"}, ops  # the run-time "same" padding was folded into the convs
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["class_names"]) == json.loads(exported.sidecar.read_text(encoding="utf-8"))["class_names"]
    assert [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [
        "batch",
        3,
        224,
        224,
    ]


def test_export_refuses_to_clobber(exported, trained):
    with pytest.raises(tk.TransferkitError, match="already exists"):
        tk.export_onnx(trained.model, exported.path)


def test_export_cli_refuses_to_clobber(exported, trained):
    from typer.testing import CliRunner

    from transferkit.cli import app

    before = exported.path.stat().st_mtime_ns
    res = CliRunner().invoke(app, ["export", str(trained.path), "-o", str(exported.path)])
    assert res.exit_code == 1 and "already exists" in res.stderr and "--overwrite" in res.stderr
    assert exported.path.stat().st_mtime_ns == before
