"""``finetune``: linear probe, then fine-tune the top stages (LP-FT), with early stopping on a validation
part of the train split, a checkpoint after every epoch, and a model file that ``predict``,
``evaluate`` and ``export`` take as they take a frozen one.

How an epoch is made cheap on a few CPU cores (measured in BENCHMARKS.md):
- the lower, frozen part of the network runs without gradients; what it computes for an un-augmented
  picture never changes, so it is computed once and kept in memory for the validation and test images,
  and for the training images too when augmentation is off (``augment="none"``). With augmentation each
  epoch sees new pictures, so the training images go through the lower part every epoch;
- channels_last layout; autocast on CUDA (bf16, or fp16 with a gradient scaler); on the CPU fp32 by
  default, since bf16 autocast did not make the training step faster on the AVX-512 BF16 machine it was
  measured on (``precision="bf16"`` to try it);
- decoding and augmentation run in threads ahead of the network (:func:`.data.batches`).

Determinism: the shuffling and the augmentation of epoch ``e`` come from generators seeded with
``(seed, e)``, the network runs in eval mode (no dropout), and a checkpoint stores everything training
changes, so a resumed run repeats the computations of an uninterrupted one (same machine and thread
count: usually bit-identical, at worst last-bit rounding differences; see docs/finetune.md and
tests/test_finetune.py).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..backbones import DEFAULT_MODEL
from ..errors import AdvisedError, TransferkitError
from ..store.lock import holds_output_lock
from .checkpoint import Checkpoint, check_settings, checkpoint_path, load_checkpoint, torch_state
from .data import AUGMENTS, Pictures, batches, split_parts

Progress = Callable[[str, int, int], None]  # (what, done, total)
CACHE_BUDGET = 2 << 30  # bytes of lower-part outputs kept in memory at most
DEFAULT_MAX_MINUTES = 12.0  # the whole run's time budget: epochs are planned after the first one to fit it


@dataclass
class FinetuneResult:
    path: Path
    model: object  # TrainedModel
    probe_test: dict  # metrics of the linear probe (frozen backbone) on the test split
    test: dict  # metrics of the fine-tuned model on the same test images
    history: list
    best_epoch: int
    epochs_run: int  # epochs finished in this call
    resumed_from: int  # epochs a checkpoint already held (0: fresh start)
    stopped_early: bool
    seconds: float
    epoch_seconds: list = field(default_factory=list)  # this call's epochs
    failures: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # train/val/test images used
    precision: str = "fp32"
    cache: str = ""
    tuned_head_test: dict = field(default_factory=dict)  # the fine-tuned head (before the refit) on the test split
    refit: dict | None = None  # the refitted head: rows, seconds, scaling, C, CV accuracy
    planned_epochs: int = 0  # epochs the time budget allowed (at most ``epochs``)


def resolve_precision(precision: str, device: str) -> str:
    import torch

    precision = (precision or "auto").lower()
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise TransferkitError(f"unknown precision {precision!r}; choose from auto, fp32, bf16, fp16")
    if precision != "auto":
        if precision == "fp16" and not device.startswith("cuda"):
            raise TransferkitError("precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # On the CPU, fp32: measured on an AVX-512 BF16 machine, bf16 autocast did not make the training step
    # of the top stages faster (BENCHMARKS.md, "Fine-tuning"); --precision bf16 is there to try.
    return "fp32"


def resolve_lower_precision(lower_precision: str, precision: str, device: str) -> str:
    """The precision of the frozen lower part while it computes the augmented training pictures. "auto": bf16
    on a CPU with native bf16 (measured faster there for this forward pass, BENCHMARKS.md) when the rest
    trains in fp32, else the training precision. Cached outputs (validation, test) and the refit's features
    always use the training precision."""
    import torch

    if (lower_precision or "auto").lower() != "auto":
        return resolve_precision(lower_precision, device)  # checked like the training precision
    if device == "cpu" and precision == "fp32" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16"
    return precision


@holds_output_lock("output")
def finetune(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str = DEFAULT_MODEL,
    unfreeze: int | str = 4,
    epochs: int = 10,
    lr: float = 1e-4,
    backbone_lr: float | None = None,
    batch_size: int = 32,
    augment: str = "standard",
    features: str | os.PathLike | None = None,
    test_size: float = 0.25,
    seed: int = 42,
    val_size: float = 0.15,
    patience: int = 3,
    warmup_epochs: float = 1.0,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    refit: bool = True,
    tta: str = "ten-crop",
    max_minutes: float | None = DEFAULT_MAX_MINUTES,
    bn: str = "frozen",
    image_size: int | tuple[int, int] | None = None,
    precision: str = "auto",
    lower_precision: str = "auto",
    device: str = "auto",
    workers: int | None = None,
    cache: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``data`` and write the model file ``output``; see the module docstring.

    The split is the one ``extract`` makes with the same ``test_size``/``seed``; ``val_size`` of the
    train split is held out for early stopping (``patience`` epochs without a better validation
    accuracy). The linear probe (logistic regression with C chosen by cross-validation on the rest of
    the train split) starts the head; then the top ``unfreeze`` stages ("all": every layer) train with
    AdamW at ``backbone_lr`` (default ``lr``) and the head at ``lr``, with ``warmup_epochs`` of
    linear warm-up then a cosine decay over ``epochs``. ``bn``: "frozen" (keep ImageNet BatchNorm
    statistics) or "train". ``features``: a feature file from ``extract`` of the same data and backbone,
    used for the probe instead of recomputing frozen features. ``cache=False`` recomputes the frozen
    part every time (for measurements). ``resume``: continue from ``output``'s checkpoint.
    """
    import torch

    from ..backbones.modules import TTAS
    from ..backbones.registry import create_backbone
    from ..engines.factory import resolve_device
    from .model import TunableNet

    start = time.perf_counter()
    output = Path(output)
    ckpt_path = checkpoint_path(output)
    _check_output(output, ckpt_path, resume, overwrite)
    if augment not in AUGMENTS:
        raise TransferkitError(f"unknown augmentation {augment!r}; choose from {', '.join(AUGMENTS)}")
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise TransferkitError("epochs, batch size and patience must be at least 1")
    if not 0 < test_size < 1 or not 0 < val_size < 1:
        raise TransferkitError("test size and validation size must be between 0 and 1")
    if not 0 <= label_smoothing < 1:
        raise TransferkitError("label smoothing must be at least 0 and below 1")
    if tta != "none" and tta not in TTAS:  # the augmentations a rebuilt backbone knows how to replay
        raise TransferkitError(f"unknown test-time augmentation {tta!r}; choose from {', '.join((*TTAS, 'none'))}")
    flip = tta in ("hflip", "ten-crop")  # the candidates' features: each picture and its mirror image
    ten_crop = tta == "ten-crop"  # the kept network's: the five crops and their mirror images (below)
    if max_minutes is not None and max_minutes <= 0:
        raise TransferkitError("the time budget (max minutes) must be positive")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    lower_precision = resolve_lower_precision(lower_precision, precision, device)
    parts = split_parts(data, test_size, seed, val_size)
    K = len(parts.class_names)

    backbone = create_backbone(model, image_size=image_size)
    net = backbone.net
    tn = TunableNet(net, unfreeze, bn)
    backbone_lr = lr if backbone_lr is None else float(backbone_lr)
    settings = {"data": str(Path(data).resolve()), "model": model, "weights_sha256": backbone.weights_sha256,
                "preprocess": backbone.preprocess.to_dict(), "unfreeze": str(unfreeze), "epochs": int(epochs),
                "lr": float(lr), "backbone_lr": backbone_lr, "batch_size": int(batch_size), "augment": augment,
                "test_size": float(test_size), "seed": int(seed), "val_size": float(val_size),
                "patience": int(patience), "warmup_epochs": float(warmup_epochs),
                "weight_decay": float(weight_decay), "label_smoothing": float(label_smoothing), "refit": bool(refit),
                "tta": tta, "max_minutes": None if max_minutes is None else float(max_minutes), "bn": bn,
                "precision": precision, "lower_precision": lower_precision}
    ck = None
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        check_settings(ckpt_path, ck.settings, settings)
    resumed_from = ck.epoch if ck else 0

    dev = torch.device(device)
    net.to(dev, memory_format=torch.channels_last)
    def amp():
        return _autocast(dev, precision)

    def lower_amp():  # the frozen lower part on augmented training pictures (no gradient, never cached)
        return _autocast(dev, lower_precision)

    pictures = Pictures(backbone.preprocess, augment, seed)
    failures: dict[int, str] = {}
    rel_index = {p: i for i, p in enumerate(parts.rel_paths)}
    if ck:
        failures.update({rel_index[p]: r for p, r in ck.failures if p in rel_index})

    # -- one pass over the pictures without augmentation: frozen features (for the probe) and the
    #    lower part's outputs (kept where they stay valid) --------------------------------------------
    file_feats = _features_from_file(features, backbone, parts, test_size, seed) if features and not ck else None
    per_image = _lower_bytes(tn, backbone.preprocess.input_size, amp, dev)
    # the training pictures' un-augmented outputs: the training input itself with augment "none"; with
    # augmentation, what the end's features (the choice of the network and the refit) start from
    cache_train = cache and (augment == "none" or refit)
    want = {"val": cache, "test": cache, "train": cache_train}
    n_cached = len(parts.val) + len(parts.test) + (len(parts.train) if cache_train else 0)
    budget_ok = per_image * n_cached * (2 if flip else 1) <= CACHE_BUDGET  # flip: the mirror images' too
    want = {k: v and budget_ok for k, v in want.items()}
    need_feats = ck is None and file_feats is None
    caches: dict[str, dict] = {}
    t_pass, n_pass = time.perf_counter(), 0
    feats: dict[str, tuple] = {}
    for name in ("train", "val", "test"):
        rows = _ok(getattr(parts, name), failures)
        if not (want[name] or need_feats):
            continue
        c_rows, c_h, c_hf, f_rows, f_x, seen = [], [], [], [], [], 0
        for ok, arrays, bad in batches(rows, parts.paths, pictures, batch_size, None, workers):
            failures.update(dict(bad))
            seen += len(ok) + len(bad)
            n_pass += len(ok)
            if progress:
                progress(f"frozen pass ({name})", seen, len(rows))
            if not len(ok):
                continue
            x = torch.from_numpy(arrays).to(dev).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), amp():
                h = tn.lower(x)
                if need_feats:
                    f_rows.append(ok)
                    f_x.append(tn.upper(h).float().cpu().numpy())
            if want[name]:
                c_rows.append(ok)
                c_h.append(h)
                if flip:  # the mirror images, for the test-time augmented features at the end
                    with torch.no_grad(), amp():
                        c_hf.append(tn.lower(x.flip(3)))
        if want[name] and c_rows:
            caches[name] = {"rows": np.concatenate(c_rows), "h": torch.cat(c_h)}
            if flip:
                caches[name]["hf"] = torch.cat(c_hf)
        if need_feats and f_rows:
            feats[name] = (np.concatenate(f_rows), np.concatenate(f_x))
    pass_rate = n_pass / max(time.perf_counter() - t_pass, 1e-6)  # images per second through the frozen pass
    # (0 when features came from a file and nothing was cached: then the validation pass, from the pictures)
    if file_feats is not None:
        feats = file_feats
        for name, (rows, _) in feats.items():  # pictures extract could not read
            keep = set(rows.tolist())
            failures.update(
                {
                    int(r): "not in the feature file (unreadable when extracted)"
                    for r in getattr(parts, name)
                    if int(r) not in keep
                }
            )

    train_rows = _ok(parts.train, failures)
    val_rows = _ok(parts.val, failures)
    test_rows = _ok(parts.test, failures)
    counts = {"train": len(train_rows), "val": len(val_rows), "test": len(test_rows)}

    # -- linear probe ----------------------------------------------------------------------------------
    from ..heads import HEADS, make_head

    if ck is None:
        Xtr, ytr = feats["train"][1], parts.labels[feats["train"][0]]
        present = np.unique(ytr)
        if len(present) < K:
            missing = [parts.class_names[i] for i in range(K) if i not in set(present.tolist())]
            raise TransferkitError(
                f"{data}: class {missing[0]!r} has no training image left after holding out "
                "the test and validation parts; it needs more images"
            )
        t_probe = time.perf_counter()
        probe = make_head("logreg", random_state=seed).fit(Xtr, ytr)
        t_probe = time.perf_counter() - t_probe
        probe_arrays, probe_info = probe.to_state()
        probe_record = {"info": probe_info, "test": _probe_metrics(probe, feats.get("test"), parts)}
    else:
        probe_arrays, probe_record = ck.probe_arrays, ck.probe
        probe = HEADS["logreg"].from_state(probe_arrays, probe_record["info"])
    from .model import StandardisedLinear

    tn.head = StandardisedLinear(
        probe_arrays["mean"], probe_arrays["scale"], probe_arrays["coef"], probe_arrays["intercept"],
        scaling=probe_record["info"].get("scaling", "standardise"),
    ).to(dev)

    # -- fine-tuning -----------------------------------------------------------------------------------
    opt = torch.optim.AdamW(tn.param_groups(lr, backbone_lr, weight_decay))
    steps_per_epoch = max(1, math.ceil(len(train_rows) / batch_size))
    total = epochs * steps_per_epoch
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), total // 2)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def val_scores(state_rows, cache_name):
        return _score(tn, caches.get(cache_name), state_rows, parts, pictures, batch_size, workers, dev, amp, failures)

    initial_state = torch_state(tn.trainable_state())  # epoch 0: the pretrained backbone and the probe
    if ck is None:
        t_val = time.perf_counter()
        val_loss, val_acc = val_scores(val_rows, "val")
        t_val = time.perf_counter() - t_val
        val_rate = len(val_rows) / max(t_val, 1e-6)
        full_rate = pass_rate or val_rate  # images/s of the whole network on pictures
        # pictures/s of the end's ten-crop pass (ONNX Runtime, ten views), measured against the first pass:
        # 0.74-0.98x its rate when it also ran the mirror images for the cache, ~0.4x a plain pass's
        mirrored = flip and bool(caches) and pass_rate > 0
        plan = {"final_seconds": _end_seconds(
            refit, flip, len(train_rows), len(val_rows), len(test_rows), t_probe,
            # images/s of the end's feature passes: the upper part on cached outputs, as just measured
            val_rate if "val" in caches and "train" in caches else full_rate,
            ten_crop_rate=(0.7 if mirrored else 0.4) * full_rate if ten_crop else None)}
        tr_loss, tr_acc = _probe_train_scores(probe, feats["train"], parts)
        history = [
            {
                "epoch": 0,
                "train_loss": tr_loss,
                "train_accuracy": tr_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": 0.0,
                "seconds": 0.0,
            }
        ]
        best = {"epoch": 0, "val_accuracy": val_acc, "val_loss": val_loss}
        best_state = torch_state(tn.trainable_state())
        done = 0
    else:
        tn.load_trainable_state({k: v.to(dev) for k, v in ck.state.items()})
        opt.load_state_dict(ck.optimizer)
        history, best, done = ck.history, ck.best, ck.epoch
        best_state = {k: v.to(dev) for k, v in ck.best_state.items()}
        plan = dict(ck.plan)

    def save_checkpoint(epoch):
        Checkpoint(
            settings=settings,
            epoch=epoch,
            history=history,
            best=best,
            probe=probe_record,
            failures=[[parts.rel_paths[r], why] for r, why in sorted(failures.items())],
            state={k: v.cpu() for k, v in tn.trainable_state().items()},
            best_state={k: v.cpu() for k, v in best_state.items()},
            optimizer=opt.state_dict(),
            probe_arrays=probe_arrays,
            plan=plan,
        ).save(ckpt_path)

    if ck is None:
        save_checkpoint(0)  # the probe is kept: a resume never refits it
    stopped_early = done - best["epoch"] >= patience
    epoch_seconds = []
    last = plan.get("epochs", epochs)
    if "epochs" in plan:
        total = last * steps_per_epoch
    epoch = done
    while epoch < last and not stopped_early:
        epoch += 1
        t0 = time.perf_counter()
        tn.train_mode()
        order = np.random.default_rng([seed, epoch]).permutation(train_rows)
        loss_sum, correct, seen = 0.0, 0, 0
        step = (epoch - 1) * steps_per_epoch
        for rows, h in _inputs(
            tn, caches.get("train") if augment == "none" else None, order, parts, pictures, batch_size, epoch,
            workers, dev, lower_amp, failures,
        ):
            if precision == "fp32":
                h = h.float()
            factor = (
                (step + 1) / max(1, warmup)
                if step < warmup
                else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            )
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor
            y = torch.from_numpy(parts.labels[rows]).to(dev)
            with amp():
                logits = tn(h)
            loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            step += 1
            loss_sum += float(loss.detach()) * len(rows)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(rows)
            if progress:
                progress(f"epoch {epoch}/{last}", seen, len(train_rows))
        tn.eval()
        val_loss, val_acc = val_scores(val_rows, "val")
        seconds = time.perf_counter() - t0
        epoch_seconds.append(seconds)
        history.append(
            {
                "epoch": epoch,
                "train_loss": loss_sum / max(1, seen),
                "train_accuracy": correct / max(1, seen),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": opt.param_groups[1]["lr"],
                "seconds": round(seconds, 3),
            }
        )
        # with the refit, the pretrained network (epoch 0) is judged at the end against the tuned ones by
        # its refitted head, so it is no rival here: the jointly trained head's validation scores dip for
        # the first epochs while it adapts, and early stopping must not end the tuning for that
        if (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]) or (refit and best["epoch"] == 0):
            best = {"epoch": epoch, "val_accuracy": val_acc, "val_loss": val_loss}
            best_state = torch_state(tn.trainable_state())
        if "epochs" not in plan:  # after the first epoch: as many epochs as the time budget holds
            last = plan["epochs"] = planned_epochs(
                epochs, max_minutes, time.perf_counter() - start, seconds, plan["final_seconds"]
            )
            total = last * steps_per_epoch  # the cosine decay ends with the last planned epoch
        save_checkpoint(epoch)
        done = epoch
        if epoch - best["epoch"] >= patience:
            stopped_early = epoch < last
            break

    # -- the network kept: with the refit, each candidate (the probe's epoch 0, the best epoch on the
    #    validation part, the last epoch) gets the head the refit would give it, fitted on the train part
    #    and scored on the validation part. The test split is scored once, at the end -----------------------
    tn.eval()
    from ..evaluate.metrics import classification_metrics

    def features_of(rows, cache_name):
        return _features(tn, caches.get(cache_name), rows, parts, pictures, batch_size, workers, dev, amp, failures,
                         flip)

    choice, chosen = None, best["epoch"]
    if refit:
        states = {0: initial_state, best["epoch"]: best_state, done: torch_state(tn.trainable_state())}
        y_tr, y_va = parts.labels[train_rows], parts.labels[val_rows]
        choice, cand_feats = {}, {}
        for e in sorted(states):
            tn.load_trainable_state(states[e])
            cand_feats[e] = features_of(train_rows, "train"), features_of(val_rows, "val")
            h = make_head("logreg", random_state=seed).fit(cand_feats[e][0], y_tr)
            v_loss, v_acc = _loss_accuracy(h.predict_proba(cand_feats[e][1]), y_va)
            choice[e] = {"val_loss": v_loss, "val_accuracy": v_acc}
        chosen = choose_network(choice)
        best_state = states[chosen]
    val_best = best["epoch"]  # the best epoch by the fine-tuned head's validation scores
    best = {**best, "epoch": chosen}
    tn.load_trainable_state(best_state)
    fit_rows = np.concatenate([train_rows, val_rows])
    if ten_crop:  # the kept network's features as predict and evaluate compute them: ten views, same engine
        got = _ten_crop_features(backbone, net, parts, [fit_rows, test_rows] if refit else [test_rows], batch_size,
                                 workers, device, failures, progress)
        (fit_rows, f_fit), (test_rows, f_test) = got if refit else ((fit_rows, None), got[0])
    else:
        f_test = features_of(test_rows, "test")
        f_fit = np.concatenate(cand_feats[chosen]) if refit else None
    tuned_head = _tuned_head(tn, probe_arrays, probe_record)
    head, refit_record = tuned_head, None
    if refit:  # the product's own head, fitted on the chosen network's features of every train image
        y_fit = parts.labels[fit_rows]
        t_refit = time.perf_counter()
        head = make_head("logreg", random_state=seed).fit(f_fit, y_fit)
        refit_record = {"rows": int(len(y_fit)), "seconds": round(time.perf_counter() - t_refit, 2),
                        **head.describe()}

    def test_metrics(h):
        if not len(test_rows):
            return {"n_test": 0}
        return classification_metrics(parts.labels[test_rows], h.predict_proba(f_test), parts.class_names)

    test = test_metrics(head)
    tuned_head_test = test_metrics(tuned_head) if refit else test
    result_model = _model_file(
        head,
        net,
        backbone,
        probe_record,
        parts,
        settings,
        history,
        best,
        failures,
        counts,
        test,
        stopped_early,
        {"refit": refit_record, "tuned_head_test_accuracy": tuned_head_test.get("accuracy"), "plan": plan,
         "val_best_epoch": val_best, "choice": None if choice is None else {str(e): v for e, v in choice.items()}},
    )
    result_model.save(output)
    ckpt_path.unlink(missing_ok=True)
    return FinetuneResult(
        path=output,
        model=result_model,
        probe_test=probe_record["test"],
        test=test,
        history=history,
        best_epoch=best["epoch"],
        epochs_run=len(epoch_seconds),
        resumed_from=resumed_from,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start,
        epoch_seconds=epoch_seconds,
        failures=[(parts.rel_paths[r], why) for r, why in sorted(failures.items())],
        counts=counts,
        precision=precision if lower_precision == precision else f"{precision}; frozen part {lower_precision}",
        cache=", ".join(k for k, v in caches.items()) or "none",
        tuned_head_test=tuned_head_test,
        refit=refit_record,
        planned_epochs=last,
    )


