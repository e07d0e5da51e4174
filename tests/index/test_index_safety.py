"""What a build may remove (only what it made, never a generation still read), and damage that heals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from qa.api import QA
from qa.index import freshness, store
from qa.index.store import NewerIndexError, StoreError
from tests.conftest import write_article as _write

QUESTION = "Who approved the ferry terminal?"


@pytest.fixture
def built(small) -> tuple[Path, Path]:
    corpus, index = small
    QA(corpus, index).build()
    return corpus, index


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("layout", ["index is the corpus", "index holds other files"])
def test_a_folder_holding_files_qa_did_not_make_is_refused_and_left_alone(tmp_path, layout):
    folder = tmp_path / "D"
    _write(folder / "gen-archive", "a.txt", "text the user keeps")
    _write(folder / ".build-notes", "b.txt", "more of it")
    (folder / ".CURRENT.draft").write_text("a draft", encoding="utf-8")
    _write(folder, "story.txt", "Story\n\nThe harbor authority approved a new ferry terminal on Friday.")
    corpus = folder if layout == "index is the corpus" else tmp_path / "corpus"
    if corpus != folder:
        _write(corpus, "a.txt", "Other\n\nThe garden show drew twelve thousand visitors this weekend.")
    before = _tree(folder)
    with pytest.raises(StoreError, match="holds files qa did not make"):
        QA(corpus, folder).build()
    assert _tree(folder) == before and sorted(os.listdir(folder)) == [".CURRENT.draft", ".build-notes",
                                                                       "gen-archive", "story.txt"]


def test_a_foreign_gen_folder_inside_an_index_is_refused_not_removed(built):
    corpus, index = built
    _write(index / "gen-archive", "a.txt", "text the user keeps")
    with pytest.raises(StoreError, match="gen-archive"):
        QA(corpus, index).build(force=True)
    assert (index / "gen-archive" / "a.txt").read_text(encoding="utf-8") == "text the user keeps"
    assert QA(corpus, index).ask(QUESTION)["passages"]  # reading is still fine


def test_a_generation_being_read_survives_later_builds(built):
    corpus, index = built
    reader = QA(corpus, index)
    assert reader.ask(QUESTION)["passages"]
    in_use = reader._loaded.folder
    for _ in range(2):
        QA(corpus, index).build(force=True)
    assert in_use.is_dir() and store.current_generation(index) != in_use
    assert reader.search("ferry terminal")  # reads passages from its generation, still whole
    reader.close()
    QA(corpus, index).build()  # nothing to do, but the released generation is now removed
    assert not in_use.exists()


def test_a_reader_whose_generation_vanished_reopens_the_current_one(built, monkeypatch):
    corpus, index = built
    old = store.current_generation(index)
    QA(corpus, index).build(force=True)
    pointer, calls = store.live_generation, []

    def read_just_before_the_switch(index_dir):
        calls.append(index_dir)
        return (old, "") if len(calls) == 1 else pointer(index_dir)

    monkeypatch.setattr(store, "live_generation", read_just_before_the_switch)
    shutil.rmtree(old)  # removed by a build before this reader could take its lock
    loaded = store.load(index)
    assert loaded.folder == pointer(index)[0] and len(calls) == 2


@pytest.mark.parametrize("name, damage", [
    ("encoder.onnx", "same size"), ("encoder.onnx", "truncated"), ("tokenizer.json", "random bytes")])
def test_a_damaged_model_export_heals_and_is_never_linked_again(built, name, damage):
    corpus, index = built
    path = store.current_generation(index) / name
    size = path.stat().st_size
    if damage == "truncated":
        os.truncate(path, size // 2)
    else:
        with open(path, "r+b") as handle:  # in place: same inode, same size for "same size"
            handle.seek(size // 3)
            handle.write(os.urandom(4096 if damage == "same size" else size - size // 3))
    damaged_inode = path.stat().st_ino
    notices: list[str] = []
    result = QA(corpus, index, on_notice=notices.append).ask(QUESTION)
    assert result["passages"][0]["source"] == "a.txt"
    assert any(n.endswith("is damaged; rebuilding it now") for n in notices), notices
    assert not any("qa index --rebuild" in n for n in notices)  # says one thing: what it does
    fresh = store.current_generation(index) / name
    assert fresh.stat().st_ino != damaged_inode
    assert store.load(index, full_check=True).folder == fresh.parent


@pytest.mark.parametrize("damage", ["missing", "random bytes"])
def test_a_damaged_generation_mark_heals_and_the_folder_is_kept(built, damage):
    corpus, index = built
    generation = store.current_generation(index)
    mark = generation / ".qa-generation"
    if damage == "missing":
        mark.unlink()
    else:
        mark.write_bytes(os.urandom(40))
    assert QA(corpus, index).ask(QUESTION)["passages"]
    QA(corpus, index).build(force=True)
    QA(corpus, index).build(force=True)
    assert store.current_generation(index) != generation
    assert generation.is_dir()  # qa cannot prove it made it any more, so it stays


def test_bytes_changed_behind_a_restored_mtime_are_found_by_verify(small):
    corpus, index = small
    QA(corpus, index, precision="fp32").build()
    path = store.current_generation(index) / "encoder.onnx"
    stat = path.stat()
    assert stat.st_size > store.HASHED_UP_TO  # fp32 weights: too big to hash on every load
    with open(path, "r+b") as handle:
        handle.seek(stat.st_size // 2)
        handle.write(os.urandom(64))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store.load(index).close()  # the cheap check cannot see it (size, mtime and inode as recorded)
    with pytest.raises(StoreError, match="damaged"):
        store.load(index, full_check=True)
    report = QA(corpus, index, precision="fp32").build(verify=True)
    assert report.built and "damaged" in report.reason
    fresh = store.current_generation(index) / "encoder.onnx"
    assert fresh.stat().st_ino != stat.st_ino
    store.load(index, full_check=True).close()
    assert not QA(corpus, index, precision="fp32").build(verify=True).built


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00\x9b binary", b"../../etc", b"gen-../../etc", "symlink"])
def test_a_pointer_that_cannot_be_trusted_means_rebuild(built, tmp_path, pointer):
    corpus, index = built
    current = index / "CURRENT"
    current.unlink()
    if pointer == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir()
        os.symlink(target, current)
    else:
        current.write_bytes(pointer)
    assert store.current_generation(index) is None
    assert freshness.staleness(index, corpus, QA(corpus, index).model_name)
    report = QA(corpus, index).build()
    assert report.built and not current.is_symlink()
    assert store.load(index).manifest["counts"]["files"] == 2
    if pointer == "symlink":
        assert target.is_dir()  # the link was replaced, not what it pointed at


def test_a_newer_index_is_refused_until_a_rebuild_is_asked_for(built):
    corpus, index = built
    generation = store.current_generation(index)
    manifest_path = generation / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format"] = store.FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    for attempt in (lambda: QA(corpus, index).build(), lambda: QA(corpus, index).ask(QUESTION)):
        with pytest.raises(NewerIndexError, match="newer qa"):
            attempt()
        assert store.current_generation(index) == generation
    assert QA(corpus, index).build(force=True).built
    assert store.current_generation(index) != generation



def test_a_file_a_user_put_into_an_old_generation_keeps_that_generation(built):
    corpus, index = built
    old = store.current_generation(index)
    (old / "notes.txt").write_text("mine", encoding="utf-8")
    for _ in range(2):
        QA(corpus, index).build(force=True)
    assert (old / "notes.txt").read_text(encoding="utf-8") == "mine"
    (old / "notes.txt").unlink()
    QA(corpus, index).build()
    assert not old.exists()  # only qa's own files left: removed as before
