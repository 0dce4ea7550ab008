"""The ONNX cache's index: a repeated extraction opens the cached graph without importing PyTorch,
gives the same file, and never replays a graph for weights, code or settings that changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np

import transferkit as tk
from transferkit.engines import backbone_and_engine, onnx_index


def _rows(path):
    with h5py.File(path, "r") as h5:
        attrs = {k: str(v) for k, v in h5.attrs.items() if k not in ("created", "completed")}
        return h5["features"][:], h5["labels"][:], h5["split"][:], attrs


def test_cache_hit_extracts_without_importing_torch(extracted, dataset_dir, tmp_path):
    # `extracted` (conftest) built Lite0 in PyTorch, exported it and recorded the request.
    script = textwrap.dedent(f"""
        import sys, traceback

        class Watch:  # say who imports a heavy package, should one be imported
            def find_spec(self, name, path=None, target=None):
                if name in ("torch", "timm", "torchvision", "sklearn"):
                    print("".join(traceback.format_stack(limit=12)), file=sys.stderr)
                return None

        sys.meta_path.insert(0, Watch())
        import transferkit as tk
        tk.extract({str(dataset_dir)!r}, {str(tmp_path / "again.h5")!r}, batch_size=5, buffer_rows=7)
        heavy = sorted(m for m in ("torch", "timm", "torchvision", "sklearn") if m in sys.modules)
        print("imported:", ",".join(heavy) or "-")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    assert "imported: -" in proc.stdout, proc.stdout + proc.stderr
    for a, b in zip(_rows(extracted.path), _rows(tmp_path / "again.h5")):
        if isinstance(a, dict):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


def test_predict_after_extract_needs_no_torch(trained, dataset_dir):
    """`extract` also records the request as `predict` replays it from the model's recorded spec."""
    images = sorted(str(p) for p in dataset_dir.rglob("*.jpg"))[:3]
    assert len(images) == 3
    script = (f"import sys, transferkit as tk; r = tk.predict({str(trained.model.path)!r}, {images!r}); "
              "print([p.label for p in r.predictions]); "
              "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    labels, heavy = proc.stdout.strip().splitlines()
    assert heavy == "[]"
    expected = [p.label for p in tk.predict(trained.model, images).predictions]
    assert len(expected) == 3 and labels == str(expected)


def _lite0_weights(path, seed: int):
    """A Lite0 weights file with seeded random values (so two seeds give two different networks)."""
    import torch
    from safetensors.torch import save_file

    from transferkit.backbones import create_backbone

    net = create_backbone("efficientnet_lite0", weights="random").net
    g = torch.Generator().manual_seed(seed)
    state = {k: (v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v).contiguous()
             for k, v in net.state_dict().items()}
    save_file(state, str(path))


def test_changed_weights_file_is_never_replayed(dataset_dir, tmp_path):
    """The same path with new bytes must give the new network's features, not the cached graph's."""
    weights = tmp_path / "mine.safetensors"
    kwargs = dict(weights=weights, image_size=64, batch_size=8)
    _lite0_weights(weights, seed=1)
    tk.extract(dataset_dir, tmp_path / "a.h5", **kwargs)
    hit = backbone_and_engine("efficientnet_lite0", weights=weights, image_size=64)
    assert hit[0].net is None and hit[1].cache_hit  # recorded: the next run would not build the network

    _lite0_weights(weights, seed=2)  # same path, new content
    tk.extract(dataset_dir, tmp_path / "b.h5", **kwargs)
    os.environ["TRANSFERKIT_ONNX_INDEX"] = "0"
    try:  # the reference: built in PyTorch from the file as it is now
        tk.extract(dataset_dir, tmp_path / "ref.h5", **kwargs)
    finally:
        del os.environ["TRANSFERKIT_ONNX_INDEX"]
    a, b, ref = (_rows(tmp_path / n)[0] for n in ("a.h5", "b.h5", "ref.h5"))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(b, ref)
    with h5py.File(tmp_path / "b.h5") as h5, h5py.File(tmp_path / "a.h5") as h5a:
        assert h5.attrs["weights_sha256"] != h5a.attrs["weights_sha256"]


def test_key_follows_the_request_not_the_path(tmp_path):
    w1, w2 = tmp_path / "one.bin", tmp_path / "two.bin"
    w1.write_bytes(b"weights")
    w2.write_bytes(b"weights")  # same bytes elsewhere: the same graph
    base = onnx_index.request()
    k1, (rec1, src1) = onnx_index.request_key("efficientnet_lite0", str(w1), base)
    k2, (rec2, src2) = onnx_index.request_key("efficientnet_lite0", str(w2), base)
    assert k1 == k2 and rec1 != rec2 and src1 == f"file:{w1}" and src2 == f"file:{w2}"
    assert onnx_index.request_key("efficientnet_lite0", str(w1), {**base, "pool": "max"})[0] != k1
    assert onnx_index.request_key("efficientnet_lite0", str(w1), {**base, "image_size": 192})[0] != k1
    assert onnx_index.request_key("efficientnet_lite1", str(w1), base)[0] != k1
    assert onnx_index.request_key("efficientnet_lite0", "random", base)[0] != k1
    w1.write_bytes(b"other weights")
    assert onnx_index.request_key("efficientnet_lite0", str(w1), base)[0] != k1
    # hub weights are files only timm/torchvision can locate: no key, always the PyTorch path
    assert onnx_index.request_key("timm:resnet18", None, base) is None


def test_stale_or_broken_entries_are_rebuilt(extracted, dataset_dir, tmp_path):
    backbone, engine = backbone_and_engine("efficientnet_lite0")
    assert backbone.net is None and engine.cache_hit
    entry = onnx_index._entry_path(onnx_index.request_key("efficientnet_lite0", None, onnx_index.request())[0])
    assert json.loads(entry.read_text())["onnx"] == engine.path.name

    entry.write_text("{not json")  # a torn or edited entry: ignored, then rewritten
    backbone, engine = backbone_and_engine("efficientnet_lite0")
    assert backbone.net is not None and json.loads(entry.read_text())["onnx"] == engine.path.name

    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({**data, "onnx": "gone.onnx"}))  # its graph was deleted
    backbone, engine = backbone_and_engine("efficientnet_lite0")
    assert backbone.net is not None and engine.path.exists()
    assert backbone_and_engine("efficientnet_lite0")[0].net is None  # and the next run hits again


def test_index_is_not_used_for_torch_or_other_devices():
    backbone, engine = backbone_and_engine("efficientnet_lite0", engine="torch", device="cpu")
    assert backbone.net is not None and engine.name == "torch"
    backbone, engine = backbone_and_engine("efficientnet_lite0", device="cpu", precision="bf16")
    assert backbone.net is not None and engine.name == "torch"


def test_import_and_cli_start_without_torch_or_sklearn():
    """`import transferkit` and the CLI's start-up load no heavy package; the verbs still resolve."""
    script = ("import sys, transferkit as tk, transferkit.cli; "
              "assert 'evaluate' in dir(tk) and callable(tk.extract) and tk.api.FeatureFile; "
              "print(sorted(m for m in ('torch', 'timm', 'torchvision', 'sklearn', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