# ------------------------------------------------------------------------------------------------------
def _check_output(output: Path, ckpt: Path, resume: bool, overwrite: bool) -> None:
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    if overwrite:
        ckpt.unlink(missing_ok=True)
        return
    if output.exists():
        raise AdvisedError(
            "{output}: already exists; pass {o[overwrite!]} to replace it, or choose another {o[output]}", output=output
        )
    if ckpt.exists() and not resume:
        raise AdvisedError(
            "{ckpt}: an interrupted fine-tuning of {output} is there; pass {o[resume!]} to continue it or "
            "{o[overwrite!]} to start again",
            ckpt=ckpt, output=output,
        )


def _autocast(dev, precision: str):
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=dev.type, dtype=dtype)


def _ok(rows: np.ndarray, failures: dict) -> np.ndarray:
    return np.asarray([r for r in rows if int(r) not in failures], dtype=np.int64)


def _lower_bytes(tn, input_size, amp, dev) -> int:
    import torch

    with torch.no_grad(), amp():
        h = tn.lower(torch.zeros((1, 3, *input_size), device=dev))
    return h.numel() * h.element_size()


def _inputs(tn, cache, rows, parts, pictures, batch_size, epoch, workers, dev, amp, failures, flip=False):
    """``(rows, lower-part output)`` per batch of ``rows``, from the cache or from the pictures
    (augmented when ``epoch`` is given). With ``flip``, the batch's outputs followed by its mirror images'
    (twice the rows, as :class:`..backbones.modules.FlipAveraged` stacks them; each picture decoded once)."""
    import torch

    if cache is not None:
        where = {int(r): i for i, r in enumerate(cache["rows"])}
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            idx = torch.as_tensor([where[int(r)] for r in chunk])
            yield chunk, torch.cat([cache["h"][idx], cache["hf"][idx]]) if flip else cache["h"][idx]
        return
    for ok, arrays, bad in batches(rows, parts.paths, pictures, batch_size, epoch, workers):
        failures.update(dict(bad))
        if len(ok):
            x = torch.from_numpy(arrays).to(dev).contiguous(memory_format=torch.channels_last)
            if flip:
                x = torch.cat([x, x.flip(3)])
            with amp():
                h = tn.lower(x)
            yield ok, h


