"""Hub weights: found in the local timm (Hugging Face) and torchvision (torch.hub) caches with no network,
hashed as the cached file; missing ones give one line naming the model, why, and the offline
alternatives. The caches are temporary folders filled with random weights: nothing is downloaded."""

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import hashlib, json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from transferkit.backbones import create_backbone
    from transferkit.backbones.registry import offline_weights
    from transferkit.errors import TransferkitError
    out = {}
    for name, ref_state in (("timm:resnet18.a1_in1k", sys.argv[1]), ("torchvision:resnet18", sys.argv[2])):
        b = create_backbone(name, image_size=48)
        r = create_backbone(name, image_size=48, weights=ref_state)  # the same tensors, from a plain file
        x = torch.randn(2, 3, 48, 48)
        with torch.inference_mode():
            same = bool(torch.allclose(b.features(x), r.features(x), atol=1e-6))
        out[name] = {"sha": b.weights_sha256, "source": b.weights_source, "same": same,
                     "offline": offline_weights(name)[0]}
    out["resnet50_offline"] = offline_weights("timm:resnet50.a1_in1k")[0]
    try:
        create_backbone("timm:resnet50.a1_in1k")
    except TransferkitError as exc:
        out["error"] = str(exc)
    try:
        create_backbone("torchvision:resnet50")
    except TransferkitError as exc:
        out["tv_error"] = str(exc)
    print(json.dumps(out))
''')


def offline_env(tmp_path):
    return {**os.environ, "TRANSFERKIT_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}


def fill_caches(tmp_path):
    """A timm hub snapshot and a torch.hub checkpoint, laid out as the libraries lay them out."""
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file

    snap = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text(commit)
    (snap / "snapshots" / commit).mkdir(parents=True)
    timm_file = snap / "snapshots" / commit / "model.safetensors"
    timm_state = timm.create_model("resnet18", pretrained=False).state_dict()
    save_file(timm_state, str(timm_file))
    save_file(timm_state, str(tmp_path / "timm-copy.safetensors"))
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    tv_file = ckpt / "resnet18-f37072fd.pth"
    tv_state = torchvision.models.resnet18().state_dict()
    torch.save(tv_state, tv_file)
    torch.save(tv_state, tmp_path / "tv-copy.pth")
    return timm_file, tv_file


@pytest.mark.slow
def test_cached_hub_weights_load_offline_and_missing_ones_fail_in_one_line(tmp_path):
    import json

    timm_file, tv_file = fill_caches(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "timm-copy.safetensors"), str(tmp_path / "tv-copy.pth")],
        capture_output=True,
        text=True,
        env=offline_env(tmp_path),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    t, v = out["timm:resnet18.a1_in1k"], out["torchvision:resnet18"]
    assert (
        t["sha"] == hashlib.sha256(timm_file.read_bytes()).hexdigest() and t["source"] == "hf-hub:timm/resnet18.a1_in1k"
    )
    assert v["sha"] == hashlib.sha256(tv_file.read_bytes()).hexdigest() and v["source"].startswith(
        "url:https://download.pytorch.org"
    )
    assert t["same"] and v["same"] and t["offline"] and v["offline"] and not out["resnet50_offline"]
    for err, name in ((out["error"], "timm:resnet50.a1_in1k"), (out["tv_error"], "torchvision:resnet50")):
        assert err.startswith(f"{name}: pretrained weights are not available") and "\n" not in err
        assert "efficientnet_lite0" in err and "weights='PATH'" in err  # the CLI words it --weights PATH


@pytest.mark.slow
def test_cli_offline_error_is_one_red_line(tmp_path, dataset_dir):
    env = offline_env(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "transferkit",
            "extract",
            str(dataset_dir),
            "-o",
            str(tmp_path / "x.h5"),
            "--model",
            "timm:convnext_tiny",
        ],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "300", "NO_COLOR": "1"},
        timeout=600,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: timm:convnext_tiny: pretrained weights are not available")
    assert "--weights PATH" in lines[0]  # the CLI words the advice as its flag
    assert not (tmp_path / "x.h5").exists()
