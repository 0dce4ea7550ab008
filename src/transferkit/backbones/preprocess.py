"""Preprocessing that travels with a backbone: resolved from its pretrained config, stored as JSON in
the feature file and the trained model, and replayed exactly by ``predict``.

The transform matches timm's eval transform (resize the shorter side to ``floor(size / crop_pct)``
with the given interpolation, centre crop, scale to [0, 1], normalise) but runs on Pillow and NumPy
alone, so decoding workers need no torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# Pictures whose resized form is at most this many times the crop are resized whole, then cropped,
# exactly as timm's eval transform does; longer ones are cropped on the source first (see below).
FULL_RESIZE_LIMIT = 16
# Largest network input side accepted (--image-size, a model file's preprocessing): a batch of 32 at
# 4000 x 4000 would need ~24 GB before the network even runs.
MAX_INPUT_SIDE = 2048


@dataclass(frozen=True)
class PreprocessConfig:
    input_size: tuple[int, int]  # (height, width) fed to the network
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    crop: bool = True  # False: resize straight to input_size (aspect ratio not kept)
    # True: five crops of input_size (the centre and the four corners of the resized picture), laid side by
    # side in one array of array_size; the backbone's features module splits them (``--tta ten-crop``)
    five_crop: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; choose from {sorted(_INTERPOLATION)}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.five_crop and not self.crop:
            raise ValueError("five_crop needs crop=True (the crops are taken from the resized picture)")

    @classmethod
    def from_timm(cls, data_config: dict) -> "PreprocessConfig":
        """Build from timm's ``resolve_data_config`` output."""
        _, h, w = data_config["input_size"]
        return cls(
            input_size=(int(h), int(w)),
            interpolation=str(data_config.get("interpolation", "bicubic")),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            mean=tuple(float(v) for v in data_config["mean"]),
            std=tuple(float(v) for v in data_config["std"]),
        )

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        if not self.five_crop:  # files written before five_crop existed compare equal
            del d["five_crop"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        return cls(
            input_size=tuple(int(v) for v in d["input_size"]),
            interpolation=d["interpolation"],
            crop_pct=float(d["crop_pct"]),
            crop=bool(d.get("crop", True)),
            five_crop=bool(d.get("five_crop", False)),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
        )

    # -- the transform ---------------------------------------------------------------------------
    @property
    def resize_shorter(self) -> int:
        """Shorter-side size before the centre crop (timm: ``floor(size / crop_pct)``)."""
        return int(math.floor(min(self.input_size) / self.crop_pct))

    @property
    def array_size(self) -> tuple[int, int]:
        """(height, width) of the array :meth:`to_array` makes: ``input_size``, or five of them side by side."""
        h, w = self.input_size
        return (h, 5 * w) if self.five_crop else (h, w)

    def five_crop_boxes(self, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """The five crop boxes in a resized picture of ``size`` (width, height): centre, top-left, top-right,
        bottom-left, bottom-right (torchvision's FiveCrop)."""
        nw, nh = size
        h, w = self.input_size
        left, top = int(round((nw - w) / 2.0)), int(round((nh - h) / 2.0))
        return [(left, top, left + w, top + h), (0, 0, w, h), (nw - w, 0, nw, h), (0, nh - h, w, nh),
                (nw - w, nh - h, nw, nh)]

    @property
    def min_decode_size(self) -> int:
        """Smallest side a decoded picture needs before resizing (bounds JPEG draft mode)."""
        return self.resize_shorter if self.crop else max(self.input_size)

    def _resized_size(self, img: Image.Image) -> tuple[int, int]:
        size = self.resize_shorter
        iw, ih = img.size
        return (size, int(size * ih / iw)) if iw <= ih else (int(size * iw / ih), size)

    def resize_and_crop(self, img: Image.Image) -> Image.Image:
        h, w = self.input_size
        resample = _INTERPOLATION[self.interpolation]
        if not self.crop:
            return img.resize((w, h), resample)
        if self.five_crop:
            return self._five_crops(img, resample)
        nw, nh = self._resized_size(img)
        # Centre crop as torchvision does it (pads when the resized picture is smaller than the crop).
        out_w, out_h = min(nw, w), min(nh, h)
        left = int(round((nw - w) / 2.0)) if nw >= w else 0
        top = int(round((nh - h) / 2.0)) if nh >= h else 0
        (img,) = _crops(img, (nw, nh), [(left, top, left + out_w, top + out_h)], resample, w * h)
        if (out_w, out_h) != (w, h):
            padded = Image.new("RGB", (w, h))
            padded.paste(img, ((w - out_w) // 2, (h - out_h) // 2))
            img = padded
        return img

    def _five_crops(self, img: Image.Image, resample) -> Image.Image:
        """The five crops side by side (width 5 x input width). The resized picture is at least the crop in
        both sides (``resize_shorter`` >= the crop), so no padding; a very long picture is resized crop by
        crop from the source, as in :meth:`resize_and_crop`."""
        h, w = self.input_size
        nw, nh = self._resized_size(img)
        nw, nh = max(nw, w), max(nh, h)
        canvas = Image.new("RGB", (5 * w, h))
        for i, tile in enumerate(_crops(img, (nw, nh), self.five_crop_boxes((nw, nh)), resample, w * h)):
            canvas.paste(tile, (i * w, 0))
        return canvas

    def to_array(self, img: Image.Image) -> np.ndarray:
        """RGB picture -> normalised float32 array of shape (3, *array_size)."""
        return normalise(np.asarray(self.resize_and_crop(img)), self.mean, self.std)


def _crops(img: Image.Image, size: tuple[int, int], boxes, resample, crop_pixels: int) -> list[Image.Image]:
    """The ``boxes`` (in pixels of ``img`` resized to ``size``) of the resized picture. A very long picture
    is not resized whole: only the region each box keeps is (``box``, in source pixels), so work and memory
    stay those of the crops (a 65,500 x 1 strip would otherwise first become 16.7M x 256 pixels). Pillow
    orders the two passes differently there, so a few pixels can differ by rounding from the full resize
    used for ordinary pictures (those up to ``FULL_RESIZE_LIMIT`` times ``crop_pixels``)."""
    nw, nh = size
    if (nw, nh) == img.size:
        return [img.crop(box) for box in boxes]
    if nw * nh <= FULL_RESIZE_LIMIT * crop_pixels:
        resized = img.resize((nw, nh), resample)
        return [resized.crop(box) for box in boxes]
    sx, sy = img.size[0] / nw, img.size[1] / nh
    return [img.resize((c - a, d - b), resample, box=(a * sx, b * sy, c * sx, d * sy)) for a, b, c, d in boxes]


@functools.lru_cache(maxsize=8)
def _lookup(mean: tuple, std: tuple) -> np.ndarray:
    """(3, 256) float32: channel c's normalised value of each 8-bit level, computed as the arithmetic did."""
    levels = np.arange(256, dtype=np.float32) * np.float32(1 / 255.0)
    return np.stack([(levels - np.float32(m)) / np.float32(s) for m, s in zip(mean, std)]).astype(np.float32)


def normalise(pixels: np.ndarray, mean, std) -> np.ndarray:
    """H x W x 3 uint8 -> normalised float32 (3, H, W) by table look-up (about half the time of the
    float arithmetic, equal to it within float32 rounding)."""
    table = _lookup(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    out = np.empty((3, *pixels.shape[:2]), np.float32)
    for c in range(3):
        np.take(table[c], pixels[..., c], out=out[c])
    return out