def _probabilities(tn, cache, rows, parts, pictures, batch_size, workers, dev, amp, failures) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for _, h in _inputs(tn, cache, rows, parts, pictures, batch_size, None, workers, dev, amp, failures):
            with amp():
                logits = tn(h)
            out.append(torch.softmax(logits.float(), 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(parts.class_names)), np.float32)


def _features(tn, cache, rows, parts, pictures, batch_size, workers, dev, amp, failures, tta=False) -> np.ndarray:
    """Pooled features of the (fine-tuned) network for ``rows``, un-augmented, float32; with ``tta``, the
    mean of each picture's and its mirror image's (as :class:`..backbones.modules.FlipAveraged` computes them
    when the model file is used)."""
    import torch

    out = []
    with torch.no_grad():
        for _, h in _inputs(tn, cache, rows, parts, pictures, batch_size, None, workers, dev, amp, failures, tta):
            with amp():
                f = tn.upper(h).float()
            if tta:  # the pictures' features, then their mirror images': averaged
                f = f.reshape(2, -1, f.shape[-1]).mean(0)
            out.append(f.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, tn.net.num_features), np.float32)


def _ten_crop_features(backbone, net, parts, row_sets, batch_size, workers, device, failures, progress):
    """``[(rows read, features)]`` of the network for each of ``row_sets``, averaged over the five crops and
    their mirror images, through the engine ``evaluate`` and ``predict`` use for the model file (ONNX Runtime
    on the CPU): the refitted head is fitted on exactly the features they compute."""
    import copy
    import dataclasses

    import torch

    from ..backbones.modules import with_tta
    from ..backbones.weights import state_dict_sha256
    from ..engines import create_engine
    from ..engines.batches import feature_batches
    from ..engines.factory import pictures_per_batch

    net.eval().to(memory_format=torch.contiguous_format)
    bb = copy.copy(backbone)  # the same network, seen through ten views
    bb.preprocess = dataclasses.replace(backbone.preprocess, five_crop=True)
    bb.features, bb.tta = with_tta(backbone.features, "ten-crop"), "ten-crop"
    bb.weights, bb.weights_sha256 = "finetuned", state_dict_sha256(net)
    engine = create_engine(bb, engine="auto", device=device)
    batch_size = pictures_per_batch(batch_size, bb.preprocess)
    total, done, out = sum(len(r) for r in row_sets), 0, []
    for rows in row_sets:
        paths = [parts.paths[r] for r in rows]
        X, ok = np.zeros((len(rows), backbone.feature_dim), np.float32), np.zeros(len(rows), bool)
        for positions, feats, bad in feature_batches(paths, bb.preprocess, engine, batch_size, workers, None):
            failures.update({int(rows[p]): why for p, why in bad})
            done += len(positions) + len(bad)
            if progress:
                progress("ten-crop features", done, total)
            if len(positions):
                X[positions], ok[positions] = feats, True
        out.append((np.asarray(rows)[ok], X[ok]))
    return out


