"""The exported one-file ONNX graph (backbone + head) against PyTorch, side by side in one process.

Measures images/s of the whole images -> probabilities graph on a fixed batch for
  torch    : the same modules in eager PyTorch fp32 (channels_last, inference mode; what predict runs)
  ort-raw  : the ONNX export as traced (tf_ "same" padding computed at run time: ~600 nodes)
  ort-slim : the file `transferkit export` writes (onnxslim folded the shape arithmetic)
The engines take turns batch by batch (interleaved rounds), so machine noise hits them alike; the
result is reported as medians and as ratios against torch. Also: export time and node counts.

    PYTHONPATH=src python benchmarks/export_onnx.py [--batch 32] [--rounds 7] [--classes 17]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--classes", type=int, default=17)
    ap.add_argument("--model", default="efficientnet_lite0")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from transferkit.backbones import create_backbone
    from transferkit.engines import TorchEngine, available_cpus
    from transferkit.export import export_onnx
    from transferkit.heads import LogisticHead, TrainedModel

    backbone = create_backbone(args.model)
    rng = np.random.default_rng(0)
    # A real fitted head on random features: its size (feature_dim x classes) is what matters here.
    X = rng.standard_normal((20 * args.classes, backbone.feature_dim)).astype(np.float32)
    y = np.repeat(np.arange(args.classes), 20)
    head = LogisticHead(Cs=(1.0,), max_iter=50).fit(X, y)
    model = TrainedModel(head=head, class_names=[f"c{i}" for i in range(args.classes)], backbone=backbone.spec())

    tmp = Path(tempfile.mkdtemp(prefix="tk-export-bench-"))
    timings = {}
    for slim in (False, True):
        t = time.perf_counter()
        r = export_onnx(model, tmp / f"model-{'slim' if slim else 'raw'}.onnx", slim=slim, check=True)
        timings["slim" if slim else "raw"] = (time.perf_counter() - t, r.n_nodes, r.max_abs_diff)

    threads = available_cpus()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sessions = {name: ort.InferenceSession(str(tmp / f"model-{name.split('-')[1]}.onnx"), opts,
                                           providers=["CPUExecutionProvider"]) for name in ("ort-raw", "ort-slim")}
    torch_engine = TorchEngine(torch.nn.Sequential(backbone.features, head.to_torch()), threads=threads)
    h, w = backbone.preprocess.input_size
    batch = rng.standard_normal((args.batch, 3, h, w)).astype(np.float32)
    runners = {
        "torch": lambda: torch_engine(batch),
        "ort-raw": lambda: sessions["ort-raw"].run(None, {"images": batch}),
        "ort-slim": lambda: sessions["ort-slim"].run(None, {"images": batch}),
    }
    for run in runners.values():  # warm-up
        run()
    seconds = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            t = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t)
    ref = statistics.median(seconds["torch"])
    print(f"{args.model} + logistic head ({args.classes} classes), batch {args.batch}, {threads} threads, "
          f"{args.rounds} interleaved rounds, torch {torch.__version__}, onnxruntime {ort.__version__}")
    for kind, (secs, nodes, diff) in timings.items():
        print(f"export ({kind}): {secs:.1f} s, {nodes} nodes, max |diff| vs torch {diff:.1e}")
    print("| engine | images/s (median) | ratio vs torch |")
    print("|---|---:|---:|")
    for name, secs in seconds.items():
        med = statistics.median(secs)
        print(f"| {name} | {args.batch / med:.1f} | {ref / med:.2f}x |")


if __name__ == "__main__":
    main()
