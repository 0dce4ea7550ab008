"""Dataset discovery (class folders or a CSV manifest), stratified splits and image decoding.

The names are imported on first use, so a command that only needs ``data.walk`` (every CLI command, for
printing paths) does not pay for Pillow.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "DecodeError": ".decode",
    "load_image": ".decode",
    "IMAGE_EXTENSIONS": ".discover",
    "Dataset": ".discover",
    "Sample": ".discover",
    "discover": ".discover",
    "list_images": ".discover",
    "stratified_split": ".split",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
