"""The fine-tuning checkpoint: one safetensors file next to the output (``MODEL.safetensors.ckpt``),
replaced atomically after every epoch, so a run killed at any moment leaves either the previous
epoch's checkpoint or the new one, never a torn file.

It holds tensors only (no pickle): the trainable state now and at the best epoch, the optimizer's
moments, the linear probe's arrays; and JSON metadata: the settings (a resume must use the same),
the epoch reached, the per-epoch history, the early-stopping state and the probe's record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AdvisedError, TransferkitError, first_line

CHECKPOINT_FORMAT = "transferkit-finetune-checkpoint"


def checkpoint_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


@dataclass
class Checkpoint:
    settings: dict  # what must match on resume
    epoch: int = 0  # epochs finished
    history: list = field(default_factory=list)  # one dict per epoch (epoch 0: the linear probe)
    best: dict = field(default_factory=dict)  # {"epoch", "val_accuracy", "val_loss"}
    probe: dict = field(default_factory=dict)  # the probe head's JSON state and its scores
    failures: list = field(default_factory=list)  # [relative path, reason] of unreadable pictures
    state: dict = field(default_factory=dict)  # trainable tensors now
    best_state: dict = field(default_factory=dict)  # trainable tensors at the best epoch
    optimizer: dict | None = None  # torch optimizer state_dict
    probe_arrays: dict = field(default_factory=dict)  # the probe head's arrays
    plan: dict = field(default_factory=dict)  # the time budget's plan: {"epochs", "final_seconds"}

    def save(self, path: Path) -> None:
        import torch
        from safetensors.torch import save_file

        from ..store.fsio import fsync_path, replace

        tensors = {f"state.{k}": v.detach().contiguous() for k, v in self.state.items()}
        tensors.update({f"best.{k}": v.detach().contiguous() for k, v in self.best_state.items()})
        tensors.update({f"probe.{k}": torch.from_numpy(np.array(v, order="C")) for k, v in self.probe_arrays.items()})
        opt_meta = None
        if self.optimizer is not None:
            opt_meta = {"param_groups": self.optimizer["param_groups"], "scalars": {}}
            for idx, st in self.optimizer["state"].items():
                for name, value in st.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"opt.{idx}.{name}"] = value.detach().contiguous()
                    else:
                        opt_meta["scalars"][f"{idx}.{name}"] = value
        meta = {"format": CHECKPOINT_FORMAT, "checkpoint": json.dumps({
            "settings": self.settings, "epoch": self.epoch, "history": self.history, "best": self.best,
            "probe": self.probe, "failures": self.failures, "optimizer": opt_meta,
            "plan": self.plan})}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        fsync_path(tmp)
        replace(tmp, path)


def load_checkpoint(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise TransferkitError(
            f"{path}: not a readable fine-tuning checkpoint ({first_line(exc, 120)})"
        ) from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise TransferkitError(f"{path}: not a transferkit fine-tuning checkpoint")
    record = json.loads(meta["checkpoint"])

    def part(prefix):
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer = None
    if record.get("optimizer") is not None:
        state: dict = {}
        for key, value in part("opt.").items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for key, value in record["optimizer"]["scalars"].items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        optimizer = {"state": state, "param_groups": record["optimizer"]["param_groups"]}
    return Checkpoint(
        settings=record["settings"],
        epoch=int(record["epoch"]),
        history=record["history"],
        best=record["best"],
        probe=record["probe"],
        failures=record["failures"],
        state=part("state."),
        best_state=part("best."),
        optimizer=optimizer,
        probe_arrays={k: v.numpy() for k, v in part("probe.").items()},
        plan=record.get("plan") or {},
    )


def check_settings(path: Path, saved: dict, now: dict) -> None:
    """A resume must use the settings the checkpoint was made with."""
    diff = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if diff:
        k = diff[0]
        raise AdvisedError(
            "{path}: was made with {key}={old!r}, not {new!r}; resume with the same settings ({n} differ), "
            "or pass {o[overwrite!]} to start again",
            path=path, key=k, old=saved.get(k), new=now.get(k), n=len(diff),
        )


def torch_state(tensors: dict) -> dict:
    """Tensors as torch tensors (a no-op for a loaded checkpoint; copies for live ones)."""
    return {k: v.detach().clone() for k, v in tensors.items()}
