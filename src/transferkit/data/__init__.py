"""Dataset discovery (class folders or a CSV manifest), stratified splits and image decoding.

Decoding (Pillow) is imported on first use, so a command that only lists or prints paths does not pay for it.
"""

from .._lazy import lazy_exports
from .discover import IMAGE_EXTENSIONS, Dataset, Sample, discover, list_images
from .split import stratified_split

_LAZY = {"DecodeError": ".decode", "load_image": ".decode"}
__all__ = [
    "DecodeError",
    "Dataset",
    "IMAGE_EXTENSIONS",
    "Sample",
    "discover",
    "list_images",
    "load_image",
    "stratified_split",
]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
