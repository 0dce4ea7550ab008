"""The report's thumbnails: each misclassified image made small from its original file, or a
placeholder saying why it could not be (a missing or unreadable file never stops the report)."""

from __future__ import annotations

import base64
import html
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report_data import Misclassified

THUMBNAIL_SIZE = 160  # longest side, pixels


def fill_thumbnails(
    errors: list[Misclassified], root: Path, size: int = THUMBNAIL_SIZE, workers: int | None = None
) -> int:
    """Set each error's ``image`` to a thumbnail of its original file (or a placeholder); return how many failed."""
    from ..engines.pipeline import available_cpus

    if not errors:
        return 0
    with ThreadPoolExecutor(max_workers=workers or min(8, available_cpus())) as pool:
        results = list(pool.map(lambda m: thumbnail(root / m.path, size), errors))
    failed = 0
    for m, (uri, problem) in zip(errors, results):
        m.image, m.image_problem, m.image_found = uri, problem, not problem
        failed += bool(problem)
    return failed


def thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> tuple[str, str]:
    """(data URI, problem): a JPEG thumbnail of ``path``, or a placeholder SVG and why."""
    from PIL import Image

    from ..data.decode import DecodeError, load_image

    try:
        img = load_image(path, min_size=size)
    except DecodeError as exc:
        reason = str(exc)
        return placeholder("image not found" if reason == "file not found" else "cannot read image", size), reason
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), ""


def placeholder(text: str, size: int = THUMBNAIL_SIZE) -> str:
    """A grey square with ``text``, as an SVG data URI with a definite size (so it has a naturalWidth)."""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
        f'<rect width="100%" height="100%" fill="#e5e7eb"/>'
        f'<path d="M{size * 0.3:.0f} {size * 0.3:.0f}L{size * 0.7:.0f} {size * 0.7:.0f}M{size * 0.7:.0f} '
        f'{size * 0.3:.0f}L{size * 0.3:.0f} {size * 0.7:.0f}" '
        f'stroke="#9ca3af" stroke-width="4"/>'
        f'<text x="50%" y="88%" font-family="sans-serif" font-size="{max(10, size // 12)}" fill="#4b5563" '
        f'text-anchor="middle">{html.escape(text)}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
