"""The audit verb: label issues, duplicates/leakage and outliers of one feature file, as findings."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from . import duplicates as dup
from .label_issues import find_label_issues
from .neighbours import DEFAULT_BUDGET, nearest, self_neighbours, unit_rows
from .outliers import DEFAULT_Z, knn_distance, outlier_rows

KINDS = ("duplicate", "label_issue", "outlier")  # CSV order: by kind (alphabetical), then score descending


@dataclass
class Finding:
    """One row of the findings table (the CSV columns), plus details for the JSON and the HTML."""

    kind: str  # "label_issue", "duplicate" or "outlier"
    path: str
    score: float  # higher = more suspicious
    label: str
    suggested_label: str = ""
    other_path: str = ""  # duplicate: the other image; label issue: nearest image of the suggested class
    detail: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"kind": self.kind, "path": self.path, "score": self.score, "label": self.label,
                "suggested_label": self.suggested_label, "other_path": self.other_path}


@dataclass
class AuditResult:
    findings: list[Finding]
    summary: dict
    features: Path
    images_root: str
    seconds: dict

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def audit(
    features: str | os.PathLike,
    model=None,
    *,
    folds: int = 5,
    seed: int = 42,
    score: str = "self-confidence",
    near: float = dup.DEFAULT_NEAR,
    k: int = 5,
    outlier_z: float = DEFAULT_Z,
    budget: int = DEFAULT_BUDGET,
    progress=None,
) -> AuditResult:
    """Audit every row of a feature file (both splits).

    ``model``: a trained model (or its file) whose head settings to use for the out-of-fold
    probabilities; default: the default head (logistic regression, C by 3-fold CV on all rows).
    ``folds``: folds of the out-of-fold probabilities. ``near``: cosine similarity from which two rows
    are duplicates. ``k``: neighbours of the outlier score. ``progress(stage, done, total)``.
    """
    from ..heads import make_head
    from ..heads.model_file import as_model
    from ..heads.out_of_fold import out_of_fold_log_proba, with_chosen_params
    from ..store import open_features
    from ..training import check_same_backbone

    say = progress or (lambda *a: None)
    t0 = time.perf_counter()
    model = as_model(model) if model is not None else None
    with open_features(features) as ff:
        ff.require_complete("audit")
        layer = model.backbone.get("layer") if model is not None else None
        if model is not None:
            check_same_backbone(model, ff, layer)
            if ff.label_names != model.class_names:
                raise TransferkitError(f"{features}: its classes differ from the model's")
        X, y = ff.load(None, layers=layer)
        paths, split, names = ff.paths, np.asarray(ff.split), ff.label_names
        root = str(ff.attrs.get("dataset_root", ""))
    if len(y) < 2:
        raise TransferkitError(f"{features}: {len(y)} row(s); an audit needs at least two")
    y = np.asarray(y, np.int64)
    seconds = {"load": time.perf_counter() - t0}

    # -- label issues ------------------------------------------------------------------------------
    t = time.perf_counter()
    present = np.unique(y)
    label_note = None
    if len(present) < 2:
        label_note = "one class only: no label issues can be found"
        issues, proba = None, None
    else:
        if model is not None:
            head = with_chosen_params(model.head)
        else:
            say("choosing the head's C", 0, 1)
            head = with_chosen_params(make_head("logreg", cv=min(3, folds), random_state=seed).fit(X, y))
        say("out-of-fold probabilities", 0, folds)
        logp = out_of_fold_log_proba(head, X, y, len(names), cv=folds, random_state=seed, class_names=names,
                                     progress=lambda d, n: say("out-of-fold probabilities", d, n))
        proba = np.exp(logp - logp.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        issues = find_label_issues(proba, y, score)
    seconds["label_issues"] = time.perf_counter() - t

    # -- neighbours: duplicates and outliers --------------------------------------------------------
    t = time.perf_counter()
    U = unit_rows(X)
    del X
    nb = self_neighbours(U, k=k, threshold=near, budget=budget, progress=lambda d, n: say("nearest neighbours", d, n))
    seconds["neighbours"] = time.perf_counter() - t
    pairs = dup.duplicate_pairs(nb.pairs, nb.pair_similarity, split)
    distance = knn_distance(nb.similarity)
    outliers, bar = outlier_rows(distance, outlier_z)

    # -- findings ----------------------------------------------------------------------------------
    where = [dup.SPLIT_NAMES.get(int(s), str(s)) for s in split]
    findings: list[Finding] = []
    if issues is not None:
        examples = _nearest_of_class(U, issues.rows, issues.suggested[issues.rows], y, split)
        for rank, (i, ex) in enumerate(zip(issues.rows, examples), 1):
            s = int(issues.suggested[i])
            findings.append(Finding(
                "label_issue", paths[i], float(issues.score[i]), names[y[i]], names[s],
                paths[ex] if ex >= 0 else "",
                {"split": where[i], "rank": rank, "p_given": float(proba[i, y[i]]), "p_suggested": float(proba[i, s]),
                 "other_label": names[y[ex]] if ex >= 0 else ""}))
    for p in pairs:
        i, j = dup.pair_rows_for_test_first(p, split)
        findings.append(Finding(
            "duplicate", paths[i], p.similarity, names[y[i]], "", paths[j],
            {"split": where[i], "other_split": where[j], "other_label": names[y[j]], "exact": p.exact,
             "leakage": p.leakage, "where": p.where, "labels_differ": bool(y[i] != y[j])}))
    for i in outliers:
        j = int(nb.index[i, 0]) if nb.index.shape[1] else -1
        findings.append(
            Finding(
                "outlier",
                paths[i],
                float(distance[i]),
                names[y[i]],
                "",
                "",
                {
                    "split": where[i],
                    "nearest_path": paths[j] if j >= 0 else "",
                    "nearest_label": names[y[j]] if j >= 0 else "",
                    "nearest_similarity": float(nb.similarity[i, 0]) if j >= 0 else None,
                },
            )
        )
    findings.sort(key=lambda f: (f.kind, -f.score, f.path, f.other_path))
    seconds["total"] = time.perf_counter() - t0
    summary = _summary(
        findings,
        y,
        split,
        names,
        pairs,
        issues,
        bar,
        distance,
        {
            "folds": folds,
            "seed": seed,
            "score": score,
            "near": near,
            "exact": dup.EXACT,
            "k": k,
            "outlier_z": outlier_z,
            "head": _head_name(model, head if issues is not None else None),
            "layer": layer,
        },
        label_note,
    )
    return AuditResult(
        findings=findings,
        summary=summary,
        features=Path(features),
        images_root=root,
        seconds={key: round(v, 3) for key, v in seconds.items()},
    )


def _head_name(model, head) -> str:
    if head is None:
        return "—"
    params = head.get_params()
    chosen = {"C": params.get("Cs"), "k": params.get("ks")}
    what = ", ".join(f"{k}={v[0]:g}" for k, v in chosen.items() if v)
    origin = f"settings of {model.path}" if model is not None and model.path else "default head"
    return f"{head.kind}" + (f" ({what})" if what else "") + f", {origin}"


def _nearest_of_class(U, rows, classes, y, split) -> list[int]:
    """For each row, the most similar training row labelled with the given class (-1 if none)."""
    out = np.full(len(rows), -1, np.int64)
    train = split == 0
    for c in np.unique(classes) if len(rows) else []:
        pick = np.flatnonzero(classes == c)
        ref = np.flatnonzero(train & (y == c))
        if not len(ref):
            ref = np.flatnonzero(y == c)
        if not len(ref):
            continue
        # a row is never its own example (it may be a training row of that class)
        pos = {int(r): n for n, r in enumerate(ref)}
        exclude = np.array([pos.get(int(rows[p]), -1) for p in pick], np.int64)
        idx, _ = nearest(U[rows[pick]], U[ref], 1, exclude=exclude)
        if idx.shape[1]:
            out[pick] = np.where(idx[:, 0] >= 0, ref[np.maximum(idx[:, 0], 0)], -1)
    return out.tolist()


def _summary(findings, y, split, names, pairs, issues, bar, distance, settings, label_note) -> dict:
    n = len(y)
    counts = np.bincount(y, minlength=len(names))
    per_kind = {kind: sum(f.kind == kind for f in findings) for kind in KINDS}
    per_class = {}
    for c, name in enumerate(names):
        per_class[name] = {
            "rows": int(counts[c]),
            "train": int(((y == c) & (split == 0)).sum()),
            "test": int(((y == c) & (split == 1)).sum()),
            "share": float(counts[c] / n),
            **{kind: 0 for kind in KINDS},
        }
    for f in findings:
        per_class[f.label][f.kind] += 1
    nonzero = counts[counts > 0]
    leak = [p for p in pairs if p.leakage]
    return {
        "rows": n,
        "train": int((split == 0).sum()),
        "test": int((split == 1).sum()),
        "classes": len(names),
        "counts": per_kind,
        "label_issues": {
            "flagged": per_kind["label_issue"],
            "share": per_kind["label_issue"] / n,
            "note": label_note,
            "thresholds": None if issues is None else [float(v) for v in issues.thresholds],
        },
        "duplicates": {
            "pairs": len(pairs),
            "exact": sum(p.exact for p in pairs),
            "near": sum(not p.exact for p in pairs),
            "within_train": sum(p.where == "train" for p in pairs),
            "within_test": sum(p.where == "test" for p in pairs),
            "other": sum(p.where not in ("train", "test") and not p.leakage for p in pairs),
            "leakage": len(leak),
            "leakage_exact": sum(p.exact for p in leak),
            "test_rows_leaked": len({p.i if split[p.i] == dup.TEST else p.j for p in leak}),
            "labels_differ": sum(bool(y[p.i] != y[p.j]) for p in pairs),
        },
        "outliers": {
            "flagged": per_kind["outlier"],
            "bar": None if not np.isfinite(bar) else float(bar),
            "median_distance": float(np.median(distance)) if n else None,
        },
        "per_class": per_class,
        "imbalance": {
            "largest": names[int(counts.argmax())],
            "smallest": names[int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))],
            "ratio": float(nonzero.max() / nonzero.min()) if len(nonzero) else None,
            "empty_classes": [names[c] for c in np.flatnonzero(counts == 0)],
        },
        "settings": settings,
    }
