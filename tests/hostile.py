"""A generated hostile corpus: what an adversarial user hands transferkit.

Images: pictures of 65,500 x 1 and 1 x 65,500 pixels (a few hundred bytes, gigabytes once resized
whole), a decompression bomb, empty, truncated and text files named .jpg/.png, a FIFO and a broken
link named like images, names that are not UTF-8, names holding Rich markup, newlines and terminal
escapes, symbolic-link loops and second routes to a folder. Model files: a pickle renamed to
.safetensors, and real models whose metadata or arrays were changed in each way a reader must refuse.
Feature files: real files with flipped bytes, zeroed blocks, out-of-range labels and split values.

Used by tests/test_hostile.py; each builder returns the paths it made.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
from conftest import add_bad_files, draw
from PIL import Image


def png_strip(width: int, height: int) -> bytes:
    """A real (decodable) PNG of ``width`` x ``height`` pixels; a few hundred bytes for a long strip."""
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def make_image_corpus(root: Path, per_class: int = 4) -> dict[str, Path]:
    """Class folders ``cat``, ``dog`` and ``c[`` (markup in a class name) with good pictures and every
    kind of hostile entry. Returns {what: path} for the entries a test names."""
    rng = np.random.default_rng(15)
    made: dict[str, Path] = {}
    for cls, kind in (("cat", "disc"), ("dog", "square"), ("c[", "stripes")):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, rng).save(folder / f"{i:02d}.jpg")
    cat, dog = root / "cat", root / "dog"
    draw("disc", rng).save(root / "c[" / "bold]x.jpg")
    draw("disc", rng).save(cat / "[blink]bad.jpg")
    draw("disc", rng).save(cat / "new\nline [red]x.jpg")
    draw("disc", rng).save(cat / "esc \x1b[2J.png")
    made["wide"] = cat / "wide.png"
    made["wide"].write_bytes(png_strip(65_500, 1))
    made["tall"] = dog / "tall.png"
    made["tall"].write_bytes(png_strip(1, 65_500))
    (dog / "wide20k.png").write_bytes(png_strip(20_000, 1))
    add_bad_files(dog)  # empty, text, truncated, decompression bomb
    # a name that is not UTF-8
    bad_name = os.fsencode(cat) + b"/\xff\xfe.jpg"
    with open(bad_name, "wb") as fh:
        draw("disc", rng).save(fh, format="JPEG")
    made["not_utf8"] = Path(os.fsdecode(bad_name))
    # non-regular files named like images
    made["fifo"] = cat / "pipe.jpg"
    os.mkfifo(made["fifo"])
    os.symlink("nowhere.jpg", cat / "broken.jpg")
    # links: two loops, a second route to a class folder, a second route to a file
    os.symlink(".", cat / "loop")
    os.symlink("..", cat / "up")
    os.symlink("../cat", dog / "catlink")
    os.symlink("00.jpg", dog / "alias.jpg")
    return made


def make_manifests(root: Path) -> dict[str, Path]:
    """CSV manifests next to the image corpus: one with markup in a label and an exact duplicate row,
    one with a path listed under two labels."""
    good = root / "good.csv"
    rows = (
        ["path,label"] + [f"cat/{i:02d}.jpg,[/red]cat" for i in range(4)] + [f"dog/{i:02d}.jpg,dog" for i in range(4)]
    )
    rows.append("cat/00.jpg,[/red]cat")  # an exact duplicate: dropped with a note
    good.write_text("\n".join(rows) + "\n", encoding="utf-8")
    lonely = root / "lonely.csv"  # a class of one image: no test row, with a warning
    lonely.write_text(
        "path,label\ncat/00.jpg,cat\ncat/01.jpg,cat\ndog/00.jpg,dog\nc[/00.jpg,lonely\n", encoding="utf-8"
    )
    conflict = root / "conflict.csv"
    conflict.write_text(
        "path,label\ncat/00.jpg,cat\ndog/00.jpg,dog\ncat/01.jpg,cat\ndog/01.jpg,dog\n./cat/00.jpg,dog\n",
        encoding="utf-8",
    )
    return {"good": good, "conflict": conflict, "lonely": lonely}


# -- model files ---------------------------------------------------------------------------------
def _read_model(path: Path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="numpy") as fh:
        meta = dict(fh.metadata())
    return load_file(str(path)), meta


def _write_model(path: Path, arrays: dict, meta: dict) -> Path:
    from safetensors.numpy import save_file

    save_file(arrays, str(path), metadata=meta)
    return path


def tampered_models(model: Path, out: Path) -> dict[str, Path]:
    """Copies of the real (three-class logistic-regression) ``model`` changed one way each."""
    arrays, meta = _read_model(model)
    record = json.loads(meta["model"])
    made: dict[str, Path] = {}

    def variant(name, arrays=arrays, meta=meta, record=None):
        m = dict(meta)
        if record is not None:
            m["model"] = json.dumps(record)
        made[name] = _write_model(out / f"{name}.safetensors", arrays, m)

    def rec(**changes):
        r = json.loads(json.dumps(record))
        for dotted, value in changes.items():
            target, *keys = r, *dotted.split("__")
            for k in keys[:-1]:
                target = target[k]
            target[keys[-1]] = value
        return r

    variant("not_json", meta={**meta, "model": "{not json"})
    variant("a_list", meta={**meta, "model": "[1, 2, 3]"})
    variant("deeply_nested", meta={**meta, "model": "[" * 100_000 + "]" * 100_000})
    no_backbone = rec()
    del no_backbone["backbone"]
    variant("no_backbone", record=no_backbone)
    variant("head_kind_changed", record=rec(head_kind="knn"))
    variant("unknown_head_kind", record=rec(head_kind="forest"))
    variant("two_names_three_classes", record=rec(class_names=record["class_names"][:2]))
    variant("huge_input_size", record=rec(backbone__preprocess__input_size=[4000, 4000]))
    variant("format_version_99", meta={**meta, "format_version": "99"})
    variant("nan_constant_in_json", record=rec(head__C=float("nan")))  # json.dumps writes NaN
    variant("params_wrong_type", record=rec(head__params={"no_such_param": 1}))
    nan = {k: v.copy() for k, v in arrays.items()}
    nan["head.coef"][0, 0] = np.nan
    variant("nan_coefficients", arrays=nan)
    d = 999  # consistent with each other, but not the backbone's 1,280 features
    narrow = dict(
        arrays,
        **{
            "head.coef": np.ones((arrays["head.coef"].shape[0], d), np.float32),
            "head.mean": np.zeros(d, np.float32),
            "head.scale": np.ones(d, np.float32),
        },
    )
    variant("consistent_wrong_width", arrays=narrow)
    variant("inconsistent_width", arrays=dict(arrays, **{"head.mean": np.zeros(7, np.float32)}))
    variant("missing_array", arrays={k: v for k, v in arrays.items() if k != "head.intercept"})
    pkl = out / "pickle.safetensors"
    pkl.write_bytes(pickle.dumps({"coef": [1, 2, 3]}))
    made["pickle"] = pkl
    (out / "empty.safetensors").write_bytes(b"")
    made["empty"] = out / "empty.safetensors"
    data = model.read_bytes()
    (out / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    made["truncated"] = out / "truncated.safetensors"
    os.mkfifo(out / "fifo.safetensors")
    made["fifo"] = out / "fifo.safetensors"
    return made


# -- feature files -------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _data_offset(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_offset()


def tampered_features(features: Path, out: Path) -> dict[str, Path]:
    """Copies of the real, finished ``features`` file damaged one way each (must be written without
    compression or chunk filters, so a data offset is a byte offset)."""
    made: dict[str, Path] = {}
    size = features.stat().st_size
    for offset in (3000, 5000):
        p = _copy(features, out / f"flip_{offset}.h5")
        with open(p, "r+b") as fh:
            fh.seek(min(offset, size - 16))
            b = fh.read(16)
            fh.seek(min(offset, size - 16))
            fh.write(bytes(x ^ 0xFF for x in b))
        made[f"flip_{offset}"] = p
    for name, value, dataset in (("label_99", 99, "labels"), ("label_minus_1", -1, "labels"), ("split_7", 7, "split")):
        p = _copy(features, out / f"{name}.h5")
        with h5py.File(p, "r+") as f:
            f[dataset][0] = value
        made[name] = p
    p = _copy(features, out / "zeroed_block.h5")
    offset = _offset_in_features(p)
    with open(p, "r+b") as fh:
        fh.seek(offset + 4096)
        fh.write(b"\0" * 4096)
    made["zeroed_block"] = p
    p = _copy(features, out / "paths_not_utf8.h5")
    with h5py.File(p, "r+") as f:
        f["paths"][0] = b"\xff\xfe.jpg"
    made["paths_not_utf8"] = p
    data = features.read_bytes()
    (out / "truncated.h5").write_bytes(data[: len(data) // 2])
    made["truncated"] = out / "truncated.h5"
    (out / "empty.h5").write_bytes(b"")
    made["empty"] = out / "empty.h5"
    os.mkfifo(out / "fifo.h5")
    made["fifo"] = out / "fifo.h5"
    return made


def _offset_in_features(path: Path) -> int:
    """Byte offset of the first chunk of ``features`` (chunked, uncompressed)."""
    with h5py.File(path, "r") as f:
        ds = f["features"]
        if ds.chunks:
            return ds.id.get_chunk_info(0).byte_offset
        return ds.id.get_offset()
