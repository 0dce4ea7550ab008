"""The dataset changed between runs: --resume says so, --update extracts only the new files, drops
rows of removed ones and keeps existing rows (bit for bit) and their split. Resuming with other
settings is refused, naming the difference."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from conftest import add_bad_files, draw, make_dataset
from extract_proc import BATCH, BUFFER

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.cli._flags import worded
from transferkit.engines import iter_batches
from transferkit.store.session import DatasetChangedError
from transferkit.store.settings import SettingsMismatchError, check_settings
from transferkit.store.verify import verify_features


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("update") / "photos", per_class=4)
    add_bad_files(root / "red disc")
    out = root.parent / "first.h5"
    tk.extract(root, out, batch_size=BATCH, buffer_rows=BUFFER)
    return root, out


def _copies(tmp_path, original):
    root, first = original
    data = tmp_path / "photos"
    shutil.copytree(root, data)
    out = tmp_path / "f.h5"
    shutil.copyfile(first, out)
    return data, out


def test_update_extracts_only_new_files_and_keeps_existing_rows(tmp_path, original):
    data, out = _copies(tmp_path, original)
    rng = np.random.default_rng(9)
    (data / "blue square" / "ïmg 00.jpg").unlink()  # a file with a row
    (data / "red disc" / "empty.jpg").unlink()  # a file that was skipped
    draw("disc", rng).save(data / "red disc" / "new disc.png")
    (data / "a new class").mkdir()
    for name in ("one.png", "two.png"):
        draw("square", rng).save(data / "a new class" / name)

    with pytest.raises(
        DatasetChangedError, match=r"dataset changed .*3 added \(e\.g\. 'a new class/one.png'\), 2 removed.*update=True"
    ) as e:
        tk.extract(data, out, batch_size=BATCH, resume=True)
    assert sorted(e.value.added) == ["a new class/one.png", "a new class/two.png", "red disc/new disc.png"]
    assert len(e.value.removed) == 2
    assert "; pass --update to extract only the new files and drop removed ones" in worded(e.value)
    r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, update=True)
    assert (r.status, r.n_processed, r.n_added, r.n_removed, r.rows_before) == ("updated", 3, 3, 2, 11)

    new = ["a new class/one.png", "a new class/two.png", "red disc/new disc.png"]
    with tk.open_features(original[1]) as a, tk.open_features(out) as b:
        assert b.complete and b.n_rows == 12 - 1 + 3
        assert b.label_names == ["a new class", "blue square", "grün stripes", "red disc"]
        assert sorted(p for p, _ in b.skipped) == [
            "red disc/bomb.png",
            "red disc/not an image.png",
            "red disc/truncated.jpg",
        ]
        assert b.attrs["n_images"] == 17 and b.attrs["updated"] and b.attrs["created"] == a.attrs["created"]
        before = {p: i for i, p in enumerate(a.paths)}
        Xa, Xb = a.load()[0], b.load()[0]
        for i, path in enumerate(b.paths):
            assert path.startswith(b.label_names[b.labels[i]] + "/")  # labels follow the new class list
            if path in before:  # kept: the same bytes and the same split
                j = before[path]
                assert np.array_equal(Xb[i].view(np.uint8), Xa[j].view(np.uint8)) and b.split[i] == a.split[j]
        assert b.paths[-3:] == sorted(new)  # new rows come after the kept ones
        assert "blue square/ïmg 00.jpg" not in b.paths
        new_rows = Xb[-3:]
    assert verify_features(out).ok

    # The new rows are the features of those files.
    bb = create_backbone("efficientnet_lite0")
    batch = next(iter_batches([data / p for p in sorted(new)], bb.preprocess, batch_size=3))
    import torch

    with torch.inference_mode():
        expected = bb.features(torch.from_numpy(batch.arrays)).numpy()
    np.testing.assert_allclose(new_rows, expected, rtol=1e-4, atol=1e-5)

    r = tk.extract(data, out, batch_size=BATCH, update=True)
    assert (r.status, r.n_processed) == ("up to date", 0)


def test_update_finishes_an_interrupted_run_with_the_files_there_are_now(tmp_path, original):
    data, out = _copies(tmp_path, original)
    out.unlink()

    def interrupt(done, total):
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, progress=interrupt, workers=1)
    (data / "blue square" / "ïmg 01.PNG").unlink()  # extracted before the interruption
    (data / "red disc" / "ïmg 03.bmp").unlink()  # not reached yet
    draw("stripes", np.random.default_rng(3)).save(data / "grün stripes" / "late.png")
    with pytest.raises(DatasetChangedError, match="1 added.*2 removed"):
        tk.extract(data, out, batch_size=BATCH, resume=True)
    r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, update=True)
    assert (r.status, r.rows_before, r.n_added, r.n_removed) == ("updated", 5, 1, 2)
    with tk.open_features(out) as ff:
        assert ff.complete and ff.n_rows == 11 and len(ff.skipped) == 4
        assert "grün stripes/late.png" in ff.paths and "blue square/ïmg 01.PNG" not in ff.paths
    assert verify_features(out).ok


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 3}, r"extracted with batch_size 2, this run asks for 3; rerun with the file's --batch-size"),
        (
            {"test_size": 0.5},
            r"extracted with test_size 0.25, this run asks for 0.5; rerun with the file's --test-size",
        ),
        ({"dtype": "float16"}, r"stored as float32, this run asks for float16; rerun with --dtype float32"),
        (
            {"model": "efficientnet_lite1", "update": True},
            r"cannot update: it was extracted with model 'efficientnet_lite0', this run asks for 'efficientnet_lite1'",
        ),
    ],
)
def test_resuming_with_other_settings_is_refused_naming_the_difference(tmp_path, original, kwargs, message):
    data, out = _copies(tmp_path, original)
    before = out.read_bytes()
    options = {"batch_size": BATCH, "resume": True, **kwargs}
    if options.get("update"):
        del options["resume"]
    with pytest.raises(SettingsMismatchError) as e:
        tk.extract(data, out, **options)
    assert re.search(message, worded(e.value)), worded(e.value)  # as the command line says it
    assert out.read_bytes() == before


def test_settings_guard_covers_layer_pool_weights_and_preprocessing(tmp_path):
    file_attrs = {
        "model": "m",
        "weights_sha256": "a" * 64,
        "layer": "pre_logits",
        "pool": "avg",
        "preprocess": '{"crop_pct": 0.875, "input_size": [224, 224]}',
        "engine": "torch",
        "batch_size": 32,
        "test_size": 0.25,
        "seed": 42,
    }
    same = {**file_attrs, "preprocess": {"crop_pct": 0.875, "input_size": [224, 224]}}
    check_settings(tmp_path / "f.h5", file_attrs, same, "resume")
    for key, value, message in [
        ("layer", "blocks.5", "layer 'pre_logits', this run asks for 'blocks.5'; rerun with the file's --layer"),
        ("pool", "gem", "pool 'avg', this run asks for 'gem'"),
        ("weights_sha256", "b" * 64, "weights_sha256"),
        ("engine", "onnx", "engine 'torch', this run asks for 'onnx'"),
        ("preprocess", {"crop_pct": 1.0, "input_size": [224, 224]}, r"preprocess differs \(crop_pct 0.875 vs 1.0"),
    ]:
        with pytest.raises(SettingsMismatchError) as e:
            check_settings(tmp_path / "f.h5", file_attrs, {**same, key: value}, "resume")
        assert re.search(message, worded(e.value)) and e.value.key == key, worded(e.value)
