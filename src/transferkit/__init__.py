"""transferkit: transfer learning by feature extraction on images.

A pretrained network turns each image into a feature vector once; the vectors live in an HDF5 file;
cheap classifier heads are trained, compared and deployed on them.
"""

__version__ = "0.1.0"

from ._lazy import lazy_exports  # noqa: E402
from .errors import TransferkitError  # noqa: E402

__all__ = [
    "TransferkitError",
    "__version__",
    "audit",
    "compare",
    "evaluate",
    "export_features",
    "export_onnx",
    "extract",
    "finetune",
    "load_model",
    "open_features",
    "predict",
    "train",
]
# The verbs are imported on first use: `import transferkit` must not cost PyTorch's start-up.
__getattr__, _ = lazy_exports(__package__, {name: ".api" for name in __all__[2:]})
# `transferkit.evaluate` (and `transferkit.audit`) is the verb, although a subpackage has that name too.
# Loading a subpackage sets the parent's attribute, which would hide the verb from __getattr__; so load it now
# (it is lazy itself) and drop the attribute: later imports of transferkit.evaluate.* find it in sys.modules instead.
# (import_module, not `from . import evaluate`: that would ask __getattr__ for the verb first.)
import importlib as _importlib  # noqa: E402

_importlib.import_module(".evaluate", __package__)
del evaluate  # noqa: F821
_importlib.import_module(".audit", __package__)
del audit  # noqa: F821


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
