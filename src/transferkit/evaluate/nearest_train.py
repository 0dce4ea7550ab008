"""For the report: the training images most similar (cosine, on the model's features) to each misclassified image.

Seeing the three nearest training images with their labels tells a confusing image (it looks like the
other class's training images) from a mislabelled training set (its nearest neighbours carry the
wrong label) at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_NEAREST = 3
THUMB = 84


@dataclass
class Neighbour:
    path: str
    label: str
    similarity: float
    image: str = ""  # data URI (set by fill_thumbnails)
    image_found: bool = True
    image_problem: str = ""


def attach_nearest_training(errors, X_errors: np.ndarray, X_train: np.ndarray, y_train: np.ndarray,
                            train_paths: list[str], names: list[str], exclude: np.ndarray | None = None,
                            k: int = N_NEAREST) -> list[Neighbour]:
    """Set ``e.neighbours`` of every misclassified ``e`` (rows of ``X_errors``, in order); return them all.

    ``exclude[i]``: the training row that is error ``i`` itself (when the train split is evaluated), or -1.
    """
    from ..audit.neighbours import nearest, unit_rows

    if not len(errors) or not len(X_train):
        return []
    idx, sim = nearest(unit_rows(X_errors), unit_rows(X_train), k, exclude=exclude)
    everyone = []
    for e, row_idx, row_sim in zip(errors, idx, sim):
        e.neighbours = [Neighbour(train_paths[j], names[int(y_train[j])], float(s))
                        for j, s in zip(row_idx, row_sim) if j >= 0]
        everyone += e.neighbours
    return everyone
