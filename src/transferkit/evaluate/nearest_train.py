"""For the report: the training images most similar (cosine, on the model's features) to each misclassified image.

Seeing the three nearest training images with their labels tells a confusing image (it looks like the
other class's training images) from a mislabelled training set (its nearest neighbours carry the
wrong label) at a glance. The train split is read chunk by chunk, so a train split larger than
memory is fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_NEAREST = 3
CHUNK_MEMORY = 256 << 20


@dataclass
class Neighbour:
    path: str
    label: str
    similarity: float
    image: str = ""  # data URI (set by fill_thumbnails)
    image_found: bool = True
    image_problem: str = ""


def nearest_training(ff, X_query: np.ndarray, layers=None, exclude: np.ndarray | None = None,
                     k: int = N_NEAREST) -> tuple[np.ndarray, np.ndarray]:
    """(index, similarity) of the ``k`` most similar rows of ``ff``'s train split (index counts train rows
    in file order) to each row of ``X_query``; ``exclude[i]``: the train row that query ``i`` is, or -1."""
    from ..audit.neighbours import nearest, unit_rows

    if not len(X_query):
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    chunks = (unit_rows(f) for f, _ in ff.iter_chunks("train", max_memory=CHUNK_MEMORY, layers=layers))
    return nearest(unit_rows(X_query), chunks, k, exclude=exclude)


def attach(errors, rows: dict, index: np.ndarray, similarity: np.ndarray, train_paths: list[str],
           y_train: np.ndarray, names: list[str]) -> list[Neighbour]:
    """Set ``e.neighbours`` of every misclassified ``e`` (``rows[e.path]``: its row in ``index``); return them all."""
    everyone = []
    for e in errors:
        r = rows[e.path]
        e.neighbours = [Neighbour(train_paths[j], names[int(y_train[j])], float(s))
                        for j, s in zip(index[r], similarity[r]) if j >= 0]
        everyone += e.neighbours
    return everyone
