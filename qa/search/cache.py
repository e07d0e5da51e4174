"""The per-user cache of model exports: the reader's, and the encoder's for a backend without an
index folder (Milvus). Everything in it is made again from the installed packages when missing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from qa.errors import QAError


def cache_root() -> Path:
    """$QA_CACHE, else the user's cache folder: exports are rebuilt from the package, never the user's."""
    if os.environ.get("QA_CACHE"):
        return Path(os.environ["QA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa"


def cached_folder(name: str, mark: str, make: Callable[[Path], None], error: type[QAError], what: str) -> Path:
    """cache_root()/name, made on first use by `make(staging)` (which writes `mark` last) in a
    staging folder renamed into place, so no process ever reads a half-written export; `what` names
    it in the error raised when the cache cannot be written."""
    folder = cache_root() / name
    if (folder / mark).is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    except OSError as exc:
        raise error(f"cannot write {what} to {folder.parent}: {exc.strerror}; set QA_CACHE to a writable "
                    "folder") from None
    try:
        make(staging)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / mark).is_file():  # another process finished first: theirs is the same export
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder
