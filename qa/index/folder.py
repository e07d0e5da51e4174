"""What in an index folder qa made, and so may replace or remove; one build at a time.

qa builds only in an empty folder or one it made, and removes only what it can prove it made: a
folder whose `.qa-generation` holds this index's id (see qa/index/store.py for the layout).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from qa.index.store import (
    DENSE,
    GENERATION_MARK,
    GENERATION_NAME,
    MANIFEST,
    PASSAGE_OFFSETS,
    PASSAGES,
    POINTER,
    TOKENS,
    StoreError,
)
from qa.search.onnx_encoder import ONNX_FILES

INDEX_ID = ".qa-index"
GITIGNORE = ".gitignore"
GITIGNORE_TEXT = "# made by qa: everything in this folder is generated\n*\n"
LOCK = ".lock"
WRITTEN_FILES = {GENERATION_MARK, MANIFEST, PASSAGES, PASSAGE_OFFSETS, TOKENS, DENSE, *ONNX_FILES}
BM25S_SUFFIXES = (".index.npy", ".index.json")  # the files bm25s saves above bm25.BM25S_ABOVE


def claim(index_dir: Path) -> str:
    """The index's id. A missing or empty folder becomes an index; one holding anything qa did not
    make is refused, so a build never removes or overwrites what a user keeps there."""
    if index_dir.exists() and not index_dir.is_dir():
        raise StoreError(f"--index {index_dir} is a file, not a folder", advice="pass --index a folder")
    index_dir.mkdir(parents=True, exist_ok=True)
    index_id = _index_id(index_dir)
    if index_id is None:
        _refuse_foreign(index_dir, [e for e in _entries(index_dir)
                                    if e not in (INDEX_ID, LOCK) and not _is_our_gitignore(index_dir / e)])
        try:
            descriptor = os.open(index_dir / INDEX_ID, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another build claimed the folder first: give it time to write the id
            time.sleep(0.2)
        else:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(uuid.uuid4().hex + "\n")
        if not (index_dir / GITIGNORE).exists():
            (index_dir / GITIGNORE).write_text(GITIGNORE_TEXT, encoding="utf-8")
        index_id = _index_id(index_dir)
        if index_id is None:
            raise StoreError(f"{index_dir / INDEX_ID} is damaged, so qa cannot tell which folders there it made",
                             advice=f"delete {index_dir} if it holds nothing of yours, or pass --index a new folder")
    _refuse_foreign(index_dir, [e for e in _entries(index_dir) if not _is_own(index_dir / e, index_id)])
    return index_id


def _entries(index_dir: Path) -> list[str]:
    return sorted(os.listdir(index_dir))


def _index_id(index_dir: Path) -> str | None:
    try:
        text = (index_dir / INDEX_ID).read_bytes().decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {index_dir / INDEX_ID}: {exc.strerror}", advice=None) from None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def _refuse_foreign(index_dir: Path, foreign: list[str]) -> None:
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise StoreError(f"{index_dir} holds files qa did not make ({shown}); qa builds an index only in an "
                         "empty folder or one it made", advice="pass --index a new folder, or move those files out")


def _is_our_gitignore(path: Path) -> bool:
    try:
        return path.name == GITIGNORE and not path.is_symlink() and path.read_text(encoding="utf-8") == GITIGNORE_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _is_own(path: Path, index_id: str) -> bool:
    """Whether qa made this entry of the index folder (see the module docstring)."""
    name = path.name
    if name in (INDEX_ID, LOCK, POINTER):
        return path.is_symlink() or path.is_file()
    if name == GITIGNORE:
        return _is_our_gitignore(path)
    if name.startswith(f".{POINTER}.{index_id[:12]}."):
        return path.is_file()
    if name.startswith(("gen-", ".build-")):
        # A folder named as qa names generations whose mark was damaged is tolerated (so the index
        # can heal) but, unprovable, never removed.
        return _made_here(path, index_id) or bool(GENERATION_NAME.fullmatch(name) and path.is_dir())
    return False


def _made_here(folder: Path, index_id: str) -> bool:
    """A generation or staging folder of this index: its mark holds the id (a staging folder
    killed before its mark was written whole is named after the id and holds at most that mark,
    empty or part of the id)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        mark = (folder / GENERATION_MARK).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        mark = ""
    except (OSError, UnicodeDecodeError):
        return False
    if mark == index_id:
        return True
    return (folder.name.startswith(f".build-{index_id[:12]}-") and index_id.startswith(mark)
            and all(entry.name == GENERATION_MARK for entry in folder.iterdir()))


@contextmanager
def build_lock(index_dir: Path, on_wait: Callable[[], None] | None = None) -> Iterator[str]:
    """One build at a time per index folder (a second one waits for the first); yields the index id."""
    index_id = claim(index_dir)
    with open(index_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield index_id
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_leftovers(index_dir: Path, index_id: str, keep: set[str]) -> None:
    """Interrupted builds, and generations of this index no reader holds any more."""
    for name in _entries(index_dir):
        path = index_dir / name
        if name.startswith(f".{POINTER}.{index_id[:12]}.") and path.is_file():
            path.unlink(missing_ok=True)
        elif name.startswith(("gen-", ".build-")) and name not in keep and _made_here(path, index_id):
            _remove_unheld(path)


def _remove_unheld(folder: Path) -> None:
    try:
        handle = open(folder / GENERATION_MARK, "rb")
    except FileNotFoundError:  # an empty staging folder
        shutil.rmtree(folder, ignore_errors=True)
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a reader is still on it; a later build removes it
        if _holds_only_own_files(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _holds_only_own_files(folder: Path) -> bool:
    """Whether everything in a generation or staging folder is a plain file of a name qa writes
    there; anything else (say, a note a user put there) keeps the folder."""
    return all(not e.is_symlink() and e.is_file() and (e.name in WRITTEN_FILES or e.name.endswith(BM25S_SUFFIXES))
               for e in os.scandir(folder))
