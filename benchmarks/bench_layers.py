"""Several layers in one forward pass vs one pass per layer, and the early stop after an early layer.

Ratios, measured side by side in one process (rounds interleaved, median of each), so that a busy
machine slows both sides alike. Random weights: speed does not depend on the weights.

    PYTHONPATH=src python benchmarks/bench_layers.py [--model timm:resnet50] [--batch 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from transferkit.backbones import create_backbone


def timed(module, x) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        module(x)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="timm:resnet50")
    ap.add_argument("--layers", default="layer2,layer3,layer4,pre_logits")
    ap.add_argument("--early", default="layer1")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    names = args.layers.split(",")
    multi = create_backbone(args.model, weights="random", layer=names)
    singles = [create_backbone(args.model, weights="random", layer=n) for n in names]
    early = create_backbone(args.model, weights="random", layer=args.early)
    full = create_backbone(args.model, weights="random")
    x = torch.randn(args.batch, 3, *multi.preprocess.input_size)
    for m in (multi.features, early.features, full.features, *[s.features for s in singles]):
        timed(m, x)  # warm-up
    t_multi, t_singles, t_early, t_full = [], [], [], []
    for _ in range(args.rounds):
        t_multi.append(timed(multi.features, x))
        t_singles.append(sum(timed(s.features, x) for s in singles))
        t_early.append(timed(early.features, x))
        t_full.append(timed(full.features, x))
    med = statistics.median
    print(f"{args.model}, batch {args.batch}, {args.rounds} rounds, {torch.get_num_threads()} threads")
    print(f"  {len(names)} layers in one pass: {med(t_multi):.3f} s; one pass per layer: {med(t_singles):.3f} s "
          f"-> one pass takes {med(t_multi) / med(t_singles):.2f}x the time")
    print(f"  {args.early} only (early stop): {med(t_early):.3f} s; full pre_logits: {med(t_full):.3f} s "
          f"-> {med(t_early) / med(t_full):.2f}x the time")


if __name__ == "__main__":
    main()
