"""Where a fine-tuning run's gain comes from: the test accuracy of every epoch's network, next to what
the run could see (the validation part), and the pretrained network with and without flip averaging.

For analysis only: the product never looks at the test split for a choice. Runs ``finetune`` on a
train/ + valid/ layout (``benchmarks/finetune_flowers.py`` makes one) keeping the trainable state of every
epoch's checkpoint, then for each epoch's network computes the features of every picture
(mean of the picture and its mirror image, as ``--tta hflip`` does), fits the product's logistic
regression on the train part and scores the validation part (what the run's choice sees), and fits it on
every train image and scores the test split (what a user gets). The pretrained network's plain features
give the frozen pipeline's figure (PyTorch here; ``evaluate`` runs ONNX Runtime, an image or so apart).

    PYTHONPATH=src python benchmarks/finetune_epochs.py /tmp/i17/a0 --out /tmp/ft-epochs \\
        --finetune '{"patience": 10}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from transferkit.backbones.registry import create_backbone
    from transferkit.finetuning import loop
    from transferkit.finetuning.data import Pictures, batches, split_parts
    from transferkit.finetuning.model import TunableNet
    from transferkit.heads import make_head

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--out", default="/tmp/ft-epochs")
    ap.add_argument("--finetune", default="{}", help="extra finetune() settings as JSON")
    args = ap.parse_args()
    extra = json.loads(args.finetune)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "tuned.safetensors"
    states: dict[int, dict] = {}

    class Recording(loop.Checkpoint):  # every epoch's checkpoint also keeps its trainable state here
        def save(self, path):
            states[self.epoch] = {k: v.clone() for k, v in self.state.items()}
            super().save(path)

    loop.Checkpoint = Recording
    res = loop.finetune(args.data, model_path, overwrite=True, **extra)
    print(f"run: kept epoch {res.best_epoch} of {len(res.history) - 1}, test {res.test.get('accuracy'):.4f}, "
          f"choice {json.dumps(res.model.training.get('choice'))}", flush=True)

    bb = create_backbone(extra.get("model", "efficientnet_lite0"))
    bb.net.eval()
    tn = TunableNet(bb.net, extra.get("unfreeze", 4)).eval()
    parts = split_parts(args.data, extra.get("test_size", 0.25), extra.get("seed", 42), extra.get("val_size", 0.15))
    rows = np.concatenate([parts.train, parts.val, parts.test])
    y = parts.labels[rows]
    n_tr, n = len(parts.train), len(parts.train) + len(parts.val)
    lower = []
    with torch.no_grad():
        for _, arr, _ in batches(rows, parts.paths, Pictures(bb.preprocess), 64, None, 2):
            x = torch.from_numpy(arr)
            lower.append((tn.lower(x), tn.lower(x.flip(3))))

    def features(flip: bool) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([((tn.upper(a) + tn.upper(b)) / 2 if flip else tn.upper(a)).numpy()
                                   for a, b in lower])

    def scores(F) -> dict:  # scored as the run scores its candidates (loop._loss_accuracy)
        vl, va = loop._loss_accuracy(make_head("logreg", random_state=42).fit(F[:n_tr], y[:n_tr]).predict_proba(
            F[n_tr:n]), y[n_tr:n])
        _, ta = loop._loss_accuracy(make_head("logreg", random_state=42).fit(F[:n], y[:n]).predict_proba(F[n:]), y[n:])
        return {"val_accuracy": round(va, 4), "val_loss": round(vl, 4), "test": round(ta, 4)}

    rows_out = []
    for epoch in sorted(states):
        for i, m in enumerate(tn.upper_modules()):
            p = f"upper.{i}."
            m.load_state_dict({k[len(p):]: v for k, v in states[epoch].items() if k.startswith(p)})
        if epoch == 0:
            rows_out.append({"epoch": "0 plain (frozen pipeline)", **scores(features(False))})
            print(json.dumps(rows_out[-1]), flush=True)
        rows_out.append({"epoch": epoch, **scores(features(True))})
        print(json.dumps(rows_out[-1]), flush=True)
    (out / "epochs.json").write_text(json.dumps(rows_out, indent=1))


if __name__ == "__main__":
    main()
