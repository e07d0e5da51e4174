"""The Milvus backend, on Milvus Lite: the same passages, scores and answers as the file backend,
incremental updates that keep BM25 exact, and one clear line for each way it can fail."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("milvus_lite")
pytest.importorskip("pymilvus")

from qa.api import QA  # noqa: E402
from qa.backends.milvus import bm25_weights  # noqa: E402
from qa.backends.milvus.backend import MilvusBackend, MilvusConfig, MilvusError  # noqa: E402
from qa.backends.milvus.bm25_weights import Stats  # noqa: E402
from qa.errors import ModelError  # noqa: E402
from qa.search import bm25
from qa.search.onnx_encoder import load_onnx_encoder  # noqa: E402
from qa.search.retrieve import Retrieval  # noqa: E402
from tests.conftest import ROOT, SEEDS, write_article  # noqa: E402

pytestmark = pytest.mark.slow  # each test starts a Milvus Lite server

GOLD = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()]


B = "l'été \"show\" ü.txt"


def _milvus(tmp_path, name="m.db", collection="qa_passages") -> MilvusBackend:
    return MilvusBackend(MilvusConfig(str(tmp_path / name), collection))


def _ranking(qa: QA, query: str) -> list[tuple]:
    return [(p["source"], p["start"], p["end"], p["bm25_rank"], p["dense_rank"]) for p in qa.search(query, k=10)]


@pytest.fixture(scope="module")
def seeds_milvus(tmp_path_factory) -> QA:
    qa = QA(SEEDS, backend=_milvus(tmp_path_factory.mktemp("milvus")))
    qa.build()
    return qa


def test_same_passages_scores_and_answers_as_the_file_backend(seeds_milvus, seeds_qa):
    for question in GOLD:
        assert _ranking(seeds_milvus, question) == _ranking(seeds_qa, question), question
    for mine, theirs in zip(seeds_milvus.search(GOLD[0]), seeds_qa.search(GOLD[0])):
        for score in ("score", "bm25_score", "dense_score"):  # float32 in Milvus, float64 in the files
            assert (mine[score] is None) == (theirs[score] is None)
            assert mine[score] is None or mine[score] == pytest.approx(theirs[score], abs=1e-3)
    for question in GOLD[:5]:
        mine, theirs = seeds_milvus.ask(question), seeds_qa.ask(question)
        assert (mine["answer"], mine["citations"]) == (theirs["answer"], theirs["citations"])
    assert seeds_milvus.summary()["passages"] == seeds_qa.summary()["passages"]
    assert [p.text for p in seeds_milvus.all_passages()] == [p.text for p in seeds_qa.all_passages()]


def test_updates_embed_only_what_changed_and_keep_bm25_exact(tmp_path):
    """Names and terms with quotes and apostrophes too: Milvus filter expressions quote them."""
    corpus = tmp_path / "corpus"
    for name, body in (("a.txt", "Harbor news\n\nThe harbor authority approved a new ferry terminal on Friday."),
                       (B, "Garden show\n\nThe city garden show drew twelve thousand visitors this weekend."),
                       ("c.txt", "Rail plan\n\nA night train will link the harbor city with the capital by 2027.")):
        write_article(corpus, name, body)
    qa = QA(corpus, backend=_milvus(tmp_path))
    first = qa.build()
    assert first.built and first.embedded == first.passages == 3

    write_article(corpus, "d.txt", "Ferry strike\n\nFerry crews at the harbor walked out over pay on Monday, "
                                   "and the terminal stayed closed while the garden show went on.")
    write_article(corpus, B, "Garden show\n\nThe garden show O'Neill ran closed early because of the harbor strike.")
    (corpus / "c.txt").unlink()
    assert qa.staleness() is not None
    second = qa.build()
    assert (second.embedded, second.passages) == (2, 3)
    assert qa.build().built is False and qa.staleness() is None

    fresh = QA(corpus, tmp_path / "files-index")
    for query in ("harbor ferry terminal", "garden show strike", "night train capital", "pay", "o'neill"):
        mine, theirs = qa.search(query), fresh.search(query)
        assert [(p["source"], p["bm25_rank"]) for p in mine] == [(p["source"], p["bm25_rank"]) for p in theirs]
        assert [p["bm25_score"] for p in mine] == pytest.approx([p["bm25_score"] for p in theirs], abs=2e-3)
    assert not [p for p in qa.all_passages() if p.source == "c.txt"]


def test_an_interrupted_update_is_repaired_by_the_next_build(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.txt", "Harbor news\n\nThe harbor authority approved a new ferry terminal on Friday.")
    backend = _milvus(tmp_path)
    qa = QA(corpus, backend=backend)
    qa.build()
    write_article(corpus, "b.txt", "Garden show\n\nThe city garden show drew twelve thousand visitors.")
    write_article(corpus, "a.txt", "Harbor news\n\nThe harbor authority approved a new bridge on Friday.")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(MilvusBackend, "_save_stats", fail)  # passages inserted, statistics not yet saved
        with pytest.raises(KeyboardInterrupt):
            qa.build()
    assert qa.staleness() == "a build was interrupted"
    assert qa.build().built
    fresh = QA(corpus, tmp_path / "files-index")
    for query in ("garden visitors", "harbor terminal", "bridge"):
        assert [p["bm25_score"] for p in qa.search(query)] == pytest.approx(
            [p["bm25_score"] for p in fresh.search(query)], abs=2e-3)
    assert qa.search("ferry terminal", retrieval=Retrieval("bm25")) == []  # only the old a.txt had them


def test_a_collection_of_another_model_is_refused_and_kept(seeds_milvus, tmp_path):
    backend = seeds_milvus.backend
    other = QA(SEEDS, backend=backend, precision="fp32")
    with pytest.raises(MilvusError, match=r"holds passages embedded by .*\(int8.*--rebuild"):
        other.ask("who built Stargate data centers")
    assert seeds_milvus.staleness() is None  # still there, still current for its own model


def test_a_damaged_encoder_export_is_said_and_the_collection_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.txt", "Harbor news\n\nThe harbor authority approved a new ferry terminal on Friday.")
    qa = QA(corpus, backend=_milvus(tmp_path))
    qa.build()
    (qa.index_folder() / "encoder.onnx").write_bytes(b"not a model")
    load_onnx_encoder.cache_clear()
    again = QA(corpus, backend=qa.backend)
    with pytest.raises(ModelError, match="is damaged.*delete that folder"):
        again.search("ferry terminal")
    assert again.staleness() is None and again.summary()["passages"] == 1


def test_a_collection_qa_did_not_make_is_never_touched(tmp_path):
    backend = _milvus(tmp_path, collection="theirs")
    from pymilvus import DataType

    client = backend.milvus.client
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection("theirs", schema=schema, index_params=index)
    client.insert("theirs", [{"id": 1, "v": [0.0, 1.0]}])
    qa = QA(SEEDS, backend=backend)
    for action in (qa.build, lambda: qa.build(force=True), qa.staleness):
        with pytest.raises(MilvusError, match="not made by qa"):
            action()
    client.flush("theirs")
    assert client.get_collection_stats("theirs")["row_count"] == 1


def _qa_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_qa_ask_backend_milvus_answers_as_the_default_backend(seeds_qa, tmp_path):
    question = "who built Stargate data centers"
    asked = _qa_cli("ask", question, "--json", "--corpus", str(SEEDS), "--backend", "milvus", "--milvus-uri",
                    str(tmp_path / "milvus.db"), cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    reply, expected = json.loads(asked.stdout), seeds_qa.ask(question)
    assert (reply["answer"], reply["confidence"], reply["citations"]) == (
        expected["answer"], expected["confidence"], expected["citations"])
    assert reply["warnings"] == [f"building the index in {tmp_path / 'milvus.db'} (collection qa_passages) (no index yet)"]
    indexed = _qa_cli("index", "--corpus", str(SEEDS), "--backend", "milvus", "--milvus-uri",
                      str(tmp_path / "milvus.db"), cwd=tmp_path)
    assert indexed.returncode == 0 and "already up to date" in indexed.stdout
    assert not (tmp_path / "index").exists()  # the index folder is the file backend's only


def test_cli_errors_are_one_line(tmp_path):
    unreachable = _qa_cli("ask", "who", "--backend", "milvus", "--milvus-uri", "http://127.0.0.1:9", cwd=ROOT)
    no_folder = _qa_cli("index", "--backend", "milvus", "--milvus-uri", str(tmp_path / "none" / "m.db"), cwd=ROOT)
    for result, expected in ((unreachable, "cannot reach Milvus at http://127.0.0.1:9"),
                             (no_folder, "folder " + str(tmp_path / "none") + " is missing")):
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_a_database_open_in_another_process_is_said_plainly(seeds_milvus, tmp_path):
    database = tmp_path / "busy.db"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pymilvus import MilvusClient
        MilvusClient({str(database)!r}).list_collections()
        print("open", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        result = _qa_cli("ask", "who", "--backend", "milvus", "--milvus-uri", str(database), cwd=ROOT)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert "lets one process open it at a time" in result.stderr and "Traceback" not in result.stderr


def _corpus(seed: int, passages: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(40)]
    return [list(rng.choice(vocabulary, size=rng.integers(1, 30), p=np.r_[[0.3], [0.7 / 39] * 39]))
            for _ in range(passages)]


@pytest.mark.parametrize("regime", ["rank-bm25", "bm25s"])
def test_sparse_weights_multiply_to_the_file_backends_bm25(regime, monkeypatch):
    tokens = _corpus(7, 60)
    if regime == "bm25s":
        monkeypatch.setattr(bm25_weights, "BM25S_ABOVE", 10)
        reference = bm25.SparseBM25.build(tokens)
    else:
        reference = bm25.OkapiBM25(tokens)
    stats = Stats()
    for terms in tokens:
        stats.add(terms, +1)
    stats.avgdl = stats.total_length / stats.passages
    statistics = bm25_weights.corpus_statistics(stats)
    for query in (["w0"], ["w1", "w2", "w1"], ["w3", "w0", "nowhere"]):
        counts = Counter(query)
        found = {t: tuple(stats.terms[t]) for t in counts if t in stats.terms}
        weights = bm25_weights.query_weights(found, counts, statistics)
        scores = [sum(weights.get(d, 0.0) * w for d, w in stats.weights(terms).items()) for terms in tokens]
        assert scores == pytest.approx(reference.get_scores(query), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("scope", [{"since": "2024-06"}, {"until": "2024-06-13", "sources": ("003_*",)},
                                   {"sources": ("000_*", "001_*")}])
def test_since_until_and_source_read_the_same_passages_as_the_file_backend(seeds_milvus, seeds_qa, scope):
    retrieval = Retrieval(**scope)
    for question in GOLD[:8]:
        mine, theirs = seeds_milvus.search(question, 10, retrieval), seeds_qa.search(question, 10, retrieval)
        assert [(p["source"], p["start"]) for p in mine] == [(p["source"], p["start"]) for p in theirs]
        assert mine and all(retrieval.admits(p["source"], p["date"]) for p in mine)
