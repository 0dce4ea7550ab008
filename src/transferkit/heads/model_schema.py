"""What a trained-model file must hold before anything uses it: checked whole, on load.

A model file may come from anyone. safetensors keeps it from running code, but its JSON metadata and
arrays can still be wrong in every way: not JSON, nested a million deep, a list instead of an object,
a missing key, a head kind changed, arrays of a width that does not fit the class count, NaN weights,
an input size of 4000 x 4000 (gigabytes per image). Each is refused here with one line
``<file>: not a valid transferkit model file: <what>``.

Keys this version does not know are tolerated (newer fields such as a calibration temperature or the
chosen feature scaling may be added by other versions); the keys it knows are checked for type,
shape and range.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Real

import numpy as np

from ..backbones.preprocess import MAX_INPUT_SIDE
from ..errors import TransferkitError, first_line

MAX_METADATA_CHARS = 64 << 20
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


class ModelFileError(TransferkitError):
    """A model file whose contents do not follow the transferkit model schema."""


def invalid(path, why: str) -> ModelFileError:
    return ModelFileError(f"{path}: not a valid transferkit model file: {why}")


def parse_metadata(meta: dict, path, fmt: str, max_version: int) -> dict:
    """Check the safetensors metadata and return the parsed ``model`` record (a dict)."""
    if meta.get("format") != fmt:
        raise invalid(path, f"no format='{fmt}' metadata")
    version = meta.get("format_version", "1")
    if not (isinstance(version, str) and version.isdigit() and 1 <= int(version) <= max_version):
        raise invalid(path, f"format_version {version!r} is not one this transferkit reads (1..{max_version}); "
                            "a newer transferkit may read it")
    text = meta.get("model")
    if not isinstance(text, str) or len(text) > MAX_METADATA_CHARS:
        raise invalid(path, "its 'model' metadata is missing or too large")
    try:
        record = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise invalid(path, "its 'model' metadata is nested too deeply") from None
    except ValueError as exc:
        raise invalid(path, f"its 'model' metadata is not JSON ({first_line(exc, 80)})") from None
    _expect(record, dict, "'model' metadata", path)
    _expect(record.get("head_kind"), str, "head_kind", path)
    _expect(record.get("head"), dict, "head", path)
    _expect(record.get("backbone"), dict, "backbone", path)
    _expect(record.get("training", {}), dict, "training", path)
    _expect(record["head"].get("params", {}), dict, "head.params", path)
    names = record.get("class_names")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        raise invalid(path, "class_names must be a list of at least two strings")
    if len(set(names)) != len(names):
        raise invalid(path, "class_names has duplicates")
    check_backbone(record["backbone"], path)
    return record


def check_backbone(spec: dict, path) -> None:
    _expect(spec.get("model"), str, "backbone.model", path)
    for key in ("layer", "pool"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and value
                                                                  and all(isinstance(v, str) for v in value))):
            raise invalid(path, f"backbone.{key} must be a name or a list of names")
    for key in ("weights", "weights_sha256"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise invalid(path, f"backbone.{key} must be a string")
    if spec.get("preprocess") in (None, {}) or (isinstance(spec["preprocess"], dict)
                                                 and "input_size" not in spec["preprocess"]):
        # a model trained on features made elsewhere (no image preprocessing recorded): it cannot
        # label images (TrainedModel.preprocess_config says so), but loads
        return
    pp = spec["preprocess"]
    _expect(pp, dict, "backbone.preprocess", path)
    size = pp.get("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 8 <= v <= MAX_INPUT_SIDE for v in size)):
        raise invalid(path, f"preprocess.input_size must be two whole numbers from 8 to {MAX_INPUT_SIDE} "
                            f"(got {str(size)[:40]})")
    if pp.get("interpolation") not in INTERPOLATIONS:
        raise invalid(path, f"preprocess.interpolation must be one of {', '.join(INTERPOLATIONS)}")
    crop_pct = pp.get("crop_pct")
    if not (_is_number(crop_pct) and 0 < crop_pct <= 1):
        raise invalid(path, "preprocess.crop_pct must be a number in (0, 1]")
    if "crop" in pp and not isinstance(pp["crop"], bool):
        raise invalid(path, "preprocess.crop must be true or false")
    for key in ("mean", "std"):
        v = pp.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(_is_number(x) for x in v)):
            raise invalid(path, f"preprocess.{key} must be three finite numbers")
    if any(x <= 0 for x in pp["std"]):
        raise invalid(path, "preprocess.std must be positive")


def check_arrays(arrays: dict[str, np.ndarray], path) -> None:
    """Every array numeric and finite (NaN weights would give NaN probabilities)."""
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiub":
            raise invalid(path, f"array {name!r} has dtype {arr.dtype}, not a number type")
        if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            raise invalid(path, f"array {name!r} holds NaN or infinite values")


def check_head_arrays(kind: str, arrays: dict[str, np.ndarray], info: dict, n_classes: int, path) -> None:
    """Shapes against each other and the class count, before a head is built from them (so a forged
    size can never make it allocate more than the file holds)."""
    classes = arrays.get("classes")
    if (classes is None or classes.ndim != 1 or classes.dtype.kind not in "iu" or not 2 <= len(classes) <= n_classes
            or classes.min() < 0 or classes.max() >= n_classes or (np.diff(classes) <= 0).any()):
        raise invalid(path, f"array 'classes' must list increasing class indices within 0..{n_classes - 1}")
    n_classes = len(classes)  # the head's outputs: the classes it was trained on
    if kind in ("logreg", "linear-svm"):
        coef = _need(arrays, "coef", 2, path)
        k, d = coef.shape
        if k not in ((n_classes, 1) if n_classes == 2 else (n_classes,)) or d < 1:
            raise invalid(path, f"coef has shape {coef.shape}, which does not fit {n_classes} classes")
        for name, shape in (("intercept", (k,)), ("mean", (d,)), ("scale", (d,))):
            if _need(arrays, name, 1, path).shape != shape:
                raise invalid(path, f"array {name!r} has shape {arrays[name].shape}, expected {shape}")
        if (arrays["scale"] == 0).any():
            raise invalid(path, "array 'scale' holds zeros")
        if kind == "linear-svm" and _need(arrays, "platt", 2, path).shape != (k, 2):
            raise invalid(path, f"array 'platt' has shape {arrays['platt'].shape}, expected {(k, 2)}")
    elif kind == "knn":
        train = _need(arrays, "train", 2, path)
        labels = _need(arrays, "train_labels", 1, path)
        if labels.shape != (train.shape[0],) or labels.dtype.kind not in "iu" or len(labels) == 0:
            raise invalid(path, "array 'train_labels' does not match 'train'")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise invalid(path, f"array 'train_labels' holds labels outside 0..{n_classes - 1}")
        if _need(arrays, "vote_weights", 1, path).shape != (n_classes,):
            raise invalid(path, f"array 'vote_weights' does not have one weight per class ({n_classes})")
        k = info.get("k")
        if not (_is_int(k) and 1 <= k <= train.shape[0]):
            raise invalid(path, f"head.k must be a whole number from 1 to {train.shape[0]}")
    elif kind == "mlp":
        params = info.get("params", {})
        d, hidden = info.get("n_features"), params.get("hidden", [])
        if not (_is_int(d) and d >= 1) or not (isinstance(hidden, list) and all(_is_int(h) and h >= 1 for h in hidden)):
            raise invalid(path, "head.n_features and head.params.hidden must be positive whole numbers")
        widths = [d, *hidden, n_classes]
        needed = sum(a * b for a, b in zip(widths, widths[1:]))
        held = sum(v.size for n, v in arrays.items() if n.startswith("net."))
        if needed > held:
            raise invalid(path, f"its network of widths {widths} needs {needed} weights, the file holds {held}")


def check_probe(head, n_features: int, n_classes: int, path) -> None:
    """Run the built head on one row of zeros: probabilities of the right shape, finite, summing to 1."""
    try:
        p = np.asarray(head.predict_proba(np.zeros((1, n_features), np.float32)))
    except (ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise invalid(path, f"the head cannot be evaluated ({first_line(exc, 100)})") from None
    n_out = len(head.classes_)
    if p.shape != (1, n_out) or n_out > n_classes or not np.isfinite(p).all() or abs(float(p.sum()) - 1) > 1e-3:
        raise invalid(path, f"the head does not give {n_out} probabilities summing to 1")


def head_input_dim(kind: str, arrays: dict[str, np.ndarray], info: dict) -> int:
    """How many features a head of ``kind`` built from ``arrays``/``info`` takes per row."""
    if kind in ("logreg", "linear-svm"):
        return int(arrays["coef"].shape[1])
    if kind == "knn":
        return int(arrays["train"].shape[1])
    return int(info["n_features"])


def why_not_safetensors(path, exc: BaseException) -> str:
    """The one-line reason a file safetensors refused is not a model file, from its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
        size = os.path.getsize(path)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if size == 0:
        return "empty file (0 bytes), not a model file"
    if head[:1] == b"\x80" or head[:2] == b"PK":
        what = "a Python pickle" if head[:1] == b"\x80" else "a zip archive (a PyTorch checkpoint?)"
        return f"not a safetensors file (it looks like {what}; transferkit never unpickles a file)"
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) < 9 or n <= 0 or n > size - 8 or head[8:9] != b"{":
        return "not a safetensors file (no safetensors header), so not a transferkit model file"
    return f"damaged safetensors file, not a valid transferkit model file ({first_line(exc, 120)})"


# -- helpers ---------------------------------------------------------------------------------------
def _no_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _expect(value, kind: type, what: str, path) -> None:
    if not isinstance(value, kind):
        raise invalid(path, f"{what} must be a JSON {'object' if kind is dict else kind.__name__}")


def _need(arrays: dict, name: str, ndim: int, path) -> np.ndarray:
    arr = arrays.get(name)
    if arr is None or arr.ndim != ndim:
        raise invalid(path, f"array {name!r} is missing or not {ndim}-dimensional")
    return arr


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
