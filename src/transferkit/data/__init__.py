"""Dataset discovery (class folders or a CSV manifest), stratified splits and image decoding."""

from .decode import DecodeError, load_image
from .discover import IMAGE_EXTENSIONS, Dataset, Sample, discover, list_images
from .split import stratified_split

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
