"""`transferkit finetune`: LP-FT on tiny generated images at a small input size, the split `extract` makes,
the model file with the fine-tuned backbone that predict/evaluate/export use, and crash-safety."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset, run_cli

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.finetuning.checkpoint import checkpoint_path, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@contextlib.contextmanager
def torch_threads(n: int):
    """Results are bit-identical run to run at the same thread count (other tests' engines may change it)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)

# no time budget: the same epochs on a busy machine
SMALL = dict(image_size=32, batch_size=8, epochs=2, patience=5, max_minutes=None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ft") / "tiny set", per_class=10, seed=3)


@pytest.fixture(scope="module")
def tuned(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ftmodel") / "tuned.safetensors"
    with torch_threads(1):
        return tk.finetune(data, out, **SMALL)


def _tensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_same_model(a_path, b_path):
    """Resumed == uninterrupted up to float rounding: most runs are bit-identical, but a resumed process
    can round the last bit of a few BatchNorm gradients differently (measured: max 2.4e-7 after 2 epochs;
    vectorised sums depend on memory alignment). The bound documented in docs/finetune.md."""
    a, b = _tensors(a_path), _tensors(b_path)
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) if a[k].size else 0.0 for k in a)
    assert worst <= 1e-5, worst


def test_uses_the_split_extract_makes_and_never_trains_on_test(data, tuned, tmp_path):
    from transferkit.finetuning.data import split_parts

    ex = tk.extract(data, tmp_path / "f.h5", image_size=32, batch_size=8)
    with tk.open_features(ex.path) as ff:
        extract_test = sorted(p for p, s in zip(ff.paths, ff.split) if s == 1)
    parts = split_parts(data, 0.25, 42, 0.15)
    assert sorted(parts.rel_paths[r] for r in parts.test) == extract_test
    assert not set(parts.test) & (set(parts.train) | set(parts.val))
    assert set(parts.train) | set(parts.val) | set(parts.test) == set(range(len(parts.labels)))
    c = tuned.counts
    assert (c["train"], c["val"], c["test"]) == (len(parts.train), len(parts.val), len(parts.test))
    assert tuned.test["n_test"] == len(extract_test) == tuned.probe_test["n_test"]


def test_model_file_holds_the_tuned_backbone_head_and_curves(tuned):
    model = tk.load_model(tuned.path)
    spec = model.backbone
    assert spec["weights"] == "finetuned" and spec["weights_sha256"] != spec["base_weights_sha256"]
    assert model.backbone_state is not None and "conv_head.weight" in model.backbone_state
    names = _tensors(tuned.path)
    assert any(k.startswith("backbone.blocks.6") for k in names) and "head.coef" in names
    hist = model.training["history"]
    assert hist["epoch"] == [0, 1, 2]
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        assert len(hist[key]) == 3 and all(np.isfinite(hist[key]))
    assert hist["best_epoch"] == tuned.best_epoch
    # only the top stages changed: the stem and the first stages are the pretrained ones
    from transferkit.backbones import create_backbone

    ref = create_backbone("efficientnet_lite0", image_size=32).net.state_dict()
    st = model.backbone_state
    assert np.array_equal(st["conv_stem.weight"], ref["conv_stem.weight"].numpy())
    assert np.array_equal(st["blocks.2.0.conv_pw.weight"], ref["blocks.2.0.conv_pw.weight"].numpy())
    if tuned.best_epoch > 0:
        assert not np.array_equal(st["conv_head.weight"], ref["conv_head.weight"].numpy())
    # BatchNorm statistics frozen by default
    assert np.array_equal(st["blocks.6.0.bn1.running_mean"], ref["blocks.6.0.bn1.running_mean"].numpy())


def test_predict_evaluate_export_use_the_tuned_network(tuned, data, tmp_path):
    import onnxruntime as ort

    from transferkit.backbones import PreprocessConfig
    from transferkit.backbones.finetuned import finetuned_backbone
    from transferkit.data import list_images, load_image

    model = tk.load_model(tuned.path)
    files = list_images(data)[:6]
    r = tk.predict(model, files, top_k=3, engine="torch", precision="fp32")
    names = model.class_names
    got = np.zeros((len(files), 3), np.float32)
    for row, p in enumerate(r.predictions):
        for label, prob in zip(p.labels, p.probabilities):
            got[row, names.index(label)] = prob
    # the same numbers by hand: fine-tuned features -> head
    import torch

    bb = finetuned_backbone(model, "test")
    pre = PreprocessConfig.from_dict(model.backbone["preprocess"])
    x = np.stack([pre.to_array(load_image(f, min_size=pre.min_decode_size)) for f in files])
    with torch.inference_mode():
        feats = bb.features(torch.from_numpy(x)).numpy()
    assert np.abs(model.predict_proba(feats) - got).max() < 1e-4

    # evaluate on the images; refused on a feature file (frozen features) with one clear line
    m = tk.evaluate(model, data)
    assert m["n_test"] == tuned.test["n_test"] and abs(m["accuracy"] - tuned.test["accuracy"]) <= 1 / m["n_test"] + 1e-9
    ex = tk.extract(data, tmp_path / "f.h5", image_size=32, batch_size=8)
    with pytest.raises(TransferkitError, match="fine-tuned backbone.*evaluate it on the images"):
        tk.evaluate(model, ex.path)

    # one ONNX graph equal to PyTorch (export checks it too, at 1e-4)
    res = tk.export_onnx(model, tmp_path / "tuned.onnx")
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    onnx_p = sess.run(["probabilities"], {"images": x})[0]
    assert np.abs(onnx_p - got).max() < 1e-4


def test_html_report_draws_the_curves(tuned, data, tmp_path):
    html = tmp_path / "report.html"
    m = tk.evaluate(tuned.path, data, html=html)
    text = html.read_text(encoding="utf-8")
    assert m["html"] == str(html) and "training loss and accuracy per epoch" in text and "fine-tuned" in text


def test_refuses_existing_output_and_stray_checkpoint(data, tuned, tmp_path):
    from transferkit.cli._flags import worded

    with pytest.raises(TransferkitError, match="already exists; pass overwrite=True") as e:
        tk.finetune(data, tuned.path, **SMALL)
    assert "pass --overwrite to replace it, or choose another -o" in worded(e.value)  # the CLI's words
    out = tmp_path / "m.safetensors"
    checkpoint_path(out).write_bytes(b"x")
    with pytest.raises(TransferkitError, match="pass resume=True to continue it or overwrite=True") as e:
        tk.finetune(data, out, **SMALL)
    assert "pass --resume to continue it or --overwrite to start again" in worded(e.value)
    with pytest.raises(TransferkitError, match="not a readable fine-tuning checkpoint"):
        tk.finetune(data, out, resume=True, **SMALL)


def test_interrupted_then_resumed_equals_uninterrupted(data, tuned, tmp_path):
    """Ctrl-C (KeyboardInterrupt) during epoch 2: the checkpoint keeps epoch 1; --resume ends where an
    uninterrupted run ends (up to float rounding, see assert_same_model)."""
    out = tmp_path / "r.safetensors"

    def stop_in_epoch_2(what, done, total):
        if what.startswith("epoch 2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), torch_threads(1):
        tk.finetune(data, out, progress=stop_in_epoch_2, **SMALL)
    assert not out.exists() and load_checkpoint(checkpoint_path(out)).epoch == 1
    with pytest.raises(TransferkitError, match="was made with epochs=2, not 3"):
        tk.finetune(data, out, resume=True, **{**SMALL, "epochs": 3})
    with torch_threads(1):
        r = tk.finetune(data, out, resume=True, **SMALL)
    assert r.resumed_from == 1 and r.epochs_run == 1 and not checkpoint_path(out).exists()
    assert_same_model(tuned.path, out)
    for mine, ref in zip(r.history, tuned.history, strict=True):
        assert mine.keys() == ref.keys()
        assert all(np.isclose(mine[k], ref[k], rtol=1e-4, atol=1e-6) for k in mine if k != "seconds")


@pytest.mark.slow
def test_ctrl_c_then_sigkill_then_resume_from_the_command_line(data, tmp_path):
    """Ctrl-C says what was kept; SIGKILL after an epoch; --resume ends where the uninterrupted run ends."""
    out = tmp_path / "k.safetensors"
    args = ["finetune", data, "-o", out, "--image-size", "32", "-b", "8", "--epochs", "2", "--patience", "5",
            "--max-minutes", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}  # the thread count of the run compared to
    ckpt = checkpoint_path(out)

    def start_and_signal(extra, epoch, sig):
        proc = subprocess.Popen([sys.executable, "-m", "transferkit", *map(str, args), *extra], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                if load_checkpoint(ckpt).epoch >= epoch:
                    break
            except (TransferkitError, FileNotFoundError):
                pass
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.skip("the run finished before it could be interrupted")
        proc.send_signal(sig)
        _, stderr = proc.communicate()
        return proc.returncode, stderr

    ref = tmp_path / "uninterrupted.safetensors"  # the same command, in the same kind of process
    subprocess.run([sys.executable, "-m", "transferkit", *map(str, args[:3]), ref, *map(str, args[4:])], env=env,
                   capture_output=True, check=True)
    rc, stderr = start_and_signal([], 0, signal.SIGINT)
    assert rc == 130 and "interrupted" in stderr and f"kept in {ckpt}" in " ".join(stderr.split())
    assert "--resume`" in stderr and not out.exists()
    rc, _ = start_and_signal(["--resume"], 1, signal.SIGKILL)
    assert rc == -signal.SIGKILL and not out.exists() and load_checkpoint(ckpt).epoch >= 1
    res = subprocess.run([sys.executable, "-m", "transferkit", *map(str, args), "--resume"], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resumed after epoch" in res.stdout and "frozen backbone + linear probe" in res.stdout
    assert_same_model(ref, out)


def test_cli_refuses_bad_unfreeze_in_one_line(data, tmp_path):
    res = run_cli("finetune", data, "-o", tmp_path / "m.safetensors", "--unfreeze", "9", "--image-size", "32")
    assert res.returncode == 1 and "unfreeze must be between 0 and 7" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("scaling", ["standardise", "none", "l2", "sqrt-l2"])
def test_the_torch_head_applies_the_probes_scaling(scaling):
    """The head that fine-tunes starts as the probe: same logits as the NumPy head, whatever scaling it chose."""
    import torch

    from transferkit.finetuning.model import StandardisedLinear
    from transferkit.heads import make_head

    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((60, 12))).astype(np.float32) * rng.uniform(0.1, 5, 12).astype(np.float32)
    X[:5, :3] = 0  # pooled post-ReLU features have exact zeros (the square root's gradient must stay finite)
    y = np.repeat([0, 1, 2], 20)
    head = make_head("logreg", scaling=scaling).fit(X, y)
    arrays, info = head.to_state()
    assert info["scaling"] == scaling
    lin = StandardisedLinear(arrays["mean"], arrays["scale"], arrays["coef"], arrays["intercept"], scaling=scaling)
    f = torch.from_numpy(X).requires_grad_(True)
    logits = lin(f)
    assert np.abs(logits.detach().numpy() - head.decision_function(X)).max() < 1e-4
    logits.sum().backward()
    assert torch.isfinite(f.grad).all()


def test_the_head_is_refitted_on_every_train_image(tuned, data):
    """--refit (default): the model's head is the product's logistic regression fitted on the fine-tuned
    features of the train split, validation part included; the test split is not among them."""
    import torch

    from transferkit.backbones import PreprocessConfig
    from transferkit.backbones.finetuned import finetuned_backbone
    from transferkit.data import load_image
    from transferkit.finetuning.data import split_parts
    from transferkit.heads import make_head

    model = tk.load_model(tuned.path)
    parts = split_parts(data, 0.25, 42, 0.15)
    rows = np.concatenate([parts.train, parts.val])
    assert tuned.refit["rows"] == len(rows) == model.training["refit"]["rows"]
    bb = finetuned_backbone(model, "test")
    pre = PreprocessConfig.from_dict(model.backbone["preprocess"])
    x = np.stack([pre.to_array(load_image(parts.paths[r], min_size=pre.min_decode_size)) for r in rows])
    with torch.inference_mode():
        feats = bb.features(torch.from_numpy(x)).numpy()
    again = make_head("logreg", random_state=42).fit(feats, parts.labels[rows])
    assert again.scaling_ == model.head.scaling_ and again.C_ == pytest.approx(model.head.C_)
    assert np.abs(again.predict_proba(feats) - model.head.predict_proba(feats)).max() < 1e-3
    assert model.training["tuned_head_test_accuracy"] == tuned.tuned_head_test["accuracy"]


def test_tta_averages_ten_views_or_a_picture_and_its_mirror_image(tuned, data):
    """--tta ten-crop (default): the model file records it with a preprocessing that lays the five crops side by
    side, and the rebuilt backbone's features (what predict, evaluate and export run) are the mean of the ten
    views'. hflip: the mean of the picture's and its mirror image's. A file without the key (made before --tta,
    or with --tta none) gives the plain features; an unknown value or one that does not match the
    preprocessing is refused in one line."""
    import copy

    import torch

    from transferkit.backbones.finetuned import finetuned_backbone
    from transferkit.backbones.modules import FlipAveraged, TenCropAveraged

    model = tk.load_model(tuned.path)
    assert model.backbone["tta"] == "ten-crop" and model.training["finetune"]["tta"] == "ten-crop"
    assert model.backbone["preprocess"]["five_crop"] is True
    bb = finetuned_backbone(model, "test")
    assert isinstance(bb.features, TenCropAveraged) and bb.spec()["tta"] == "ten-crop"
    assert bb.preprocess.array_size == (32, 160)
    x = torch.randn(3, 3, 32, 160)
    net = bb.features.features
    with torch.inference_mode():
        views = [net(v) for v in x.split(32, dim=3)]
        views += [net(v.flip(3)) for v in x.split(32, dim=3)]
        assert torch.allclose(bb.features(x), torch.stack(views).mean(0), atol=1e-5)
        assert not torch.allclose(views[0], views[1], atol=1e-4)  # the crops really are other pictures

    flip = copy.copy(model)
    plain_pre = {k: v for k, v in model.backbone["preprocess"].items() if k != "five_crop"}
    flip.backbone = {**model.backbone, "tta": "hflip", "preprocess": plain_pre}
    bb_flip = finetuned_backbone(flip, "flip.safetensors")
    assert isinstance(bb_flip.features, FlipAveraged) and bb_flip.preprocess.array_size == (32, 32)
    x = x[..., :32]
    with torch.inference_mode():
        plain, mirrored, both = net(x), net(x.flip(3)), bb_flip.features(x)
    assert torch.allclose(both, (plain + mirrored) / 2, atol=1e-5)

    old = copy.copy(model)
    old.backbone = {k: v for k, v in flip.backbone.items() if k != "tta"}
    bb_old = finetuned_backbone(old, "old.safetensors")
    assert not isinstance(bb_old.features, (FlipAveraged, TenCropAveraged)) and "tta" not in bb_old.spec()
    with torch.inference_mode():
        assert torch.allclose(bb_old.features(x), plain, atol=1e-6)
    old.backbone = {**flip.backbone, "tta": "vflip"}
    with pytest.raises(TransferkitError, match="old.safetensors: .*test-time augmentation 'vflip'"):
        finetuned_backbone(old, "old.safetensors")
    old.backbone = {**model.backbone, "tta": "hflip"}  # five crops side by side, but only a mirror image
    with pytest.raises(TransferkitError, match="old.safetensors: .*'hflip' does not match its preprocessing"):
        finetuned_backbone(old, "old.safetensors")


def test_the_kept_network_is_chosen_by_the_refitted_heads_validation_scores(tuned):
    """Candidates: the probe (epoch 0), the best epoch on validation, the last epoch; each scored by a logistic
    regression fitted on its train-part features, on the validation part. The lowest log-loss among those at
    least as accurate as the probe wins; epoch 0 is always a candidate."""
    from transferkit.finetuning.loop import choose_network

    def c(*rows):
        return {e: {"val_loss": loss, "val_accuracy": acc} for e, loss, acc in rows}

    assert choose_network(c((0, 0.30, 0.90), (3, 0.20, 0.90), (5, 0.25, 0.95))) == 3  # loss decides
    assert choose_network(c((0, 0.30, 0.90), (3, 0.10, 0.85))) == 0  # less accurate than the probe: out
    assert choose_network(c((0, 0.10, 0.90), (3, 0.20, 0.95))) == 0  # the probe's loss is lower
    assert choose_network(c((0, 0.20, 0.90), (2, 0.20, 0.90), (4, 0.20, 0.90))) == 0  # ties: the earlier
    model = tk.load_model(tuned.path)
    choice = model.training["choice"]
    assert "0" in choice and str(model.training["best_epoch"]) in choice
    assert str(model.training["history"]["epoch"][-1]) in choice  # the last epoch was a candidate
    assert int(model.training["best_epoch"]) == choose_network({int(e): v for e, v in choice.items()})


def test_ten_crop_costs_ten_views_in_the_plan_and_a_tenth_of_the_pictures_per_batch():
    """The end's estimate counts the ten-crop pass over every picture (and the export) instead of the test
    features; a batch of a ten-crop model holds a tenth of the pictures, so its memory is that of
    ``batch_size`` network inputs."""
    from transferkit.backbones import PreprocessConfig
    from transferkit.engines.factory import pictures_per_batch
    from transferkit.finetuning.loop import _end_seconds

    hflip = _end_seconds(True, True, 800, 150, 300, 1.0, 100.0)
    ten = _end_seconds(True, True, 800, 150, 300, 1.0, 100.0, ten_crop_rate=50.0)
    assert ten - hflip == pytest.approx((20 + 1250 / 50) - (5 + 2 * 300 / 100))
    five = PreprocessConfig(input_size=(224, 224), five_crop=True)
    assert pictures_per_batch(32, five) == 3 and pictures_per_batch(5, five) == 1
    assert pictures_per_batch(32, PreprocessConfig(input_size=(224, 224))) == 32


def test_a_feature_file_without_the_cache_and_without_the_refit(data, tmp_path):
    """``--features`` (the probe on extract's features), nothing cached (every pass from the pictures) and
    ``--no-refit`` (the jointly trained head kept): the plan still has a rate to estimate the end with, only
    the test pictures get ten-crop features, and evaluate on the images agrees with the run's test figure."""
    ex = tk.extract(data, tmp_path / "f.h5", image_size=32, batch_size=8)
    with torch_threads(1):
        r = tk.finetune(data, tmp_path / "m.safetensors", **{**SMALL, "epochs": 1}, features=ex.path, cache=False,
                        refit=False)
    assert r.cache == "none" and r.refit is None and r.model.training["plan"]["final_seconds"] > 0
    assert r.model.backbone["tta"] == "ten-crop" and r.test["n_test"] == r.counts["test"]
    m = tk.evaluate(tk.load_model(r.path), data)
    assert abs(m["accuracy"] - r.test["accuracy"]) <= 1 / m["n_test"] + 1e-9


def test_planned_epochs_fit_the_time_budget():
    from transferkit.finetuning.loop import planned_epochs

    assert planned_epochs(10, None, 500.0, 100.0, 50.0) == 10  # no budget
    assert planned_epochs(10, 10.0, 100.0, 60.0, 80.0) == 1 + 7  # (600 - 100 - 80) // 60 more
    assert planned_epochs(4, 10.0, 100.0, 60.0, 80.0) == 4  # never more than asked
    assert planned_epochs(10, 1.0, 100.0, 60.0, 80.0) == 1  # over budget already: the epoch run is kept


def test_a_tiny_time_budget_stops_after_the_first_epoch(data, tmp_path):
    out = tmp_path / "budget.safetensors"
    with torch_threads(1):
        r = tk.finetune(data, out, **{**SMALL, "epochs": 4, "max_minutes": 1e-4, "tta": "none"})
    assert r.planned_epochs == 1 and r.epochs_run == 1 and out.exists()
    model = tk.load_model(out)
    assert "tta" not in model.backbone  # --tta none: plain features, as files made before --tta
    assert model.training["plan"]["epochs"] == 1 and model.training["history"]["epoch"] == [0, 1]
