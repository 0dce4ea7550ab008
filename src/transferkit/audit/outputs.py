"""The audit's outputs: the findings CSV, the JSON document and the self-contained HTML page.

CSV columns, in this order: ``kind,path,score,label,suggested_label,other_path``; rows sorted by kind,
then by score descending (higher = more suspicious). ``other_path`` is the other image of a duplicate
pair (for train/test leakage, ``path`` is the test image and ``other_path`` the training image), or,
for a label issue, the most similar training image of the suggested class.

The HTML shows the images side by side as thumbnails inlined as ``data:`` URIs (it opens from disk
with no network); a missing image becomes a placeholder saying why.
"""

from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import TransferkitError
from .run import KINDS, AuditResult

CSV_COLUMNS = ("kind", "path", "score", "label", "suggested_label", "other_path")
THUMB = 150
MAX_CARDS = 150  # per section of the HTML; the CSV and JSON hold every finding


def csv_text(result: AuditResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for f in result.findings:
        row = f.row()
        row["score"] = f"{f.score:.6g}"
        w.writerow([row[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def as_json(result: AuditResult) -> dict:
    return {"features": str(result.features), "images_root": result.images_root, "summary": result.summary,
            "seconds": result.seconds, "csv_columns": list(CSV_COLUMNS),
            "findings": [{**f.row(), **f.detail} for f in result.findings]}


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` under a temporary name, then rename: never a half-written file under ``path``."""
    from ..store.fsio import atomic_write_text

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TransferkitError(f"{path.parent}: output folder does not exist")
    atomic_write_text(path, text)
    return path


# -- HTML ----------------------------------------------------------------------------------------
def render_html(result: AuditResult, *, images_root: str | os.PathLike | None = None, thumb: int = THUMB,
                max_cards: int = MAX_CARDS, workers: int | None = None) -> str:
    import jinja2

    from .. import __version__

    root = Path(images_root) if images_root is not None else Path(result.images_root)
    sections = _sections(result, max_cards)
    wanted = sorted({p for s in sections for c in s["cards"] for p in (c["a"]["path"], c["b"]["path"]) if p})
    images, missing = _thumbnails(wanted, root, thumb, workers)
    for s in sections:
        for c in s["cards"]:
            for side in (c["a"], c["b"]):
                side["src"], side["problem"] = images.get(side["path"], ("", "")) if side["path"] else ("", "")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    s = result.summary
    classes = [{"name": name, **row} for name, row in s["per_class"].items()]
    return env.get_template("audit.html.j2").render(
        r=result, s=s, sections=sections, classes=classes, kinds=KINDS, root=str(root), missing=missing,
        max_share=max((c["share"] for c in classes), default=1.0) or 1.0, version=__version__,
        summary_json=json.dumps(s, indent=1, ensure_ascii=False),
    )


def _side(path: str, caption: str, label: str) -> dict:
    return {"path": path, "caption": caption, "label": label}


def _sections(result: AuditResult, max_cards: int) -> list[dict]:
    issues = result.of_kind("label_issue")
    dups = result.of_kind("duplicate")
    leak = [f for f in dups if f.detail.get("leakage")]
    within = [f for f in dups if not f.detail.get("leakage")]
    outliers = result.of_kind("outlier")

    def card(f, a, b, facts):
        return {
            "kind": f.kind,
            "path": f.path,
            "score": f.score,
            "a": a,
            "b": b,
            "facts": facts,
            "flag": "exact" if f.detail.get("exact") else ("labels differ" if f.detail.get("labels_differ") else ""),
        }

    out = [
        {
            "id": "label-issues",
            "title": "Label issues",
            "findings": issues,
            "note": "Left: the image with its given label. Right: the most similar training image of the suggested "
            "class. Ranked by the score (higher = more suspicious).",
            "cards": [
                card(
                    f,
                    _side(f.path, f"given: {f.label}", f.label),
                    _side(f.other_path, f"nearest {f.suggested_label}", f.suggested_label),
                    [
                        ("score", f"{f.score:.3f}"),
                        ("p(given)", f"{f.detail['p_given']:.3f}"),
                        ("suggested", f.suggested_label),
                        ("p(suggested)", f"{f.detail['p_suggested']:.3f}"),
                        ("split", f.detail["split"]),
                    ],
                )
                for f in issues[:max_cards]
            ],
        },
        {
            "id": "leakage",
            "title": "Train/test leakage",
            "findings": leak,
            "note": "Test images (left) with a duplicate in the train split (right): the model has in effect seen "
            "them, which inflates test accuracy. Remove one image of each pair, or move them to one split.",
            "cards": [
                card(
                    f,
                    _side(f.path, f"test · {f.label}", f.label),
                    _side(f.other_path, f"train · {f.detail['other_label']}", f.detail["other_label"]),
                    [("cosine", f"{f.score:.5f}"), ("kind", "exact" if f.detail["exact"] else "near")],
                )
                for f in leak[:max_cards]
            ],
        },
        {
            "id": "duplicates",
            "title": "Duplicates within a split",
            "findings": within,
            "note": "Pairs of images in the same split whose features are (nearly) identical.",
            "cards": [
                card(
                    f,
                    _side(f.path, f"{f.detail['split']} · {f.label}", f.label),
                    _side(
                        f.other_path, f"{f.detail['other_split']} · {f.detail['other_label']}", f.detail["other_label"]
                    ),
                    [("cosine", f"{f.score:.5f}"), ("kind", "exact" if f.detail["exact"] else "near")],
                )
                for f in within[:max_cards]
            ],
        },
        {
            "id": "outliers",
            "title": "Outliers",
            "findings": outliers,
            "note": "Images far from all others (mean cosine distance to their nearest neighbours above the bar); "
            "right: the nearest image.",
            "cards": [
                card(
                    f,
                    _side(f.path, f"{f.detail['split']} · {f.label}", f.label),
                    _side(
                        f.detail["nearest_path"], f"nearest · {f.detail['nearest_label']}", f.detail["nearest_label"]
                    ),
                    [("distance", f"{f.score:.3f}"), ("nearest cosine", f"{f.detail['nearest_similarity']:.3f}")],
                )
                for f in outliers[:max_cards]
            ],
        },
    ]
    return out


def _thumbnails(paths: list[str], root: Path, size: int, workers: int | None) -> tuple[dict, int]:
    """{path: (data URI, problem)} and how many could not be read."""
    from ..engines.pipeline import available_cpus
    from ..evaluate.report import thumbnail

    if not paths:
        return {}, 0
    with ThreadPoolExecutor(max_workers=workers or min(8, available_cpus())) as pool:
        made = list(pool.map(lambda p: thumbnail(root / p, size), paths))
    return dict(zip(paths, made)), sum(bool(problem) for _, problem in made)
