"""``compare()``: which representation of *this* dataset works best for a linear classifier?

Every candidate (the raw-pixel baseline and each backbone x layer x pool) is scored on the same
images and the same stratified folds, so the comparison is paired. Features come from a matching
feature file when one exists (same model, weights hash, layer, pool, preprocessing, covering the same
images) and are extracted into the cache folder otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..backbones import DEFAULT_MODEL
from ..errors import AdvisedError, TransferkitError
from .candidates import (
    expand,
    find_reusable,
    image_key,
    images_digest,
    match_feature_file,
    parse_baseline,
    pixel_features,
    write_manifest,
)
from .cv import corrected_paired_ttest, cross_validate, make_folds
from .hscore import hscore
from .logme import logme
from .results import SIGNIFICANCE, CandidateResult, CompareResult  # noqa: F401  (also importable from here)


def compare(
    data: str | os.PathLike,
    models: Sequence[str] = (DEFAULT_MODEL,),
    *,
    layers: Sequence[str | None] = (None,),
    pools: Sequence[str] = ("avg",),
    weights: str | None = None,
    baseline: str | None = "pixels",
    folds: int = 10,
    sample: int | None = None,
    seed: int = 42,
    out: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    reuse: Sequence[str | os.PathLike] = (),
    C: float = 1.0,
    batch_size: int | str = 32,
    workers: int | None = None,
    device: str = "cpu",
    progress: Callable[[str], contextlib.AbstractContextManager] | None = None,
    log: Callable[[str], None] | None = None,
    precision: str = "auto",
    error_text: Callable[[TransferkitError], str] = str,
) -> CompareResult:
    """Score the raw-pixel ``baseline`` and every ``models`` x ``layers`` x ``pools`` candidate on ``data``.

    Returns a :class:`CompareResult` whose rows carry per-fold accuracy and macro-F1 (paired: the same
    ``folds`` stratified folds for every candidate), LogME and H-score, extraction and training time.
    ``sample``: score a stratified subsample of that many images. ``out``: write ``compare.csv``,
    ``compare.json`` and ``compare.png`` there. ``cache_dir`` (default ``out/features``): per-candidate
    feature files, reused on later runs; ``reuse``: more feature files to reuse when they match.
    ``precision``: as for ``extract``; ``int8`` calibrates on the images scored and reuses only int8 files.
    ``progress(description)`` returns a context manager yielding a ``(done, total)`` callback.
    ``error_text(exc)`` words a failed candidate's error (the CLI words the settings it advises as flags).
    """
    say = log or (lambda msg: None)
    candidates = ([b] if (b := parse_baseline(baseline)) else []) + expand(models, layers, pools, weights)
    if sample is not None and sample < 2:
        raise AdvisedError("{o[sample]} must be at least 2, got {sample}", sample=sample)
    if C <= 0:
        raise TransferkitError(f"C must be positive, got {C}")
    dataset, keys, labels = _chosen_images(data, sample, seed)
    make_folds(labels, folds, seed)  # refuse too many folds before any extraction

    out_dir = Path(out) if out is not None else None
    cache = Path(cache_dir) if cache_dir is not None else (out_dir / "features" if out_dir is not None else None)
    for folder in (out_dir, cache):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    if cache is not None:
        cache = cache.resolve()  # the sample manifest's paths are made relative to it

    digest = images_digest(keys)

    @functools.cache
    def source() -> Path:  # what extract() reads: the dataset itself, or a manifest of the sample
        if sample is None:
            return Path(data)
        return write_manifest(cache / f"sample-{digest}.csv", keys, [dataset.class_names[i] for i in labels])

    def backbone_features(res):
        if cache is None:
            raise TransferkitError("compare needs out= or cache_dir= for the feature files of backbone candidates")
        newest = max((_mtime(k) for k in keys), default=0.0)
        return _backbone_features(res, keys, cache, digest, newest, source(), reuse, batch_size, workers, device,
                                  seed, progress, say, precision)[:2]

    results = [CandidateResult(cand) for cand in candidates]
    features, skipped = {}, {}  # candidate index -> (rows, present mask); image -> why unreadable
    for ci, res in enumerate(results):
        try:
            if res.candidate.is_pixels:
                features[ci] = _pixel_features(res, keys, workers, skipped, say)
            else:
                features[ci] = backbone_features(res)
            res.dims = int(features[ci][0].shape[1])
        except TransferkitError as exc:
            res.error = error_text(exc)
            say(f"{res.name}: [red]failed[/]: {res.error}")
    if not features:
        raise TransferkitError("no candidate could be scored: " + "; ".join(f"{r.name}: {r.error}" for r in results))

    common = np.logical_and.reduce([present for _, present in features.values()])
    dropped = [(k, skipped.get(k, "unreadable for some candidate")) for k, c in zip(keys, common) if not c]
    y = labels[common]
    rows = _score(results, {ci: full[common] for ci, (full, _) in features.items()}, y, folds, seed, C, progress, say)
    result = CompareResult(
        rows=rows,
        class_names=list(dataset.class_names),
        n_images=int(len(y)),
        n_dataset=len(dataset),
        folds=folds,
        sample=sample,
        seed=seed,
        dropped=dropped,
        out_dir=out_dir,
    )
    if out_dir is not None:
        from .outputs import save

        save(result, out_dir)
    return result


def _chosen_images(data, sample: int | None, seed: int):
    """(dataset, image keys, labels) of the images scored: all of them, or a stratified ``sample``."""
    from ..data import discover
    from ..data.discover import require_two_classes

    dataset = discover(data)
    require_two_classes(dataset, str(data))
    root = Path(dataset.root).resolve()
    keys_all = [image_key(root, s.path) for s in dataset.samples]
    labels_all = np.array([s.label for s in dataset.samples])
    chosen = _stratified_sample(labels_all, sample, seed, str(data))
    return dataset, [keys_all[i] for i in chosen], labels_all[chosen]


def _pixel_features(res, keys, workers, skipped: dict, say) -> tuple[np.ndarray, np.ndarray]:
    """(raw pixels of every image, which images decoded) for the pixel baseline; ``skipped`` gets the rest."""
    cand = res.candidate
    say(f"{cand.name}: decoding {len(keys)} images")
    start = time.perf_counter()
    feats, positions, failures = pixel_features(keys, cand.pixel_size, workers=workers)
    res.extract_seconds = time.perf_counter() - start
    present = np.zeros(len(keys), bool)
    present[positions] = True
    full = np.zeros((len(keys), feats.shape[1]), np.float32)
    full[positions] = feats
    skipped.update((keys[p], reason) for p, reason in failures)
    return full, present


def _score(results, features: dict, y, folds: int, seed: int, C: float, progress, say) -> list:
    """Paired k-fold CV, LogME and H-score of each candidate's ``features`` (on the same rows ``y``);
    the rows ordered by LogME, each compared with the best by CV accuracy, failures last."""
    fold_list = make_folds(y, folds, seed)
    n_test = int(np.mean([len(t) for _, t in fold_list]))
    for ci, X in features.items():
        res = results[ci]
        say(f"{res.name}: {folds}-fold CV on {len(y)} images x {X.shape[1]} features")
        ctx = progress(f"CV {res.name}") if progress else contextlib.nullcontext(None)
        with ctx as update:
            cv = cross_validate(X, y, fold_list, C=C, seed=seed, progress=update)
        res.accuracy, res.macro_f1 = cv.accuracy, cv.macro_f1
        res.train_seconds, res.not_converged = cv.fit_seconds, cv.not_converged
        start = time.perf_counter()
        res.logme = logme(X, y)
        res.hscore = hscore(X, y)
        res.score_seconds = time.perf_counter() - start
    ok = sorted((r for r in results if r.ok), key=lambda r: -r.logme)
    best = max(ok, key=lambda r: r.accuracy_mean)  # on a tie, the first by LogME: the same as CompareResult.best
    for r in ok:
        if r is not best:
            r.delta_vs_best, r.p_vs_best = corrected_paired_ttest(r.accuracy, best.accuracy, len(y) - n_test, n_test)
    return ok + [r for r in results if not r.ok]


def _backbone_features(
    res, keys, cache, digest, newest, source, reuse, batch_size, workers, device, seed, progress, say, precision="auto"
):
    from ..engines.factory import backbone_spec
    from ..extraction import extract
    from ..store import open_features

    cand = res.candidate
    spec = backbone_spec(cand.model, weights=cand.weights, layer=cand.layer, pool=cand.pool)
    int8 = str(precision).strip().lower() == "int8"
    target = cache / f"{cand.slug}__{digest}{'-int8' if int8 else ''}.h5"
    # also the feature files of the current folder: `transferkit extract DATA -o f.h5` then `compare DATA`
    # should not extract the same features again
    here = sorted(p for p in Path.cwd().glob("*.h5") if p.resolve() != target)
    pool = [Path(p) for p in reuse] + [target] + sorted(p for p in cache.glob("*.h5") if p != target) + here
    found = find_reusable([p for p in pool if p.is_file()], spec, keys, newest, int8=int8)
    if found is not None:
        res.reused = True
        say(f"{cand.name}: reusing {found.path}")
    else:
        if target.exists():
            say(f"{cand.name}: {target.name} is stale or incomplete; extracting again")
        else:
            say(
                f"{cand.name}: no matching feature file here or in {cache}; extracting "
                "(--reuse FILE takes one from `transferkit extract` with the same model, layer and pool)"
            )
        ctx = progress(f"extract {cand.name}") if progress else contextlib.nullcontext(None)
        start = time.perf_counter()
        with ctx as update:
            extract(
                source,
                target,
                model=cand.model,
                weights=cand.weights,
                layer=cand.layer,
                pool=cand.pool,
                batch_size=batch_size,
                test_size=0.0,
                seed=seed,
                workers=workers,
                overwrite=True,
                device=device,
                progress=update,
                precision=precision,
            )
        res.extract_seconds = time.perf_counter() - start
        found = match_feature_file(target, spec, keys, 0.0, int8=int8)
        if found is None:
            raise TransferkitError(f"{target}: the new feature file does not cover the images asked for")
    res.feature_file = found.path
    with open_features(found.path) as ff:
        stored = ff.h5["features"][()].astype(np.float32, copy=False)
    present = found.rows >= 0
    full = np.zeros((len(keys), stored.shape[1]), np.float32)
    full[present] = stored[found.rows[present]]
    return full, present, res


def _stratified_sample(labels: np.ndarray, sample: int | None, seed: int, where: str) -> np.ndarray:
    if sample is None or sample >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(labels))
    if sample < n_classes:
        raise AdvisedError(
            "{where}: {o[sample=@sample]} is smaller than the number of classes ({n})", where=where, sample=sample,
            n=n_classes,
        )
    chosen, _ = train_test_split(np.arange(len(labels)), train_size=sample, stratify=labels, random_state=seed)
    return np.sort(chosen)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
