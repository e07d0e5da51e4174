"""Faults a real user meets: interrupted and concurrent builds, read-only folders, odd questions."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from qa.api import QA
from qa.errors import QAError
from qa.index import build, folder, freshness, store
from tests.conftest import SEEDS


@pytest.fixture
def built(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    index = tmp_path / "index"
    QA(corpus, index).build()
    return corpus, index


@pytest.mark.slow
def test_kill_9_during_a_build_leaves_the_old_index_answering(built):
    corpus, index = built
    before = store.current_generation(index)
    sentences = " ".join(f"Ferry number {n} left the harbor at dawn with {n * 3} passengers aboard." for n in range(3000))
    (corpus / "extra.txt").write_text("Extra\n\n" + sentences, encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "qa", "index", "--corpus", str(corpus), "--index", str(index)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 8  # past start-up, in the middle of embedding ~1,000 passages
    while time.time() < deadline and not list(index.glob(".build-*")) and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the build finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert store.current_generation(index) == before
    assert store.load(index).manifest["counts"]["files"] == 3
    report = QA(corpus, index).build()
    assert report.built and report.files == 4
    assert not list(index.glob(".build-*"))


def test_a_second_build_waits_for_the_first(built):
    corpus, index = built
    waited = threading.Event()
    with folder.build_lock(index):
        worker = threading.Thread(target=lambda: QA(corpus, index, on_notice=lambda m: waited.set()).build(force=True))
        worker.start()
        assert waited.wait(timeout=30)
        assert worker.is_alive()
    worker.join(timeout=300)
    assert not worker.is_alive()


def test_answering_from_a_current_index_writes_nothing(built):
    """So a read-only index folder answers (root ignores permissions, so this checks the writes)."""
    corpus, index = built

    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in index.rglob("*"))

    before = snapshot()
    assert QA(corpus, index).ask("Who is the CEO of Microsoft?")["passages"]
    assert snapshot() == before


def test_an_index_folder_that_cannot_be_written_is_one_line(built, monkeypatch):
    from typer.testing import CliRunner

    from qa.interface.cli import app

    corpus, index = built
    (corpus / "new.txt").write_text("New\n\nA new article that needs the index rebuilt.", encoding="utf-8")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(index / ".lock"))

    monkeypatch.setattr(build, "build_lock", read_only)
    result = CliRunner().invoke(app, ["ask", "Who is the CEO of Microsoft?", "--corpus", str(corpus), "--index", str(index)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = [line for line in result.output.splitlines() if line.strip() and "building the index" not in line]
    assert len(lines) == 1 and "Permission denied" in lines[0] and ".lock" in lines[0]


def test_index_built_with_another_model_or_dimension_is_rebuilt(built):
    corpus, index = built
    generation = store.current_generation(index)
    manifest_path = generation / "manifest.json"
    import json

    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["model"]["name"] = "some/other-model"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert "model changed" in freshness.staleness(index, corpus, QA(corpus, index).model_name)
    notices = []
    QA(corpus, index, on_notice=notices.append).ask("Who is the CEO of Microsoft?")
    assert any("model changed" in n for n in notices)


def test_edited_manifest_is_detected(built):
    corpus, index = built
    generation = store.current_generation(index)
    manifest_path = generation / "manifest.json"
    manifest_path.write_text(manifest_path.read_text(encoding="utf-8").replace('"dim": 384', '"dim": 512'), encoding="utf-8")
    with pytest.raises(QAError, match="damaged"):
        store.load(index)


@pytest.mark.parametrize("question", [
    "x" * 10_000,
    "what is the of and",
    "¿Quién construyó los centros de datos de Stargate?",
    "who built \x00\x07 data centers",
])
def test_odd_questions_are_answered_or_abstained_without_error(built, question):
    corpus, index = built
    result = QA(corpus, index).ask(question)
    assert set(result) >= {"answer", "confidence", "citations", "passages"}
    assert 0.0 <= result["confidence"] <= 1.0


def test_oversized_article_is_refused_with_a_warning(tmp_path, monkeypatch):
    from qa.corpus import ingest

    monkeypatch.setattr(ingest, "MAX_FILE_BYTES", 1000)
    (tmp_path / "small.txt").write_text("Small\n\nA short article with one sentence in it.", encoding="utf-8")
    (tmp_path / "huge.txt").write_text("Huge\n\n" + "All work and no play. " * 100, encoding="utf-8")
    corpus = ingest.read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["small.txt"]
    assert corpus.skipped[0].source == "huge.txt" and "limit" in corpus.skipped[0].reason


def test_unreadable_article_is_skipped_and_named(tmp_path, monkeypatch):
    from pathlib import Path

    from qa.corpus import ingest

    (tmp_path / "ok.txt").write_text("Fine\n\nThis one reads well enough.", encoding="utf-8")
    (tmp_path / "locked.txt").write_text("Locked\n\nNobody may read this.", encoding="utf-8")
    real_read = Path.read_bytes

    def read_bytes(path):
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    corpus = ingest.read_corpus(tmp_path)
    assert [a.source for a in corpus.articles] == ["ok.txt"]
    assert corpus.skipped[0].source == "locked.txt" and "Permission denied" in corpus.skipped[0].reason


def test_reads_during_a_rebuild_see_a_whole_index(built):
    corpus, index = built
    worker = threading.Thread(target=lambda: QA(corpus, index).build(force=True))
    worker.start()
    seen = set()
    while worker.is_alive():
        loaded = store.load(index)  # raises if it ever saw a mix of generations
        seen.add(loaded.folder.name)
    worker.join()
    seen.add(store.load(index).folder.name)
    assert len(seen) >= 1 and store.load(index).manifest["counts"]["files"] == 3


def test_disk_full_during_a_build_keeps_the_old_index(built, monkeypatch):
    import errno

    corpus, index = built
    before = store.current_generation(index)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.np, "save", full)
    with pytest.raises(store.StoreError, match="No space left on device"):
        QA(corpus, index).build(force=True)
    assert store.current_generation(index) == before and not list(index.glob(".build-*"))
    assert QA(corpus, index).ask("Who is the CEO of Microsoft?")["passages"]


def test_a_manifest_cannot_point_outside_the_index_or_corpus(built, tmp_path):
    import json

    corpus, index = built
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    generation = store.current_generation(index)
    manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][0]["source"] = "../secret.txt"
    manifest["index_files"]["../../secret.txt"] = {"size": 10, "sha256": "0" * 64}
    (generation / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert freshness.staleness(index, corpus, QA(corpus, index).model_name) == "articles added or removed"
    with pytest.raises(QAError):
        store.load(index)  # the unknown entry is looked up inside the generation, where it is missing


def test_damaged_index_is_rebuilt_on_the_next_question(built):
    corpus, index = built
    (store.current_generation(index) / "dense.faiss").write_bytes(b"garbage")
    notices = []
    result = QA(corpus, index, on_notice=notices.append).ask("Who is the CEO of Microsoft?")
    assert result["passages"] and any("damaged" in n for n in notices)
