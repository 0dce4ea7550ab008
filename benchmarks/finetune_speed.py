"""What one fine-tuning epoch costs, piece by piece, for the choices `transferkit finetune` makes.

On real pictures (a folder of JPEGs), Lite0 at 224 px, one batch size, the pieces of a training step
timed separately and in turns (round robin, ``--rounds`` times, so all see the same load on a shared
machine):

- decode + augment (random resized crop + flip) of a batch, in the decoding threads;
- the frozen lower part, forward without gradients (what caching saves), fp32 vs bf16 autocast;
- the trainable upper part + head, forward and backward and an AdamW step, fp32 vs bf16 autocast;
- the whole network trained (``--unfreeze all``), for comparison.

Per-image milliseconds are printed as median (min-max) over the rounds.

    PYTHONPATH=src nice -n 10 python benchmarks/finetune_speed.py /work/shared/datasets/flowers17 --images 64
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--unfreeze", default="2")
    args = ap.parse_args()

    import torch

    from transferkit.backbones import create_backbone
    from transferkit.data import list_images
    from transferkit.finetuning.data import Pictures, batches
    from transferkit.finetuning.model import StandardisedLinear, TunableNet

    files = [str(p) for p in list_images(args.data)]
    files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[: args.images]]
    rows = np.arange(len(files))
    bb = create_backbone("efficientnet_lite0")
    pictures = Pictures(bb.preprocess, "standard", 0)
    x_all = np.concatenate([a for _, a, _ in batches(rows, files, pictures, args.batch_size, 1)])
    bs = args.batch_size
    K, D = 17, 1280

    def net_for(unfreeze):
        net = create_backbone("efficientnet_lite0").net.to(memory_format=torch.channels_last)
        tn = TunableNet(net, unfreeze, "frozen")
        tn.head = StandardisedLinear(np.zeros(D), np.ones(D), np.zeros((K, D)), np.zeros(K))
        return tn

    nets = {u: net_for(u) for u in (args.unfreeze, "all")}

    def amp(precision):
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def decode():
        for _ in batches(rows, files, pictures, bs, 2):
            pass

    def lower(precision):
        tn = nets[args.unfreeze]
        for i in range(0, len(x_all), bs):
            with amp(precision):
                tn.lower(torch.from_numpy(x_all[i:i + bs]).contiguous(memory_format=torch.channels_last))

    def train(precision, unfreeze):
        tn = nets[unfreeze]
        tn.train_mode()
        opt = torch.optim.AdamW(tn.param_groups(1e-3, 1e-4, 1e-4))
        with amp(precision):
            hs = [tn.lower(torch.from_numpy(x_all[i:i + bs]).contiguous(memory_format=torch.channels_last))
                  for i in range(0, len(x_all), bs)]

        def run():
            for h in hs:
                y = torch.randint(0, K, (len(h),))
                with amp(precision):
                    logits = tn(h)
                loss = torch.nn.functional.cross_entropy(logits.float(), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return run

    jobs = {"decode + augment (threads)": lambda: decode}
    for p in ("fp32", "bf16"):
        jobs[f"lower part forward, {p}"] = (lambda p=p: (lambda: lower(p)))
        jobs[f"upper part + head train step, {p}"] = (lambda p=p: train(p, args.unfreeze))
        jobs[f"whole network train step, {p}"] = (lambda p=p: train(p, "all"))
    runs = {name: make() for name, make in jobs.items()}
    for fn in runs.values():  # warm-up: oneDNN primitives, allocator
        fn()
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / len(files) * 1000)
    print(f"{len(files)} images, batch {bs}, unfreeze {args.unfreeze}, torch threads {torch.get_num_threads()}")
    for name, ts in times.items():
        print(f"  {name:40s} {statistics.median(ts):7.1f} ms/image ({min(ts):.1f}-{max(ts):.1f})")


if __name__ == "__main__":
    main()
