"""The library API the CLI and the evaluation scripts share: build an index, search, ask.

    from qa.api import QA
    qa = QA(corpus="seeds", index="index")
    result = qa.ask("who built Stargate data centers")
    result["answer"], result["citations"][0]["quote"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qa.backends.base import Backend, FileBackend, OpenIndex
from qa.corpus.chunk import Passage
from qa.corpus.ingest import Article, CorpusError, Unreadable, article_of, skipped_summary
from qa.errors import ModelError, QAError, QuestionError
from qa.index import store
from qa.index.build import BuildReport
from qa.reading.about import answer_about, article_meant, asks_about_article
from qa.reading.answer import Answer, Candidate, answer
from qa.reading.read import Calibration, load_shipped_reader
from qa.reading.transformers_reader import load_reader
from qa.search.embed import DEFAULT_MODEL, DEFAULT_PRECISION, Encoder, load_encoder
from qa.search.onnx_encoder import OnnxEncoder, has_onnx_export, load_onnx_encoder
from qa.search.retrieve import Hit, Retrieval, Retriever

DEFAULT_CORPUS = "seeds"
DEFAULT_INDEX = "index"
DEFAULT_TOP_K = 5
MAX_ANSWERS = 10


class QA:
    """One corpus, its index and the model, loaded lazily and kept for repeated questions."""

    def __init__(self, corpus: str | Path | Sequence[Article] = DEFAULT_CORPUS, index: str | Path = DEFAULT_INDEX,
                 model: str = DEFAULT_MODEL, strict: bool = False, follow_links: bool = False,
                 precision: str = DEFAULT_PRECISION, on_notice: Callable[[str], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None, backend: Backend | None = None):
        """`backend` keeps the index somewhere else than the `index` folder (qa.backends.milvus.backend.MilvusBackend)."""
        self.corpus = Path(corpus) if isinstance(corpus, (str, Path)) else list(corpus)
        self.backend = backend or FileBackend(index)
        self.model_name = model
        self.precision = precision
        self.strict = strict
        self.follow_links = follow_links
        self._on_notice = on_notice or (lambda message: None)
        self.on_progress = on_progress
        self.warnings: list[str] = []  # every notice given so far, for callers that show no stderr (--json)
        self._loaded: OpenIndex | None = None
        self._retriever: Retriever | None = None

    def on_notice(self, message: str) -> None:
        self.warnings.append(message)
        self._on_notice(message)

    # ------------------------------------------------------------------ index

    def encoder(self) -> Encoder:
        return load_encoder(self.model_name)

    def build(self, force: bool = False, verify: bool = False) -> BuildReport:
        """Bring the index up to date with the corpus (or rebuild it) and report what was done.

        `verify` hashes every file of the index, not only the small ones, and rebuilds it if one
        does not match."""
        report = self.backend.build(
            self.corpus, self.model_name, force=force, verify=verify, strict=self.strict,
            follow_links=self.follow_links, precision=self.precision, make_encoder=self.encoder,
            on_progress=self.on_progress,
            on_wait=lambda: self.on_notice(f"another build of {self.backend.location} is running; waiting for it"),
        )
        self.close()
        return report

    def close(self) -> None:
        """Release the index generation this object reads, so a later build may remove it."""
        if self._loaded is not None:
            self._loaded.close()
        self._loaded = self._retriever = None

    def staleness(self) -> str | None:
        """Why the index no longer matches the corpus, model or precision; None if it does."""
        return self.backend.staleness(self.corpus, self.model_name, self.follow_links, self.precision)

    def ensure_index(self) -> None:
        """Build on first use and rebuild when the corpus or model changed, saying why."""
        reason = self.staleness()
        if reason is not None:
            self.on_notice(f"building the index in {self.backend.location} ({reason})")
            report = self.build()
            if report.skipped:
                self.on_notice(skipped_summary(report.skipped))

    def retriever(self) -> Retriever:
        if self._retriever is None:
            self.ensure_index()
            try:
                self._open(self.backend.load())
            except store.NewerIndexError:
                raise
            except store.StoreError as exc:
                if not self.backend.rebuilds_when_damaged:
                    raise
                self._heal(exc.problem)
        return self._retriever

    def _open(self, loaded: OpenIndex) -> None:
        self._loaded = loaded
        self._retriever = Retriever(loaded, self._embed_query)

    def _heal(self, problem: str) -> None:
        """Replace a damaged index from the corpus, which is at hand, so this is safe (and atomic)."""
        self.on_notice(f"{problem}; rebuilding it now")
        self.build(force=True)
        self._open(self.backend.load())

    def index_folder(self) -> Path:
        """The folder holding the model export this object embeds questions with (for the file
        backend the generation it reads), built first if need be."""
        self.retriever()
        return self._loaded.folder

    def summary(self) -> dict:
        """What is loaded: the index folder, its model and how much it holds (built first if need be)."""
        self.retriever()
        model = self._loaded.manifest["model"]
        counts = self._loaded.manifest["counts"]
        return {"index": self.backend.location, "articles": counts["files"], "passages": counts["passages"],
                "model": model["name"], "precision": model["precision"]}

    def all_passages(self) -> list[Passage]:
        """Every passage of the index, in index order (read in full: meant for evaluation)."""
        self.retriever()
        return list(self._loaded)

    def query_encoder(self) -> Encoder | OnnxEncoder:
        """The index's ONNX export when it has one (no torch import), else the model itself."""
        if has_onnx_export(self.index_folder()):
            try:
                return load_onnx_encoder(self._loaded.folder)
            except ModelError as exc:
                if not self.backend.rebuilds_when_damaged:  # Milvus: the export is the cache's, not the index's
                    raise ModelError(f"{exc}; delete that folder and ask again: it is made anew") from None
                self._heal(str(exc))
                return load_onnx_encoder(self._loaded.folder)
        return self.encoder()

    def _embed_query(self, text: str) -> np.ndarray:
        return self.query_encoder().encode([text])[0]

    def warm(self, reader: str | None = None) -> None:
        """Load the index, the query encoder and the reader now, so that no question pays for them
        (an interactive session, a server's first request) and nothing loads lazily in two threads."""
        self.query_encoder()
        _span_reader(reader)

    # ------------------------------------------------------------------ queries

    def search(self, query: str, k: int = 10, retrieval: Retrieval = Retrieval()) -> list[dict]:
        """Ranked passages as dicts, each with its fused score and both retrievers' ranks and scores."""
        query = _check_text(query, "query")
        hits = self._hits(query, k, retrieval)
        passages = self._loaded.fetch([hit.passage_id for hit in hits])
        return [_passage_dict(rank, hit, passage) for rank, (hit, passage) in enumerate(zip(hits, passages), 1)]

    def ask(self, question: str, top_k: int = DEFAULT_TOP_K, retrieval: Retrieval = Retrieval(),
            reader: str | None = None, explain: bool = False, answers: int | None = None) -> dict:
        """The answer (or None), its confidence, sentence and citations, and the passages it came from;
        when the reader is unsure, its `best_guess` instead of an answer; `answers` - 1 runners-up
        (default: none, or 2 with `explain`).

        `reader` names a transformers extractive-QA model (local folder or cached name) to pick the
        answer instead of the built-in reader. `explain` adds what the reader made of each passage.
        """
        question = _check_text(question, "question")
        answers = answers if answers is not None else 3 if explain else 1
        if not 1 <= answers <= MAX_ANSWERS:
            raise QAError(f"answers must be from 1 to {MAX_ANSWERS}, got {answers}")
        span_reader = _span_reader(reader)  # a bad model fails before any work
        hits, passages = self.passages_for(question, top_k, retrieval)
        result = self._answer_from_header(question, hits, passages) or answer(question, passages, span_reader, answers)
        reply = {
            "question": question,
            "answer": result.answer,
            "confidence": round(result.confidence, 4),
            "sentence": result.sentence,
            "answer_in_sentence": (
                [result.answer_start - result.sentence_start, result.answer_end - result.sentence_start]
                if result.answer is not None else None
            ),
            "citations": [asdict(c) for c in result.citations],
            "answered_from": result.header or "reader",
            "best_guess": None if result.best_guess is None else _candidate_dict(result.best_guess),
            "alternatives": [_candidate_dict(c) for c in result.alternatives],
            "passages": [_passage_dict(rank, hit, passage) for rank, (hit, passage) in enumerate(zip(hits, passages), 1)],
        }
        if explain:
            reply["explain"] = _explanation(result, passages, span_reader.calibration)
        return reply

    def _answer_from_header(self, question: str, hits: Sequence[Hit], passages: Sequence[Passage]) -> Answer | None:
        """Who wrote the article meant, or when it came out, from its byline or dateline; None for
        other questions, or when that article cannot be read again (gone since it was indexed)."""
        header = asks_about_article(question)
        if header is None or not passages:
            return None
        source, share = article_meant([p.source for p in passages], [hit.score for hit in hits])
        try:
            article = article_of(self.corpus, source)  # the index keeps passages, not headers
        except (Unreadable, CorpusError):
            return None
        return answer_about(question, header, article, share, len(passages))

    def passages_for(self, question: str, top_k: int = DEFAULT_TOP_K,
                     retrieval: Retrieval = Retrieval()) -> tuple[list[Hit], list[Passage]]:
        """The passages the reader reads for `question`, with their retrieval hits."""
        hits = self._hits(question, top_k, retrieval)
        return hits, self._loaded.fetch([h.passage_id for h in hits])

    def _hits(self, query: str, k: int, retrieval: Retrieval) -> list[Hit]:
        if k < 1:
            raise QAError(f"top-k must be at least 1, got {k}")
        return self.retriever().search(query, k=k, retrieval=retrieval)


