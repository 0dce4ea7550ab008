"""The HDF5 feature file: schema, crash-safe working file, buffered writer, read-only reader, lock."""

from .advice import AdvisedError
from .fsio import OutOfSpaceError
from .layers import LayeredFeatureWriter
from .lock import LockedError
from .reader import FeatureFile, open_features
from .schema import FORMAT, FORMAT_VERSION
from .session import DatasetChangedError
from .settings import SettingsMismatchError
from .verify import verify_features
from .working import DamagedFileError
from .writer import FeatureWriter

__all__ = [
    "FORMAT", "FORMAT_VERSION", "AdvisedError", "DamagedFileError", "DatasetChangedError", "FeatureFile",
    "FeatureWriter", "LayeredFeatureWriter", "LockedError", "OutOfSpaceError", "SettingsMismatchError", "open_features",
    "verify_features",
]
