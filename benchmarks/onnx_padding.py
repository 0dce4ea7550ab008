"""ONNX Runtime speed of Lite0 exported four ways (the TF "same" padding trap), model only.

naive:        torch.onnx.export of timm's module as is (padding computed from x.shape at run time)
naive+slim:   the same, simplified by onnxslim (dynamic batch kept)
static:       Conv2dSame layers replaced by constant padding first (transferkit.engines.static_pad)
static+slim:  both (what transferkit ships)
The four sessions take turns, ``--rounds`` times, on the same batch.

    PYTHONPATH=src python benchmarks/onnx_padding.py --batch-size 32 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    import onnx
    import onnxslim
    import torch

    from transferkit.backbones import create_backbone
    from transferkit.engines.onnx_engine import _session
    from transferkit.engines.static_pad import freeze_same_padding

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    bb = create_backbone()
    tmp = Path(tempfile.mkdtemp())
    x = torch.zeros(2, 3, 224, 224)
    modules = {"naive": bb.features, "static": freeze_same_padding(bb.features, (224, 224))[0]}
    paths = {}
    for name, m in modules.items():
        p = tmp / f"{name}.onnx"
        torch.onnx.export(m, (x,), str(p), dynamo=False, opset_version=17, input_names=["images"],
                          output_names=["features"], dynamic_axes={"images": {0: "b"}, "features": {0: "b"}})
        paths[name] = p
        slim = onnxslim.slim(onnx.load(str(p)))
        onnx.save(slim, str(tmp / f"{name}+slim.onnx"))
        paths[f"{name}+slim"] = tmp / f"{name}+slim.onnx"
    threads = len(os.sched_getaffinity(0))
    sessions = {k: _session(p, threads) for k, p in paths.items()}
    xb = np.random.default_rng(0).normal(size=(args.batch_size, 3, 224, 224)).astype(np.float32)
    ref = bb.features(torch.from_numpy(xb[:4])).detach().numpy()
    rates = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, {"images": xb})
    for _ in range(args.rounds):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"images": xb})
            rates[k].append(args.batch_size / (time.perf_counter() - t))
    base = statistics.median(rates["naive"])
    print(f"batch {args.batch_size}, {threads} threads, load {os.getloadavg()[0]:.1f}")
    for k, r in rates.items():
        nodes = len(onnx.load(str(paths[k])).graph.node)
        diff = np.abs(sessions[k].run(None, {"images": xb[:4]})[0] - ref).max()
        m = statistics.median(r)
        print(f"{k:12s} {nodes:4d} nodes  {m:6.1f} img/s (range {min(r):.1f}-{max(r):.1f})  {m / base:.2f}x naive  "
              f"max|diff| vs torch {diff:.1e}")


if __name__ == "__main__":
    main()
