"""Shared fixtures: the seed articles, a real index built once per session, and small corpora."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from qa.api import QA

# The reader's ONNX export goes to a cache folder of this test session, never the user's own cache.
os.environ["QA_CACHE"] = tempfile.mkdtemp(prefix="qa-test-cache-")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def seeds_index(tmp_path_factory) -> Path:
    """An index of the seed articles built with the real default model."""
    index = tmp_path_factory.mktemp("seeds-index")
    QA(SEEDS, index).build()
    return index


@pytest.fixture(scope="session")
def seeds_qa(seeds_index) -> QA:
    return QA(SEEDS, seeds_index)


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    return corpus


def write_article(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")


@pytest.fixture
def small(tmp_path) -> tuple[Path, Path]:
    """(corpus, index): two short articles and an index folder not yet built."""
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.txt", "Harbor news\n\nThe harbor authority approved a new ferry terminal on Friday. "
                                   "Construction will cost 40 million euros and finish in 2027.")
    write_article(corpus, "b.txt", "Garden show\n\nThe city garden show drew twelve thousand visitors this weekend. "
                                   "Organizers praised the volunteers who ran the event.")
    return corpus, tmp_path / "index"
