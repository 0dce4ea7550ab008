"""Model-only images/s per engine and precision (no decoding): random input batches, fixed size.

Each model is built once; for every engine we time a few batches after a warm-up batch, and the
engines take turns (round robin, ``--rounds`` times) so they see the same load on a shared machine.
Lite0 uses its real offline weights; ResNet-50 and VGG16 random weights (speed does not depend on them).

    PYTHONPATH=src python benchmarks/model_speed.py --models efficientnet_lite0 resnet50 vgg16
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np


def build(name: str):
    import timm

    from transferkit.backbones import Backbone, PreprocessConfig, create_backbone
    from transferkit.backbones.modules import PreLogits

    if name == "efficientnet_lite0":
        return create_backbone(name)
    net = timm.create_model(name, pretrained=False).eval()
    return Backbone(name=name, net=net, features=PreLogits(net).eval(), preprocess=PreprocessConfig((224, 224)),
                    weights_sha256="random", feature_dim=int(net.num_features))


def engines_for(backbone, which: list[str]):
    from transferkit.engines import TorchEngine
    from transferkit.engines.onnx_engine import OnnxEngine

    out = {}
    for key in which:
        if key == "torch-eager-fp32":  # what a tutorial runs: no channels_last
            out[key] = TorchEngine(backbone.features, channels_last=False)
        elif key == "torch-fp32":
            out[key] = TorchEngine(backbone.features)
        elif key == "torch-bf16":
            out[key] = TorchEngine(backbone.features, precision="bf16")
        elif key == "onnxruntime-fp32":
            out[key] = OnnxEngine(backbone)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50", "vgg16"])
    ap.add_argument(
        "--engines", nargs="+", default=["torch-eager-fp32", "torch-fp32", "torch-bf16", "onnxruntime-fp32"]
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=2, help="timed batches per engine per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("TRANSFERKIT_CACHE_DIR", tempfile.mkdtemp(prefix="tk-bench-cache-"))
    warnings.simplefilter("ignore")
    print(f"cpus {len(os.sched_getaffinity(0))}, batch {args.batch_size}, load {os.getloadavg()[0]:.1f}")
    for name in args.models:
        backbone = build(name)
        engines = engines_for(backbone, args.engines)
        x = np.random.default_rng(0).normal(size=(args.batch_size, 3, 224, 224)).astype(np.float32)
        rates = {k: [] for k in engines}
        for e in engines.values():
            e(x)  # warm-up: allocator, cuDNN/oneDNN choices
        for _ in range(args.rounds):
            for k, e in engines.items():
                t = time.perf_counter()
                for _ in range(args.batches):
                    e(x)
                rates[k].append(args.batches * args.batch_size / (time.perf_counter() - t))
        base = statistics.median(rates[next(iter(rates))])
        for k, r in rates.items():
            med = statistics.median(r)
            print(
                f"{name:20s} {k:18s} {med:7.1f} img/s  (range {min(r):.1f}-{max(r):.1f}, "
                f"{med / base:4.1f}x {next(iter(rates))})",
                flush=True,
            )
        del engines, backbone


if __name__ == "__main__":
    main()
