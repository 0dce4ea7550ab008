"""Shared fixtures: tiny generated image datasets, bad files, and one session-wide extraction."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TRANSFERKIT_TEST_ARTIFACTS", REPO / "test-artifacts"))

# Three visually distinct classes, so real Lite0 features separate them.
CLASSES = {"red disc": "disc", "blue square": "square", "grün stripes": "stripes"}


def draw(kind: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size]
    img = rng.integers(0, 40, (size, size, 3)).astype(np.float32)  # dark noisy background
    cx, cy = rng.integers(size // 3, 2 * size // 3, 2)
    r = rng.integers(size // 6, size // 3)
    if kind == "disc":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[mask] = [230, 30, 30]
    elif kind == "square":
        mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
        img[mask] = [30, 60, 230]
    else:
        period = int(rng.integers(6, 12))
        mask = (xx // (period // 2)) % 2 == 0
        img[mask] = [40, 200, 60]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_dataset(root: Path, per_class: int = 8, seed: int = 0, nested: bool = True) -> Path:
    """Class folders with spaces and non-ASCII names, mixed extensions and a nested sub-folder."""
    rng = np.random.default_rng(seed)
    exts = [".jpg", ".PNG", ".jpeg", ".bmp", ".webp", ".tif", ".gif", ".TIFF"]
    for cls, kind in CLASSES.items():
        for i in range(per_class):
            folder = root / cls / ("sub dir" if nested and i % 3 == 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            ext = exts[i % len(exts)]
            img = draw(kind, rng)
            if ext.lower() == ".gif":
                img = img.convert("P", palette=Image.Palette.ADAPTIVE)
            img.save(folder / f"ïmg {i:02d}{ext}")
    return root


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb) with a tiny payload."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def add_bad_files(class_dir: Path) -> dict[str, str]:
    """Write unreadable files into ``class_dir``; return {file name: expected reason keyword}."""
    class_dir.mkdir(parents=True, exist_ok=True)
    (class_dir / "empty.jpg").write_bytes(b"")
    (class_dir / "not an image.png").write_text("hello, I am text")
    good = io.BytesIO()
    draw("disc", np.random.default_rng(5), 128).save(good, format="JPEG")
    (class_dir / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (class_dir / "bomb.png").write_bytes(png_with_size(20000, 20000))
    return {
        "empty.jpg": "empty",
        "not an image.png": "not an image",
        "truncated.jpg": "truncated",
        "bomb.png": "decompression bomb",
    }


@pytest.fixture(scope="session", autouse=True)
def _isolated_engine_cache(tmp_path_factory):
    """Engines cache exported ONNX files; keep the tests' cache out of the user's home folder."""
    os.environ["TRANSFERKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("transferkit-cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny batches: one torch thread is as fast, and far faster when the test
    machine's CPUs are busy. Opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "my dataset")


@pytest.fixture(scope="session")
def extracted(tmp_path_factory, dataset_dir):
    """One extraction of the tiny dataset, shared by tests that only read it."""
    import transferkit as tk

    out = tmp_path_factory.mktemp("features") / "features.h5"
    result = tk.extract(dataset_dir, out, batch_size=5, buffer_rows=7)
    return result


@pytest.fixture(scope="session")
def trained(tmp_path_factory, extracted):
    import transferkit as tk

    out = tmp_path_factory.mktemp("model") / "model.safetensors"
    return tk.train(extracted.path, out, cv=3)


def run_cli(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real command in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "transferkit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"transferkit {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
