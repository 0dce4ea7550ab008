"""A stable hash of a backbone spec, so driver and workers can check they run the same network."""

from __future__ import annotations

import hashlib
import json


def spec_sha256(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()
