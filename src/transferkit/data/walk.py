"""Walk a folder tree the way a hostile one needs: every real folder visited once, every real file
listed once, whatever symbolic links (or hard links) point where.

``os.walk(followlinks=True)`` follows a link to an ancestor forever (``ln -s . loop``) and lists a file
reached by two routes twice (the same photo in train and test). Here folders and files are keyed by
``(st_dev, st_ino)``: a folder seen before (a loop, or a second link to it) is not entered again, a file
seen before is not listed again, and each is reported with why. Names that are not valid UTF-8 cannot
be stored in a feature file or written to JSON; they are reported too (rename them) instead of
aborting the run. Symbolic links are followed, so a linked folder of images still works.

Entries whose name starts with a dot are hidden and skipped silently. Files that are not regular
(a FIFO, a socket, a device) are listed: decoding refuses them with a reason that is then recorded.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def printable(path: str | os.PathLike) -> str:
    """``path`` as text that can always be printed, stored and encoded: bytes of a file name that are
    not UTF-8 are shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates (surrogateescape)
        return False
    return True


NOT_UTF8 = "file name is not valid UTF-8 (rename the file)"


@dataclass
class Walk:
    files: list[Path] = field(default_factory=list)  # sorted by path relative to the folder walked
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (printable path, why)


def walk_files(folder: str | os.PathLike, accept: Callable[[str], bool], seen: dict | None = None,
               avoid: dict | None = None) -> Walk:
    """Files below ``folder`` whose name passes ``accept``, each real file once, sorted by relative path.

    ``seen``: ``{(st_dev, st_ino): path}`` of files already listed by an earlier call (updated in
    place), so several walks together still list each file once. ``avoid``: ``{(st_dev, st_ino): what}``
    of folders never to enter from here (the dataset root and the other class folders, so that a link
    cannot move one class's pictures into another).
    """
    root = Path(folder)
    result = Walk()
    seen = {} if seen is None else seen
    try:
        st = os.stat(root)
    except OSError as exc:
        result.skipped.append((printable(root), f"cannot read folder ({exc.strerror or exc})"))
        return result
    visited_dirs = {(st.st_dev, st.st_ino): "."}
    stack, links = [root], []  # linked folders wait until every real folder was searched
    found: list[tuple[int, str, Path, tuple]] = []  # (0 real / 1 reached through a link, rel, path, key)
    while stack or links:
        if not stack:  # the real tree is done: now the linked folders not searched yet
            path, key = links.pop(0)
            if not _enter(path, key, root, visited_dirs, avoid, result):
                continue
            stack.append(path)
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            result.skipped.append((printable(folder), f"cannot read folder ({exc.strerror or exc})"))
            continue
        subdirs = []
        linked = _through_link(folder, root)
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            try:
                st = entry.stat()  # follows symbolic links
            except OSError:
                if entry.is_symlink() and accept(name):
                    found.append((1, rel, path, ("broken", rel)))  # decoding reports it, with the file
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if not is_utf8_name(name):
                    result.skipped.append((printable(path), "folder " + NOT_UTF8.replace("file ", "")))
                elif entry.is_symlink():
                    links.append((path, key))
                elif _enter(path, key, root, visited_dirs, avoid, result):
                    subdirs.append(path)
            elif accept(name):
                if not is_utf8_name(name):
                    result.skipped.append((printable(path), NOT_UTF8))
                    continue
                found.append((int(linked or entry.is_symlink()), rel, path, key))
        stack.extend(reversed(subdirs))
    # each real file once: its own name wins over a link to it, then the first in path order
    kept = []
    for _, rel, path, key in sorted(found, key=lambda t: (t[0], t[1])):
        if key in seen:
            result.skipped.append((printable(path), f"same file as {seen[key]} (listed once)"))
            continue
        seen[key] = printable(path)
        kept.append((rel, path))
    result.files = [path for _, path in sorted(kept, key=lambda t: t[0])]
    return result


def _enter(path: Path, key: tuple, root: Path, visited: dict, avoid: dict | None, result: Walk) -> bool:
    """Should the walk search folder ``path`` (``key``: its device and inode)? Reports why not."""
    if avoid and key in avoid and key not in visited:
        result.skipped.append((printable(path), f"a link to {avoid[key]}, not searched from here"))
        return False
    if key in visited:
        earlier = root / visited[key]
        what = "a symbolic link loop back to" if earlier in path.parents or earlier == path else "a second route to"
        result.skipped.append((printable(path), f"{what} folder {printable(earlier)} (searched once)"))
        return False
    visited[key] = path.relative_to(root).as_posix()
    return True


def _through_link(folder: Path, root: Path) -> bool:
    """Is ``folder`` (below ``root``) reached through a symbolic link?"""
    while folder != root and folder != folder.parent:
        if folder.is_symlink():
            return True
        folder = folder.parent
    return False