def choose_network(choice: dict[int, dict]) -> int:
    """The epoch whose network is kept, from ``{epoch: {"val_loss", "val_accuracy"}}`` of the head the refit
    gives each candidate (fitted on the train part, scored on the validation part): the lowest validation
    log-loss (continuous, far less noisy than the accuracy of a small validation part) among the candidates
    whose validation accuracy is at least the probe's (epoch 0, always a candidate: the frozen backbone)."""
    floor = choice[0]["val_accuracy"]
    ok = [e for e, v in choice.items() if e == 0 or v["val_accuracy"] >= floor]
    return min(ok, key=lambda e: (choice[e]["val_loss"], e))


def _end_seconds(refit: bool, flip: bool, n_train: int, n_val: int, n_test: int, t_probe: float,
                 rate: float, ten_crop_rate: float | None = None) -> float:
    """What the run's end costs, for the time budget: the features of up to three candidate networks (train
    and validation parts, each picture and its mirror image with tta) at ``rate`` images/s, a logistic
    regression per candidate and the refit on every train image (each ~1.5x the probe's fit, scaled by
    rows), the test features, and a margin. With ten-crop (``ten_crop_rate``: pictures/s expected of that
    pass), the kept network's ten views of every picture through ONNX Runtime and its export instead of the
    test features."""
    passes = 2 if flip else 1
    if ten_crop_rate:
        seconds = 20.0 + (n_train + n_val + n_test) / ten_crop_rate
    else:
        seconds = 5.0 + passes * n_test / rate
    if refit:
        fit = 1.5 * t_probe
        seconds += 3 * (passes * (n_train + n_val) / rate + fit) + fit * (n_train + n_val) / max(1, n_train)
    return seconds


