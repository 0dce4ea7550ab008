"""Several layers in one pass against one layer, end to end (`transferkit extract`), side by side.

Alternating subprocesses as in int8_speed.py (a first run of each fills the ONNX cache and is not
counted): `extract DATA` (pre_logits) against `extract DATA --layer pre_logits --layer blocks.5
--layer blocks.4`; images/s as `extract` prints it, the ratio per round and of the medians.

    PYTHONPATH=src python benchmarks/layers_e2e.py /work/shared/datasets/flowers17 --rounds 5 [--precision int8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_speed import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", default="pre_logits,blocks.5,blocks.4")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    several = [a for name in args.layers.split(",") for a in ("--layer", name)]
    variants = {"one": ["--precision", args.precision], "several": ["--precision", args.precision, *several]}
    with tempfile.TemporaryDirectory() as tmp:
        out = {k: Path(tmp) / f"{k}.h5" for k in variants}
        for k, opts in variants.items():
            run(args.data, out[k], opts)  # warm-up: graph exported or found
        speed, ratios = {k: [] for k in variants}, []
        for r in range(args.rounds):
            got = {}
            for k in (("one", "several") if r % 2 == 0 else ("several", "one")):
                got[k] = run(args.data, out[k], variants[k])[0]
                speed[k].append(got[k])
            ratios.append(got["one"] / got["several"])
            print(
                f"round {r + 1}: one layer {got['one']:.1f} img/s, {args.layers} {got['several']:.1f} img/s", flush=True
            )
    med = statistics.median
    print(
        f"\n{args.data}, {args.precision}, {args.rounds} rounds: one layer median {med(speed['one']):.1f} img/s, "
        f"{args.layers} median {med(speed['several']):.1f} img/s; several take "
        f"{med(speed['one']) / med(speed['several']):.2f}x "
        f"the time of one (per round median {med(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
