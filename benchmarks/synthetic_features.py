"""Write a synthetic transferkit feature file with a known structure (for out-of-core benchmarks).

Structure: ``n_classes`` class centres in a 32-d latent space (standard normal times ``separation``);
each row is ``relu(z @ M + 0.3 * noise)`` with ``z`` = its class centre + standard normal noise and
``M`` a fixed random 32 x D map — non-negative, correlated, low-rank-plus-noise vectors, like pooled
CNN features. Rows are written class by class (as extraction writes them, classes in folder order),
and a stratified 20 % are marked test, so a reader must shuffle to train well.
"""

from __future__ import annotations

import numpy as np


def write_synthetic(path, n_rows: int, dim: int, n_classes: int = 10, separation: float = 1.0, seed: int = 0,
                    test_fraction: float = 0.2, block: int = 20000) -> str:
    from transferkit.store.writer import FeatureWriter

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, 32)) * separation
    M = rng.standard_normal((32, dim)).astype(np.float32) / np.sqrt(32)
    labels = np.sort(rng.integers(0, n_classes, n_rows))
    split = (rng.random(n_rows) < test_fraction).astype(np.uint8)
    attrs = {"model": "synthetic", "weights_sha256": "none", "layer": "pre_logits", "pool": "avg",
             "preprocess": {"synthetic": True}, "n_images": n_rows}
    with FeatureWriter(path, feature_dim=dim, label_names=[f"class {i}" for i in range(n_classes)], attrs=attrs,
                       buffer_rows=block) as w:
        for s in range(0, n_rows, block):
            y = labels[s : s + block]
            z = centres[y] + rng.standard_normal((len(y), 32))
            X = np.maximum(z.astype(np.float32) @ M + 0.3 * rng.standard_normal((len(y), dim)).astype(np.float32), 0)
            w.add(X, y, [f"row{i}" for i in range(s, s + len(y))], split[s : s + block])
    return str(path)
