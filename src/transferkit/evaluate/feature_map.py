"""A 2-D map of feature vectors for the report: t-SNE (scikit-learn) when the split is small, PCA otherwise.

Points are coloured by true class; misclassified rows are drawn on top as black-edged crosses in the
colour of their true class, so clusters of mistakes and classes that overlap show at a glance.
"""

from __future__ import annotations

import numpy as np

TSNE_MAX_ROWS = 800  # above this, PCA: exact t-SNE's time grows as the square of the points (340 rows: ~1-4 s)


def embed_2d(X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """(N x 2 coordinates, method name)."""
    X = np.asarray(X, np.float32)
    X = X - X.mean(axis=0)
    n = len(X)
    if n < 3:
        return np.zeros((n, 2)), "none"
    # PCA by SVD of the centred rows (also the first step before t-SNE)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    dims = min(50, vt.shape[0])
    P = X @ vt[:dims].T
    if n <= TSNE_MAX_ROWS and n > 10:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(5.0, (n - 1) / 4)))
        # exact gradients: at these sizes several times faster than Barnes-Hut, and 500 iterations settle
        Y = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method="exact",
                 max_iter=500).fit_transform(P)
        return Y, "t-SNE"
    return P[:, :2], "PCA"


def feature_map_png(coords: np.ndarray, y: np.ndarray, wrong: np.ndarray, names: list[str], method: str) -> str:
    """Scatter of ``coords`` coloured by class ``y``, ``wrong`` rows marked; a PNG data URI."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from .png import png_data_uri

    K = len(names)
    cmap = colormaps["tab20" if K > 10 else "tab10"]
    colours = [cmap(i % cmap.N) for i in range(K)]
    fig = Figure(figsize=(7.4 if K <= 20 else 6.0, 5.2), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    y = np.asarray(y)
    wrong = np.asarray(wrong, bool)
    for c in range(K):
        rows = (y == c) & ~wrong
        if rows.any() or (y == c).any():
            ax.scatter(coords[rows, 0], coords[rows, 1], s=12, color=colours[c], alpha=0.75, linewidths=0,
                       label=names[c] if K <= 20 else None)
    if wrong.any():
        ax.scatter(coords[wrong, 0], coords[wrong, 1], s=70, marker="X", c=[colours[int(c)] for c in y[wrong]],
                   edgecolors="black", linewidths=0.9, label=f"misclassified ({int(wrong.sum())})", zorder=3)
    ax.set_title(f"{method} map of the features ({len(y)} images, coloured by true class)")
    ax.set_xticks([]), ax.set_yticks([])
    if K <= 20:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return png_data_uri(fig)
