"""Fast checks of the pieces that make hostile input safe (the whole corpus: tests/test_hostile.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import draw
from PIL import Image

from transferkit.backbones.preprocess import PreprocessConfig
from transferkit.data import discover
from transferkit.data.decode import DecodeError, load_image
from transferkit.data.walk import walk_files
from transferkit.errors import TransferkitError
from transferkit.store.lock import LockedError, OutputLock


def _gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    return Image.fromarray(np.broadcast_to((x + y) / 2, (h, w, 3)).astype(np.uint8))


@pytest.mark.parametrize("size", [(6000, 20), (20, 6000), (6000, 300)])
def test_long_pictures_are_cropped_before_resizing_and_match_the_full_resize(size):
    """The bounded path (resize only the region the crop keeps) gives the picture the full resize
    would, up to rounding; the full resize here is still affordable (~1.6M pixels)."""
    pp = PreprocessConfig(input_size=(224, 224), crop_pct=0.875)
    img = _gradient(*size)
    got = np.asarray(pp.resize_and_crop(img), dtype=np.int16)
    iw, ih = img.size
    nw, nh = (256, int(256 * ih / iw)) if iw <= ih else (int(256 * iw / ih), 256)
    full = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = int(round((nw - 224) / 2)), int(round((nh - 224) / 2))
    expected = np.asarray(full.crop((left, top, left + 224, top + 224)), dtype=np.int16)
    assert got.shape == (224, 224, 3)
    assert np.abs(got - expected).max() <= 2


def test_a_strip_of_65500_by_1_costs_the_crop_not_gigabytes():
    pp = PreprocessConfig(input_size=(224, 224), crop_pct=0.875)
    arr = pp.to_array(Image.new("RGB", (65_500, 1), (200, 10, 10)))  # full resize: 16.7M x 256 pixels
    assert arr.shape == (3, 224, 224) and np.isfinite(arr).all()


@pytest.mark.parametrize("size", [(341, 256), (300, 500), (6000, 300), (65_500, 1)])
def test_five_crops_lie_side_by_side_and_long_pictures_stay_bounded(size):
    """``five_crop`` (``finetune --tta ten-crop``): the centre and the four corners of the resized picture,
    in that order, left to right, in one (3, 224, 1120) array; the corners reach the ends of the longer side.
    A very long picture is resized crop by crop (same pixels up to rounding), never whole."""
    pp = PreprocessConfig(input_size=(224, 224), crop_pct=0.875, five_crop=True)
    assert pp.array_size == (224, 1120) and PreprocessConfig.from_dict(pp.to_dict()) == pp
    assert "five_crop" not in PreprocessConfig(input_size=(224, 224)).to_dict()  # older files compare equal
    img = _gradient(*size)
    arr = pp.to_array(img)
    assert arr.shape == (3, 224, 1120) and np.isfinite(arr).all()
    if size[0] * size[1] > 10**6:
        return
    got = np.asarray(pp.resize_and_crop(img), dtype=np.int16)
    iw, ih = img.size
    nw, nh = (256, int(256 * ih / iw)) if iw <= ih else (int(256 * iw / ih), 256)
    full = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = int(round((nw - 224) / 2)), int(round((nh - 224) / 2))
    boxes = [(left, top), (0, 0), (nw - 224, 0), (0, nh - 224), (nw - 224, nh - 224)]
    for i, (x, y) in enumerate(boxes):
        expected = np.asarray(full.crop((x, y, x + 224, y + 224)), dtype=np.int16)
        assert np.abs(got[:, i * 224:(i + 1) * 224] - expected).max() <= 2, i
    with pytest.raises(ValueError, match="five_crop needs crop=True"):
        PreprocessConfig(input_size=(224, 224), crop=False, five_crop=True)


def test_walk_visits_each_real_folder_and_file_once(tmp_path):
    cat = tmp_path / "cat"
    (cat / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.jpg"):
        (cat / name).write_bytes(b"x")
    os.symlink(".", cat / "loop")
    os.symlink("..", cat / "sub" / "up")
    os.symlink("sub", cat / "again")
    os.symlink("a.jpg", cat / "alias.jpg")
    walk = walk_files(cat, lambda n: n.endswith(".jpg"))
    assert [p.relative_to(cat).as_posix() for p in walk.files] == ["a.jpg", "sub/b.jpg"]
    why = {os.path.relpath(p, cat): reason for p, reason in walk.skipped}
    assert "loop back" in why["loop"] and "loop back" in why["sub/up"]
    assert "second route" in why["again"] and "same file as" in why["alias.jpg"]


def test_discover_keeps_classes_apart_and_reports_names_that_are_not_utf8(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            draw("disc", np.random.default_rng(i)).save(tmp_path / cls / f"{i}.jpg")
    os.symlink("../cat", tmp_path / "dog" / "cats")  # would put the cats in dog too
    os.symlink("..", tmp_path / "cat" / "up")  # would put the dogs in cat
    with open(os.fsencode(tmp_path / "cat") + b"/\xff.jpg", "wb") as fh:
        fh.write(b"x")
    ds = discover(tmp_path)
    assert sorted(s.path for s in ds.samples) == ["cat/0.jpg", "cat/1.jpg", "dog/0.jpg", "dog/1.jpg"]
    text = "\n".join(ds.ignored)
    assert "cat/\\xff.jpg: file name is not valid UTF-8" in text
    assert "dog/cats: a link to class folder cat" in text and "cat/up: a link to the dataset folder" in text


def test_csv_duplicates(tmp_path):
    (tmp_path / "ok.csv").write_text("path,label\na.jpg,cat\nb.jpg,dog\n./a.jpg,cat\n")
    ds = discover(tmp_path / "ok.csv")
    assert [s.path for s in ds.samples] == ["a.jpg", "b.jpg"]
    assert ds.ignored == ["a.jpg: listed again in row 4 (row 2 has it), kept once"]
    (tmp_path / "bad.csv").write_text("path,label\na.jpg,cat\nb.jpg,dog\na.jpg,dog\n")
    with pytest.raises(TransferkitError, match=r"'a.jpg' is listed with two labels \(row 2: 'cat', row 4: 'dog'\)"):
        discover(tmp_path / "bad.csv")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_named_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(DecodeError, match="FIFO"):
        load_image(tmp_path / "pipe.jpg")  # would block forever if opened


def test_the_output_lock_follows_the_file_not_the_name(tmp_path):
    real = tmp_path / "real.h5"
    real.write_bytes(b"")
    os.symlink("real.h5", tmp_path / "alias.h5")
    with OutputLock(real):
        with pytest.raises(LockedError):
            OutputLock(tmp_path / "alias.h5").acquire()
