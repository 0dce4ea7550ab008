"""``inspect --verify``: is a feature file internally consistent?

Checks shapes, counts, label and split ranges, NaN/Inf in the features (streamed, never all in
memory), duplicate paths, and that the provenance attributes are there. A file that is not a
transferkit feature file, or cannot be read, fails with a one-line error instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.split import SPLITS, STRATIFIED
from . import schema, working
from .reader import FeatureFile

PROVENANCE = ("format_version", "model", "weights_sha256", "layer", "pool", "preprocess", "versions", "created",
              "dataset_root", "test_size", "seed", "n_images")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Verification:
    path: Path
    complete: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))


def verify_features(path: str | Path, max_memory: str | int = "256MB") -> Verification:
    with FeatureFile(path) as ff:
        v = Verification(Path(path), ff.complete)
        attrs = ff.attrs
        stratified = (attrs.get("split_source") or STRATIFIED) == STRATIFIED  # else the dataset brought the split
        missing = [k for k in PROVENANCE if k not in attrs and (stratified or k not in ("test_size", "seed"))]
        v.add("provenance attributes", not missing, f"missing: {', '.join(missing)}" if missing else f"{len(PROVENANCE)} present")
        version = attrs.get("format_version")
        v.add("format version", isinstance(version, int) and 1 <= version <= schema.FORMAT_VERSION,
              f"{version} (this transferkit reads up to {schema.FORMAT_VERSION})")

        h5 = ff.h5
        n = ff.n_rows
        feats = h5[schema.FEATURES]
        shape_ok = feats.ndim == 2 and feats.shape[1] > 0
        expect = feats.shape[0]
        lengths = {name: h5[name].shape for name in (schema.LABELS, schema.PATHS, schema.SPLIT)}
        same = all(len(s) == 1 and s[0] == expect for s in lengths.values())
        if working.is_working(h5):
            same = same and n <= expect
        v.add("shapes", shape_ok and same,
              f"features {feats.shape}, " + ", ".join(f"{k} {s}" for k, s in lengths.items()))
        v.add("feature dtype", feats.dtype in (np.float16, np.float32, np.float64), str(feats.dtype))

        names = ff.label_names
        v.add("label names", len(names) >= 1 and len(set(names)) == len(names), f"{len(names)} classes")
        labels = ff.labels
        bad = int(((labels < 0) | (labels >= len(names))).sum())
        v.add("label range", bad == 0, f"{bad} labels outside 0..{len(names) - 1}" if bad else f"all in 0..{len(names) - 1}")
        split = ff.split
        bad = int((~np.isin(split, list(SPLITS.values()))).sum())
        v.add("split values", bad == 0, f"{bad} rows not 0 (train), 1 (test) or 2 (val)" if bad else
              ", ".join(f"{int((split == value).sum())} {name}" for name, value in SPLITS.items()
                        if name != "val" or (split == value).any()))
        paths = ff.paths
        dupes = len(paths) - len(set(paths))
        empty = sum(1 for p in paths if not p)
        v.add("paths", dupes == 0 and empty == 0, f"{dupes} duplicated, {empty} empty" if dupes or empty else f"{len(paths)} unique")

        skipped = ff.skipped
        if ff.complete and "n_images" in attrs:
            total = n + len(skipped)
            v.add("counts", total == attrs["n_images"],
                  f"{n} rows + {len(skipped)} skipped = {total}, n_images = {attrs['n_images']}")
        elif ff.progress is not None:
            p = ff.progress
            v.add("counts", p["rows"] + p["skipped"] <= p["inputs_done"] <= p["inputs_total"],
                  f"{p['rows']} rows + {p['skipped']} skipped of {p['inputs_done']} inputs done, {p['inputs_total']} planned")

        nonfinite, first = 0, None
        offset = 0
        for chunk, _ in ff.iter_chunks(max_memory=max_memory):
            bad_rows = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            if len(bad_rows) and first is None:
                first = int(offset + bad_rows[0])
            nonfinite += len(bad_rows)
            offset += len(chunk)
        v.add("finite features", nonfinite == 0,
              f"{nonfinite} rows with NaN or Inf (first: row {first}, {paths[first]!r})" if nonfinite else f"{n} rows, no NaN/Inf")
        return v