def planned_epochs(epochs: int, max_minutes: float | None, elapsed: float, epoch_seconds: float,
                   final_seconds: float) -> int:
    """Epochs to run in all, decided after the first (``elapsed`` seconds into the run, ``epoch_seconds``
    for that epoch): as many of ``epochs`` as fit in ``max_minutes`` with ``final_seconds`` left for the
    end (the refit and the test split); at least the one already run."""
    if max_minutes is None:
        return epochs
    more = (max_minutes * 60 - elapsed - final_seconds) // max(epoch_seconds, 1e-6)
    return int(max(1, min(epochs, 1 + more)))


def _tuned_head(tn, probe_arrays, probe_record):
    """The fine-tuned head (the probe's scaling, the trained weights) as a logistic-regression head."""
    from ..heads import HEADS

    arrays = dict(probe_arrays)
    arrays["coef"] = tn.head.weight.detach().cpu().numpy().astype(np.float32)
    arrays["intercept"] = tn.head.bias.detach().cpu().numpy().astype(np.float32)
    return HEADS["logreg"].from_state(arrays, probe_record["info"])


def _score(tn, cache, rows, parts, pictures, batch_size, workers, dev, amp, failures) -> tuple[float, float]:
    """(mean log-loss, accuracy) on ``rows``."""
    proba = _probabilities(tn, cache, rows, parts, pictures, batch_size, workers, dev, amp, failures)
    y = parts.labels[rows]
    if not len(y):
        return float("nan"), float("nan")
    return _loss_accuracy(proba, y)


