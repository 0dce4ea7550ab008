"""Decode any image file into an 8-bit RGB picture, deliberately, or say why it cannot be used.

- EXIF orientation is applied.
- Grayscale, palette, CMYK, YCbCr, LAB and HSV are converted to RGB; grayscale is replicated to three
  channels (an ImageNet backbone expects colour).
- Transparency (RGBA, LA, PA, palette with a transparent colour) is composited on white, so that a
  transparent background does not turn black.
- 16-bit and 32-bit integer images are scaled to 8 bits by their bit depth (not clipped); float images
  in [0, 1] are scaled by 255.
- JPEG draft mode (DCT-domain downscaling by 1/2, 1/4 or 1/8) is used only when the drafted picture is
  still at least ``min_size`` on both sides, i.e. at least as large as the resize target, so the final
  resize never upsamples because of it.
- A file that cannot be decoded raises :class:`DecodeError` with a short reason; callers record it and
  carry on.
"""

from __future__ import annotations

import os
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..filekind import not_a_regular_file

# We check the decompression-bomb limit ourselves (and treat it as an error), so Pillow's warning for
# images between 1x and 2x the limit would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

WHITE = (255, 255, 255)


class DecodeError(Exception):
    """An image file that cannot be used; ``str(exc)`` is the reason recorded for it."""


def load_image(path: str | os.PathLike, min_size: int | None = None) -> Image.Image:
    """Open ``path`` and return an RGB :class:`PIL.Image.Image` (fully loaded, file closed)."""
    what = not_a_regular_file(path)
    if what:  # asked before opening: opening a FIFO would block
        raise DecodeError(f"is {what}, not an image file")
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except OSError as exc:
        raise DecodeError(f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            _check_bomb(img)
            if min_size and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
                img.draft(img.mode, (min_size, min_size))
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, KeyError) as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            raise DecodeError(f"truncated or corrupt image ({msg})") from None
        raise DecodeError(f"cannot decode image ({msg})") from None


def _check_bomb(img: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        raise DecodeError(
            f"decompression bomb ({img.width}x{img.height} = {img.width * img.height} pixels "
            f"exceeds Pillow's limit of {limit})"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, as described in the module docstring."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img)
        if mode == "I" and arr.size and int(arr.max()) <= 255 and int(arr.min()) >= 0:
            arr8 = arr.astype(np.uint8)  # a 32-bit container holding 8-bit values
        elif mode == "I" and arr.size and int(arr.max()) > 65535:
            arr8 = (np.clip(arr, 0, None).astype(np.float64) / 2**32 * 256).astype(np.uint8)
        else:
            arr8 = (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        arr8 = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    # 1, L, CMYK, YCbCr, LAB, HSV and anything else Pillow can convert.
    return img.convert("RGB")
