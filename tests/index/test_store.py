from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qa.api import QA
from qa.index import freshness, generation, store
from qa.index.store import StoreError
from qa.search.embed import DEFAULT_MODEL, DEFAULT_PRECISION, DEFAULT_WEIGHTS_SHA256
from qa.search.onnx_encoder import OnnxEncoder
from tests.conftest import write_article as _write


def test_build_writes_manifest_passages_and_vectors_without_pickle(small):
    corpus, index = small
    report = QA(corpus, index).build()
    assert report.built and report.files == 2 and report.embedded == report.passages
    loaded = store.load(index)
    manifest = loaded.manifest
    assert manifest["format"] == store.FORMAT_VERSION
    assert manifest["model"] == {"name": DEFAULT_MODEL, "weights_sha256": DEFAULT_WEIGHTS_SHA256, "dim": 384,
                                 "precision": DEFAULT_PRECISION, "encoder": "onnxruntime"}
    assert manifest["chunking"] == freshness.chunking_params()
    assert {f["source"] for f in manifest["files"]} == {"a.txt", "b.txt"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert manifest["counts"]["passages"] == len(loaded.passages) == loaded.dense.ntotal
    names = sorted(p.name for p in loaded.folder.iterdir())
    assert names == [".qa-generation", "dense.faiss", "encoder.json", "encoder.onnx", "manifest.json", "passage_offsets.npy",
                     "passages.jsonl", "tokenizer.json", "tokens.jsonl"]
    for name in ("passages.jsonl", "tokens.jsonl"):
        for line in (loaded.folder / name).read_text(encoding="utf-8").splitlines():
            json.loads(line)  # plain JSON, nothing executable
    assert set(manifest["index_files"]) == set(names) - {"manifest.json", ".qa-generation"}


def test_unchanged_corpus_is_not_rebuilt_and_one_new_article_is_embedded_alone(small):
    corpus, index = small
    qa = QA(corpus, index)
    first = qa.build()
    assert not qa.build().built
    _write(corpus, "c.txt", "Rail update\n\nThe night train to the coast returns in May after repairs to the bridge.")
    report = qa.build()
    assert report.built and report.reason == "articles added or removed"
    assert report.embedded == report.passages - first.passages


def test_staleness_reports_why(small):
    corpus, index = small
    assert freshness.staleness(index, corpus, DEFAULT_MODEL) == "no index yet"
    QA(corpus, index).build()
    assert freshness.staleness(index, corpus, DEFAULT_MODEL) is None
    assert "model changed" in freshness.staleness(index, corpus, "/some/other/model")
    _write(corpus, "a.txt", "Harbor news\n\nThe terminal plan was withdrawn.")
    assert freshness.staleness(index, corpus, DEFAULT_MODEL) == "a.txt changed"


def test_passages_are_embedded_with_the_export_queries_use(small):
    corpus, index = small
    qa = QA(corpus, index)
    qa.build()
    loaded = store.load(index)
    stored = loaded.dense.reconstruct_n(0, loaded.dense.ntotal)
    again = OnnxEncoder(loaded.folder).encode([p.text for p in loaded.passages])  # the query path's setup
    assert np.allclose(stored, again, atol=1e-5)
    loaded.close()


def test_precision_is_recorded_and_a_change_rebuilds_without_reusing_vectors(small):
    corpus, index = small
    QA(corpus, index, precision="int8").build()
    int8 = store.load(index)
    assert int8.manifest["model"]["precision"] == "int8"
    assert json.loads((int8.folder / "encoder.json").read_text())["precision"] == "int8"
    assert freshness.staleness(index, corpus, DEFAULT_MODEL, precision="fp32") == "precision changed (int8 -> fp32)"
    report = QA(corpus, index, precision="fp32").build()
    assert report.built and report.embedded == report.passages  # no int8 vector is kept
    fp32 = store.load(index)
    assert fp32.manifest["model"]["precision"] == "fp32"
    assert (fp32.folder / "encoder.onnx").stat().st_ino != (int8.folder / "encoder.onnx").stat().st_ino
    assert (fp32.folder / "encoder.onnx").stat().st_size > 3 * (int8.folder / "encoder.onnx").stat().st_size
    int8.close()
    fp32.close()


def test_a_build_that_can_link_the_export_never_imports_torch(small):
    corpus, index = small
    QA(corpus, index).build()
    _write(corpus, "c.txt", "Rail update\n\nThe night train to the coast returns in May after repairs to the bridge.")
    script = ("import sys; from qa.api import QA; report = QA(sys.argv[1], sys.argv[2]).build(); "
              "print(report.embedded, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script, str(corpus), str(index)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "False"]


def test_failed_build_keeps_the_old_index_and_leaves_no_staging(small, monkeypatch):
    corpus, index = small
    QA(corpus, index).build()
    before = store.load(index).manifest["created"], store.current_generation(index)
    _write(corpus, "c.txt", "New\n\nA new article arrives with a full sentence of text.")

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generation, "_write_json", explode)
    with pytest.raises(store.StoreError, match="cannot write the index in .*index: No space left on device"):
        QA(corpus, index).build()  # the error names the folder, which an OSError without a path would not
    assert (store.load(index).manifest["created"], store.current_generation(index)) == before
    assert not list(index.glob(".build-*"))


def test_leftovers_of_an_interrupted_build_are_removed_by_the_next(small):
    corpus, index = small
    QA(corpus, index).build()
    index_id = (index / ".qa-index").read_text(encoding="ascii").strip()
    leftover = index / f".build-{index_id[:12]}-999-deadbeef"
    leftover.mkdir()
    (leftover / ".qa-generation").write_text(index_id, encoding="ascii")
    (leftover / "passages.jsonl").write_text("partial", encoding="utf-8")
    killed_before_its_mark = index / f".build-{index_id[:12]}-998-deadbeef"
    killed_before_its_mark.mkdir()
    killed_while_writing_it = index / f".build-{index_id[:12]}-997-deadbeef"
    killed_while_writing_it.mkdir()
    (killed_while_writing_it / ".qa-generation").write_text("", encoding="ascii")
    not_ours = index / f".build-{index_id[:12]}-996-deadbeef"  # a mark of another id: never touched
    not_ours.mkdir()
    (not_ours / ".qa-generation").write_text("0" * 32, encoding="ascii")
    with pytest.raises(StoreError, match="did not make"):
        QA(corpus, index).build(force=True)
    not_ours.rename(index.parent / "kept-aside")
    QA(corpus, index).build(force=True)
    assert not leftover.exists() and not killed_before_its_mark.exists() and not killed_while_writing_it.exists()
    assert (index.parent / "kept-aside" / ".qa-generation").read_text(encoding="ascii") == "0" * 32
    assert len(list(index.glob("gen-*"))) <= 2


def test_damaged_or_newer_index_is_refused_with_what_to_run(small):
    corpus, index = small
    QA(corpus, index).build()
    live = store.current_generation(index)
    passages = live / "passages.jsonl"
    original = passages.read_bytes()
    passages.write_bytes(original[:-20])
    with pytest.raises(StoreError, match="qa index --rebuild"):
        store.load(index)
    passages.write_bytes(original.replace(b"harbor", b"harbour", 1))  # same size, other bytes
    with pytest.raises(StoreError, match="damaged"):
        store.load(index)
    manifest = json.loads((live / "manifest.json").read_text(encoding="utf-8"))
    manifest["format"] = store.FORMAT_VERSION + 1
    (live / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(StoreError, match="newer"):
        store.load(index)
    (index / "CURRENT").write_text("../../etc", encoding="utf-8")
    with pytest.raises(StoreError, match="damaged"):
        store.load(index)


def test_missing_index_says_to_build(tmp_path):
    with pytest.raises(StoreError, match="qa index"):
        store.load(tmp_path / "none")


def test_query_path_never_imports_torch(seeds_index):
    import subprocess
    import sys

    from qa.reading.read import export_folder
    from tests.conftest import SEEDS

    export_folder()  # the reader's one-off export (which needs torch) is done, as after a first question
    code = (
        "import sys; from qa.api import QA; "
        f"r = QA({str(SEEDS)!r}, {str(seeds_index)!r}).ask('who built Stargate data centers'); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'sklearn', 'transformers') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_unchanged_model_export_is_linked_not_exported_again(small):
    corpus, index = small
    QA(corpus, index).build()
    first = store.current_generation(index)
    _write(corpus, "c.txt", "Rail update\n\nThe night train to the coast returns in May after repairs to the bridge.")
    QA(corpus, index).build()
    second = store.current_generation(index)
    assert second != first
    assert (second / "encoder.onnx").stat().st_ino == (first / "encoder.onnx").stat().st_ino
