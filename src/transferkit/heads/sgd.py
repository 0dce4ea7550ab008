"""Out-of-core training of the linear heads: minibatch Adam on the same objective as the L-BFGS path.

1. One streamed pass gathers the standardisation statistics (:class:`RunningStats`).
2. If there is a C grid (or the head needs calibration), the first of the ``cv`` stratified folds is
   held out; every C of the grid is trained side by side on the other rows — one matrix product per
   minibatch serves all of them, so the file is read once per epoch whatever the grid size — and C is
   chosen on the held-out rows (accuracy, then the head's tie-break loss).
3. The chosen C is trained again on every row, then polished with full-batch L-BFGS whose every
   objective evaluation is one streamed pass (``polish_iter`` iterations at most), which lands on the
   optimum the in-memory solver finds (to ``tol``) instead of somewhere near it.

Adam's step size follows a cosine schedule to zero over ``max_epochs``, which takes the iterate close
to the optimum of the convex objective; the per-epoch objective is kept in ``sgd_`` so a run that was
still moving at the end is visible (``sgd_["last_change"]``, the relative change over the last epoch).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import scaling as scalings
from ._common import RunningStats, check_folds, pick_best, sample_weights, stratified_folds
from .solver import n_outputs


def _targets(loss: str, y_enc: torch.Tensor, n_classes: int) -> torch.Tensor:
    if loss == "multinomial":
        return y_enc
    if loss == "binomial":
        return (y_enc == 1).to(torch.float64).unsqueeze(1)
    k = n_outputs(loss, n_classes)
    if k == 1:
        return torch.where(y_enc == 1, 1.0, -1.0).to(torch.float64).unsqueeze(1)
    t = -torch.ones(len(y_enc), k, dtype=torch.float64)
    t[torch.arange(len(y_enc)), y_enc] = 1.0
    return t


def pointwise_loss(loss: str, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-row loss of decision values ``z`` (N, K) against targets from :func:`_targets` (the losses of
    :mod:`.solver`, in torch for minibatch autograd)."""
    if loss == "multinomial":
        return torch.nn.functional.cross_entropy(z, t, reduction="none")
    if loss == "binomial":
        return torch.nn.functional.binary_cross_entropy_with_logits(z, t.to(z.dtype), reduction="none").sum(1)
    return torch.clamp(1.0 - t.to(z.dtype) * z, min=0.0).pow(2).sum(1)