def _loss_accuracy(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from ..heads._common import log_loss

    return log_loss(y, proba) + 0.0, float(np.mean(proba.argmax(1) == y))  # + 0.0: no "-0.0" in the history


def _probe_metrics(probe, test, parts) -> dict:
    from ..evaluate.metrics import classification_metrics

    if test is None or not len(test[0]):
        return {"n_test": 0}
    rows, X = test
    return classification_metrics(parts.labels[rows], probe.predict_proba(X), parts.class_names)


def _probe_train_scores(probe, train, parts) -> tuple[float, float]:
    rows, X = train
    return _loss_accuracy(probe.predict_proba(X), parts.labels[rows])


def _features_from_file(features, backbone, parts, test_size, seed) -> dict:
    """Frozen features of the train/val/test rows from a feature file of the same data and backbone."""
    from types import SimpleNamespace

    from ..store import open_features
    from ..training import _check_same_backbone

    with open_features(features) as ff:
        ff.require_complete("fine-tune with")
        _check_same_backbone(SimpleNamespace(backbone=backbone.spec()), ff)
        for key, want in (("test_size", test_size), ("seed", seed)):
            if float(ff.attrs.get(key, -1)) != float(want):
                raise TransferkitError(
                    f"{features}: was extracted with --{key.replace('_', '-')} "
                    f"{ff.attrs.get(key)}, not {want}; the splits would differ"
                )
        if ff.label_names != parts.class_names:
            raise TransferkitError(f"{features}: its classes differ from {parts.root}'s")
        X, _ = ff.load()
        where = {p: i for i, p in enumerate(ff.paths)}
    out = {}
    for name in ("train", "val", "test"):
        rows = [int(r) for r in getattr(parts, name) if parts.rel_paths[r] in where]
        out[name] = (np.asarray(rows, np.int64), X[[where[parts.rel_paths[r]] for r in rows]])
    return out


def _model_file(
    head, net, backbone, probe_record, parts, settings, history, best, failures, counts, test, stopped_early, extra
):
    """The trained-model file: the fine-tuned network's weights, the head, and the record."""
    import torch

    from ..backbones.weights import state_dict_sha256
    from ..heads import TrainedModel
    from .model import net_state_arrays

    net.to("cpu", memory_format=torch.contiguous_format).eval()
    spec = backbone.spec()
    spec.update(
        **({"tta": settings["tta"]} if settings.get("tta", "none") != "none" else {}),
        # ten-crop: the preprocessing lays the five crops side by side for the features module to split
        **({"preprocess": {**spec["preprocess"], "five_crop": True}} if settings.get("tta") == "ten-crop" else {}),
        weights="finetuned",
        weights_sha256=state_dict_sha256(net),
        weights_source=f"fine-tuned from {backbone.weights_source}",
        base_weights_sha256=backbone.weights_sha256,
    )
    record = {
        "finetune": {k: v for k, v in settings.items() if k not in ("preprocess", "weights_sha256")},
        "data": settings["data"],
        "test_size": settings["test_size"],
        "seed": settings["seed"],
        "n_train": counts["train"],
        "n_val": counts["val"],
        "n_test": counts["test"],
        "best_epoch": best["epoch"],
        "stopped_early": bool(stopped_early),
        "history": {**{k: [r[k] for r in history] for k in history[0]}, "best_epoch": best["epoch"]},
        "probe_test_accuracy": probe_record["test"].get("accuracy"),
        "test_accuracy": test.get("accuracy"),
        **extra,
        "skipped": [[parts.rel_paths[r], why] for r, why in sorted(failures.items())],
    }
    return TrainedModel(
        head=head,
        class_names=list(parts.class_names),
        backbone=spec,
        training=record,
        backbone_state=net_state_arrays(net),
    )
