"""The options the `qa` commands share, declared once: which articles, model and index (`Where`),
which passages may be read and how they are ranked (`Retrieval`), and a decorator that hands each group to a command as one
argument."""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Optional

import typer

from qa.api import DEFAULT_CORPUS, DEFAULT_INDEX, DEFAULT_TOP_K, MAX_ANSWERS, QA
from qa.backends.base import BACKENDS
from qa.backends.milvus.backend import MilvusBackend
from qa.backends.milvus.client import DEFAULT_COLLECTION, MilvusConfig
from qa.errors import QAError
from qa.search.embed import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS
from qa.search.retrieve import DATE_BOUND, FUSIONS, RETRIEVERS, Retrieval

RetrieverChoice = Enum("RetrieverChoice", {name: name for name in RETRIEVERS}, type=str)
FusionChoice = Enum("FusionChoice", {name: name for name in FUSIONS}, type=str)
PrecisionChoice = Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)


CorpusOption = typer.Option(DEFAULT_CORPUS, "--corpus", help="Folder of .txt/.md/.html/.pdf articles (searched recursively).")
IndexOption = typer.Option(DEFAULT_INDEX, "--index", help="Folder where the index is kept.")
ModelOption = typer.Option(DEFAULT_MODEL, "--model", help="Embedding model: a sentence-transformers name or local folder.")
PrecisionOption = typer.Option(
    PrecisionChoice(DEFAULT_PRECISION), "--precision",
    help="How the model's weights run for passages and questions alike (int8: faster builds; its retrieval "
         "cost is in the README). Changing it rebuilds the index.")
RetrieverOption = typer.Option(RetrieverChoice(Retrieval.retriever), "--retriever", help="Which ranking to use.")
FusionOption = typer.Option(
    FusionChoice(Retrieval.fusion), "--fusion",
    help="How hybrid combines rankings: min-max normalized scores weighted by --alpha, or reciprocal rank fusion (k=60).")
AlphaOption = typer.Option(Retrieval.alpha, "--alpha", min=0.0, max=1.0, help="Weight of the dense score in --fusion weighted.")


def _date_bound(value: Optional[str]) -> Optional[str]:
    if value is not None and not DATE_BOUND.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a date; give YYYY, YYYY-MM or YYYY-MM-DD")
    return value


SinceOption = typer.Option(None, "--since", callback=_date_bound, metavar="DATE",
                           help="Read only articles dated on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD); "
                                "articles with no known date are left out.")
UntilOption = typer.Option(None, "--until", callback=_date_bound, metavar="DATE",
                           help="Read only articles dated on or before DATE.")
SourceOption = typer.Option(None, "--source", metavar="GLOB",
                            help="Read only articles whose path in the corpus matches GLOB (e.g. 'reuters/*' or "
                                 "'*.pdf'; * also crosses folders); repeat it for several.")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of the rich view.")
StrictOption = typer.Option(False, "--strict", help="Fail on an unreadable article instead of skipping it.")
FollowLinksOption = typer.Option(
    False, "--follow-links", help="Also index files and folders that links in the corpus lead to outside it.")
BackendChoice = Enum("BackendChoice", {name: name for name in BACKENDS}, type=str)
BackendOption = typer.Option(
    BackendChoice("files"), "--backend", envvar="QA_BACKEND",
    help="Where the index is kept: files in --index, or a Milvus collection at --milvus-uri.")
MilvusUriOption = typer.Option(
    None, "--milvus-uri", envvar="QA_MILVUS_URI",
    help="Milvus Lite database file (e.g. ./milvus.db) or server URI (http://host:19530); its token, if any, "
         "in QA_MILVUS_TOKEN.")
MilvusCollectionOption = typer.Option(DEFAULT_COLLECTION, "--milvus-collection", help="Milvus collection to use.")
ReaderOption = typer.Option(
    None, "--reader", help="A transformers extractive-QA model (local folder or cached name, loaded offline) "
                           "to pick the answer instead of the built-in reader.")
TopKOption = typer.Option(DEFAULT_TOP_K, "--top-k", "-k", min=1, max=100, help="Passages to read for the answer.")
ExplainOption = typer.Option(
    False, "--explain", help="Show why: each passage read, the reader's margin for it, and the threshold.")
AnswersOption = typer.Option(
    None, "--answers", "-n", min=1, max=MAX_ANSWERS,
    help="Show the N best distinct answers: the answer (or best guess) and N-1 runners-up, each with its "
         "confidence and citation (default 1, or 3 with --explain).")


@dataclass(frozen=True)
class Where:
    """Which articles, which model, and where their index is kept: what every command is given."""

    corpus: str
    index: str
    model: str
    precision: Enum
    strict: bool
    follow_links: bool
    backend: Enum
    milvus_uri: Optional[str]
    milvus_collection: str

    def qa(self, on_notice: Callable[[str], None], on_progress: Callable[[int, int], None] | None) -> QA:
        return QA(self.corpus, self.index, self.model, strict=self.strict, follow_links=self.follow_links,
                  precision=self.precision.value, on_notice=on_notice, on_progress=on_progress,
                  backend=self._backend())

    def _backend(self) -> MilvusBackend | None:
        """None (the index folder) or the Milvus backend."""
        if self.backend.value != "milvus":
            return None
        if not self.milvus_uri:
            raise QAError("--backend milvus needs --milvus-uri (a database file such as ./milvus.db, or "
                          "http://host:19530) or QA_MILVUS_URI")
        return MilvusBackend(MilvusConfig(self.milvus_uri, self.milvus_collection, os.environ.get("QA_MILVUS_TOKEN")))


def takes_options(name: str, options: dict[str, tuple[object, object]], make: Callable[..., object]):
    """A decorator giving a command `options` ({parameter: (type, typer option)}) as parameters,
    which typer reads from its signature, and handing them to it as one argument `name` made by
    `make(**values)`: options several commands share are declared once."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != name]
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                 for key, (kind, option) in options.items()]

        @functools.wraps(command)
        def wrapper(**values):
            shared = make(**{key: values.pop(key) for key in options})
            return command(**values, **{name: shared})

        wrapper.__signature__ = signature.replace(parameters=own + added)
        return wrapper

    return decorate


takes_where = takes_options("where", {
    "corpus": (str, CorpusOption), "index": (str, IndexOption), "model": (str, ModelOption),
    "precision": (PrecisionChoice, PrecisionOption), "strict": (bool, StrictOption),
    "follow_links": (bool, FollowLinksOption), "backend": (BackendChoice, BackendOption),
    "milvus_uri": (Optional[str], MilvusUriOption), "milvus_collection": (str, MilvusCollectionOption)}, Where)
takes_ranking = takes_options("ranking", {
    "retriever": (RetrieverChoice, RetrieverOption), "fusion": (FusionChoice, FusionOption),
    "alpha": (float, AlphaOption), "since": (Optional[str], SinceOption), "until": (Optional[str], UntilOption),
    "source": (Optional[list[str]], SourceOption)},
    lambda retriever, fusion, alpha, since, until, source: Retrieval(
        retriever.value, fusion.value, alpha, since=since, until=until, sources=tuple(source or ())))


