"""transferkit: transfer learning by feature extraction on images.

A pretrained network turns each image into a feature vector once; the vectors live in an HDF5 file;
cheap classifier heads are trained, compared and deployed on them.
"""

__version__ = "0.1.0"

from .api import compare, evaluate, export_onnx, extract, load_model, open_features, predict, train  # noqa: E402
from .errors import TransferkitError  # noqa: E402

__all__ = ["TransferkitError", "__version__", "compare", "evaluate", "export_onnx", "extract", "load_model",
           "open_features", "predict", "train"]