def json_shape(result: dict) -> dict:
    """`QA.ask`'s result as `qa ask --json` gives it: without `answer_in_sentence` (in the answer,
    best guess and alternatives), which only the rich view uses (to highlight the answer)."""

    def plain(value):
        return None if value is None else {k: v for k, v in value.items() if k != "answer_in_sentence"}

    shaped = plain(result)
    if "best_guess" in shaped:
        shaped["best_guess"] = plain(shaped["best_guess"])
        shaped["alternatives"] = [plain(c) for c in shaped["alternatives"]]
    return shaped


def _candidate_dict(candidate: Candidate) -> dict:
    return {"answer": candidate.answer, "confidence": round(candidate.confidence, 4), "sentence": candidate.sentence,
            "answer_in_sentence": list(candidate.answer_in_sentence), "citation": asdict(candidate.citation)}


def _span_reader(name: str | None):
    return load_reader(name) if name else load_shipped_reader()


def _check_text(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QuestionError(f"the {what} is empty; ask something, e.g. qa ask \"who built Stargate data centers\"")
    return text.strip()


def _explanation(result: Answer, passages: Sequence[Passage], calibration: Calibration) -> dict:
    evidence = result.evidence
    return {
        "margin": None if evidence is None else round(evidence.margin, 4),
        "lead": None if evidence is None else round(evidence.lead, 4),
        "agreement": None if evidence is None else evidence.agreement,
        "threshold": calibration.threshold,
        "guess_threshold": calibration.guess_threshold,
        "margin_needed": None if evidence is None else round(calibration.margin_needed(evidence), 4),
        "passages": [
            {"read": result.read is None or number < result.read, "margin": None if r is None else round(r.margin, 4),
             "span": None if r is None else passage.text[r.start : r.end]}
            for number, (r, passage) in enumerate(zip(result.readings, passages))
        ],
    }


def _passage_dict(rank: int, hit: Hit, passage: Passage) -> dict:
    return {
        "rank": rank,
        "source": passage.source,
        "title": passage.title,
        "date": passage.date,
        "author": passage.author,
        "sitename": passage.sitename,
        "page": passage.page,
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
        "score": round(hit.score, 6),
        "bm25_rank": hit.bm25_rank,
        "bm25_score": None if hit.bm25_score is None else round(hit.bm25_score, 4),
        "dense_rank": hit.dense_rank,
        "dense_score": None if hit.dense_score is None else round(hit.dense_score, 4),
    }
