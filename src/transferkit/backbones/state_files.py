"""Two small helpers the weights readers share (``lite`` for the packaged Lite weights, ``weights`` for
user files and downloads): the hash of a weights file, and mapping a state dict onto an architecture by
position. Kept apart so that neither reader imports the other for them."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from ..errors import TransferkitError


@lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    st = os.stat(path)
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def map_by_position(source: dict, target_state: dict, origin: str) -> dict:
    if len(source) != len(target_state):
        raise TransferkitError(f"{origin}: holds {len(source)} tensors but the architecture has {len(target_state)}")
    mapped = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target_state.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise TransferkitError(
                f"{origin}: tensor {src_key} has shape {tuple(src.shape)} but {dst_key} needs {tuple(dst.shape)}"
            )
        mapped[dst_key] = src
    return mapped