def scaling_stream(source, name: str = "standardise") -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of a scaling (:mod:`.scaling`) from one streamed pass (none needed for row norms)."""
    D = source.n_features
    if name in ("l2", "sqrt-l2"):
        return scalings.fit(name, np.zeros((1, D), np.float32))
    stats, sq, n = RunningStats(), 0.0, 0
    for X, _, _ in source.chunks():
        if name == "standardise":
            stats.update(X)
        sq += float(np.einsum("ij,ij->", X, X, dtype=np.float64))
        n += len(X)
    if name == "standardise":
        return stats.result()
    return np.zeros(D, np.float32), np.full(D, np.sqrt(max(sq / max(n, 1), 1e-30) / D), np.float32)


def train_linear_sgd(source, positions, y_enc, n_classes, Cs, loss, mean, scale, class_weight, *,
                     max_epochs=20, batch_size=256, lr=0.01, seed=0, scaling="standardise"):
    """Train one linear model per C on ``positions``; returns W (m, D, k), b (m, k) and the objective per epoch."""
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    m, D, k = len(Cs), source.n_features, n_outputs(loss, n_classes)
    n = len(positions)
    w_all = sample_weights(y_enc, n_classes, class_weight)  # per source row
    w_fit = sample_weights(y_enc[positions], n_classes, class_weight)
    S = float(w_fit.sum())
    mean_w = S / n
    reg = torch.tensor([1.0 / (2.0 * C * S) for C in Cs], dtype=torch.float32)
    W = torch.zeros(m, D, k, requires_grad=True)
    b = torch.zeros(m, k, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    steps_per_epoch = sum(math.ceil(len(c[2]) / batch_size) for c in _chunk_sizes(source, positions))
    total = max(1, steps_per_epoch * max_epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    history = []
    for _ in range(max_epochs):
        total_obj, seen = torch.zeros(m, dtype=torch.float64), 0
        for X, _, pos in source.chunks(positions, rng):
            Xs = torch.from_numpy(scalings.apply(scaling, X, mean, scale))
            yb_all = torch.from_numpy(y_enc[pos])
            sw_all = torch.from_numpy(w_all[pos] / mean_w).float()
            order = torch.randperm(len(pos), generator=gen)
            for start in range(0, len(pos), batch_size):
                idx = order[start : start + batch_size]
                xb, yb, sw = Xs[idx], yb_all[idx], sw_all[idx]
                z = (xb @ W.permute(1, 0, 2).reshape(D, m * k)).reshape(len(idx), m, k) + b
                t = _targets(loss, yb, n_classes)
                per_model = torch.stack([(pointwise_loss(loss, z[:, j], t) * sw).mean() for j in range(m)])
                obj = per_model + reg * (W * W).sum(dim=(1, 2))
                opt.zero_grad()
                obj.sum().backward()
                opt.step()
                sched.step()
                total_obj += obj.detach().double() * len(idx)
                seen += len(idx)
        history.append((total_obj / max(seen, 1)).tolist())
    return W.detach(), b.detach(), history


def _chunk_sizes(source, positions):
    """Chunk shapes of one epoch, without reading features (for the learning-rate schedule)."""
    per_chunk = max(1, source.chunk_rows // source.block_rows) * source.block_rows
    n = len(positions)
    for start in range(0, n, per_chunk):
        yield None, None, range(min(per_chunk, n - start))


def decisions(source, positions, W, b, mean, scale, scaling="standardise") -> np.ndarray:
    """Decision values (len(positions), m, k) of every model, streamed in order."""
    m, D, k = W.shape
    out = []
    with torch.no_grad():
        for X, _, _ in source.chunks(positions):
            Xs = torch.from_numpy(scalings.apply(scaling, X, mean, scale))
            out.append(((Xs @ W.permute(1, 0, 2).reshape(D, m * k)).reshape(len(X), m, k) + b).numpy())
    return np.concatenate(out) if out else np.zeros((0, m, k), np.float32)


def lbfgs_stream(source, y_enc, n_classes, C, loss, mean, scale, class_weight, W0, b0, *, max_iter=30, tol=1e-4,
                 scaling="standardise"):
    """Polish (W, b) with full-batch L-BFGS whose every objective evaluation is one streamed pass.

    Same objective and stopping rule as the in-memory :func:`~transferkit.heads.solver.lbfgs_fit`;
    starting next to the optimum (from minibatch Adam) it needs a few passes, not hundreds.
    """
    w_all = sample_weights(y_enc, n_classes, class_weight)
    S = float(w_all.sum())
    reg = 1.0 / (2.0 * C * S)
    W = W0.detach().clone().double().requires_grad_(True)
    b = b0.detach().clone().double().requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=max_iter * 2, tolerance_grad=tol,
                            tolerance_change=1e-12, history_size=10, line_search_fn="strong_wolfe")
    passes = [0]

    def closure():
        opt.zero_grad()
        total = torch.zeros((), dtype=torch.float64)
        for X, _, pos in source.chunks():
            # in quarter-chunk slices: the float64 copy and what autograd keeps stay small
            step = max(1, -(-len(pos) // 4))
            for s in range(0, len(pos), step):
                Xs = torch.from_numpy(scalings.apply(scaling, X[s : s + step], mean, scale)).double()
                p = pos[s : s + step]
                t = _targets(loss, torch.from_numpy(y_enc[p]), n_classes)
                part = (pointwise_loss(loss, Xs @ W + b, t) * torch.from_numpy(w_all[p])).sum() / S
                part.backward()
                total += part.detach()
                del Xs, part
        r = reg * (W * W).sum()
        r.backward()
        passes[0] += 1
        return total + r.detach()

    opt.step(closure)
    n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
    obj = float(closure())
    grad_max = float(max(W.grad.abs().max(), b.grad.abs().max()))
    return W.detach(), b.detach(), {"n_iter": n_iter, "passes": passes[0], "grad_max": grad_max,
                                    "objective": obj, "converged": grad_max <= tol}


def fit_linear_stream(head, source) -> None:
    y = source.labels
    head.classes_ = np.unique(y)
    y_enc = np.searchsorted(head.classes_, y)
    K = len(head.classes_)
    Cs, _ = head._grid()  # out of core the grid is used as it is (each pass over the file costs)
    loss = head.loss
    select = len(Cs) > 1 or head.needs_oof
    check_folds(y, head.cv if select else 1)
    # Out of core the scaling is not cross-validated ("auto" is standardised), so the file is read once per epoch.
    head.scaling_ = scalings.DEFAULT_SCALING if head.scaling == "auto" else head.scaling
    head.mean_, head.scale_ = scaling_stream(source, head.scaling_)
    opts = dict(max_epochs=head.max_epochs, batch_size=head.batch_size, seed=head.random_state,
                scaling=head.scaling_)
    record = {"solver": "minibatch Adam (out of core)", "chunk_rows": int(source.chunk_rows),
              "epochs": int(head.max_epochs)}
    best, val_dec, val_pos = 0, None, None
    if select:
        fit_pos, val_pos = stratified_folds(y_enc, head.cv, head.random_state)[0]
        W, b, hist = train_linear_sgd(source, fit_pos, y_enc, K, Cs, loss, head.mean_, head.scale_,
                                      head.class_weight, **opts)
        dec = decisions(source, val_pos, W, b, head.mean_, head.scale_, head.scaling_)
        scores = [head._score(dec[:, j], y_enc[val_pos]) for j in range(len(Cs))]
        acc = np.array([s[0] for s in scores])
        tie = np.array([s[1] for s in scores])
        best = pick_best(acc, tie)
        val_dec = dec[:, best]
        record["selection_objective"] = [h[best] for h in hist]
        head.cv_results_ = {"param": "C", "C": Cs, "mean_accuracy": acc.tolist(), "std_accuracy": [0.0] * len(Cs),
                            head.tie_name: tie.tolist(), "folds": 1, "holdout_rows": int(len(val_pos))}
        head.cv_score_ = float(acc[best])
    else:
        head.cv_results_ = {"param": "C", "C": Cs, "mean_accuracy": [0.0], "std_accuracy": [0.0],
                            head.tie_name: [0.0], "folds": 0}
        head.cv_score_ = None
    head.C_ = Cs[best]
    W, b, hist = train_linear_sgd(source, np.arange(source.n_rows), y_enc, K, [head.C_], loss, head.mean_,
                                  head.scale_, head.class_weight, **opts)
    objective = [h[0] for h in hist]
    record["objective"] = objective
    record["last_change"] = (
        abs(objective[-1] - objective[-2]) / max(abs(objective[-1]), 1e-12) if len(objective) > 1 else None
    )
    polished = None
    if head.polish_iter:
        Wp, bp, polished = lbfgs_stream(
            source,
            y_enc,
            K,
            head.C_,
            loss,
            head.mean_,
            head.scale_,
            head.class_weight,
            W[0],
            b[0],
            max_iter=head.polish_iter,
            tol=head.tol,
            scaling=head.scaling_,
        )
        record["polish"] = polished
        W, b = Wp.unsqueeze(0), bp.unsqueeze(0)
    head.sgd_ = record
    head.solver_ = record["solver"] + (" + streamed L-BFGS" if polished else "")
    head.n_iter_ = [polished["n_iter"]] if polished else []
    head.n_not_converged_ = int(polished is not None and not polished["converged"])
    head.n_fits_ = (len(Cs) if select else 0) + 1
    head._set_coef(W[0].numpy().astype(np.float64).T, b[0].numpy().astype(np.float64))
    if val_dec is not None:
        head._finish(val_dec, y_enc[val_pos])
