"""`qa`: ask questions about a folder of articles and see exactly where each answer came from.

A thin layer over `qa.api.QA`: it parses options, renders with `qa.view`, and turns every
`QAError` (and Ctrl-C, SIGTERM) into one line on stderr with a non-zero exit. `qa chat` and
`qa serve` import their modules (readline; FastAPI and uvicorn) only when they run, so `qa ask`
starts no slower for them.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from qa.api import DEFAULT_CORPUS, DEFAULT_INDEX, DEFAULT_TOP_K, QA, json_shape
from qa.backend import BACKENDS
from qa.embed import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS
from qa.errors import QAError, interruption
from qa.milvus import DEFAULT_COLLECTION, MilvusBackend, MilvusConfig
from qa.retrieve import FUSIONS, RETRIEVERS, Retrieval
from qa.view import View, json_line, shown

app = typer.Typer(
    help="Answer questions about a folder of news articles, offline, citing the exact source text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long


RetrieverChoice = Enum("RetrieverChoice", {name: name for name in RETRIEVERS}, type=str)
FusionChoice = Enum("FusionChoice", {name: name for name in FUSIONS}, type=str)
PrecisionChoice = Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)


CorpusOption = typer.Option(DEFAULT_CORPUS, "--corpus", help="Folder of .txt/.md/.html articles (searched recursively).")
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


_live_progress: list = []  # progress bars on screen: stopped on any way out, so the cursor comes back


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except QAError as exc:
        err.print(f"[bold red]error:[/] {shown(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        message, code = interruption(exc)
        err.print(f"[bold red]error:[/] {message}")
        raise typer.Exit(code) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[bold red]error:[/] {shown((exc.strerror or str(exc)) + where)}")
        raise typer.Exit(1) from None
    finally:
        while _live_progress:
            _live_progress.pop().stop()


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

    def qa(self, quiet: bool) -> QA:
        notice = (lambda message: None) if quiet else (lambda message: err.print(f"[dim]{shown(message)}[/]"))
        return QA(self.corpus, self.index, self.model, strict=self.strict, follow_links=self.follow_links,
                  precision=self.precision.value, on_notice=notice, on_progress=_progress_bar(quiet),
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
    "alpha": (float, AlphaOption)}, lambda retriever, fusion, alpha: Retrieval(retriever.value, fusion.value, alpha))


def _progress_bar(quiet: bool) -> Callable[[int, int], None] | None:
    """A rich progress bar driven by (done, total) callbacks: passages/s and time left."""
    if quiet or not err.is_terminal:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    state: dict = {}

    def update(done: int, total: int) -> None:
        if "progress" not in state:
            progress = Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                TextColumn("{task.fields[rate]}"),
                                TimeRemainingColumn(), console=err, transient=True)
            state["progress"] = progress
            state["task"] = progress.add_task("embed", total=total, rate="")
            progress.start()
            _live_progress.append(progress)
        progress = state["progress"]
        task = progress.tasks[0]
        rate = f"{task.speed:.0f} passages/s" if task.speed else ""
        progress.update(state["task"], completed=done, total=total, rate=rate)
        if done >= total:
            progress.stop()
            _live_progress.remove(progress)
            state.clear()

    return update


ReaderOption = typer.Option(
    None, "--reader", help="A transformers extractive-QA model (local folder or cached name, loaded offline) "
                           "to pick the answer instead of the built-in reader.")
TopKOption = typer.Option(DEFAULT_TOP_K, "--top-k", "-k", min=1, max=100, help="Passages to read for the answer.")
ExplainOption = typer.Option(
    False, "--explain", help="Show why: each passage read, the reader's margin for it, and the threshold.")


@app.command()
@takes_ranking
@takes_where
def ask(
    question: Optional[str] = typer.Argument(None, help="The question, in quotes."),
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", dir_okay=False, allow_dash=True,
        help="Answer every line of this file (- for stdin) as JSON Lines, one object per question, in order."),
    top_k: int = TopKOption,
    json_output: bool = JsonOption,
    explain: bool = ExplainOption,
    reader: Optional[str] = ReaderOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Answer QUESTION (or each line of --file) from the articles, with the sentence it comes from and citations."""

    def action() -> None:
        if (question is None) == (file is None):
            raise QAError("give a question or --file FILE (- for stdin), not both and not neither")
        options = dict(top_k=top_k, retrieval=ranking, reader=reader, explain=explain)
        if file is not None:
            _ask_batch(where.qa(quiet=True), file, options)
            return
        qa = where.qa(quiet=json_output)
        result = qa.ask(question, **options)
        if json_output:
            print(json_line({**json_shape(result), "warnings": qa.warnings}))
        else:
            View(out, Path(where.corpus)).answer(result, explain=explain)

    _run(action)


def _ask_batch(qa: QA, file: Path, options: dict) -> None:
    """JSON Lines on stdout; a bad line is reported with its number on stderr, the rest still answered."""
    from qa.batch import answer_each, read_questions

    piped = str(file) == "-"
    stream = sys.stdin.buffer if piped else file.open("rb")
    with stream:
        # A file is counted first, for the progress bar's total; stdin is answered as it arrives.
        questions = read_questions(stream) if piped else list(read_questions(stream))
        advance = _batch_progress(None if piped else len(questions))
        bad = 0
        for result in answer_each(qa, iter(questions), on_answered=advance, **options):
            if "error" in result:
                bad += 1
                err.print(f"[bold red]error:[/] line {result['line']}: {shown(result['error'])}")
            print(json_line(result), flush=True)
    if bad:
        raise typer.Exit(1)


def _batch_progress(total: int | None) -> Callable[[], None] | None:
    """A progress bar on stderr when it is a terminal; `total` None (stdin) counts without an end."""
    if not err.is_terminal or total == 0:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    task = progress.add_task("answer", total=total)
    progress.start()
    _live_progress.append(progress)

    def advance() -> None:
        progress.advance(task)

    return advance


@app.command()
@takes_ranking
@takes_where
def search(
    query: str = typer.Argument(..., help="What to look for."),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, max=1000, help="Passages to show."),
    json_output: bool = JsonOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Rank the passages for QUERY, showing fused and per-retriever ranks."""

    def action() -> None:
        qa = where.qa(quiet=json_output)
        passages = qa.search(query, k=top_k, retrieval=ranking)
        if json_output:
            print(json_line({"query": query.strip(), "passages": passages, "warnings": qa.warnings}))
        else:
            View(out, Path(where.corpus)).passages(passages, title=f"Passages for: {shown(query.strip())}")

    _run(action)


@app.command()
@takes_where
def index(
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild from scratch even if nothing changed."),
    verify: bool = typer.Option(False, "--verify", help="Hash every index file, the big ones too, and rebuild "
                                                        "the index if one does not match."),
    where: Where = None,
) -> None:
    """Build or update the index of the corpus (only changed articles are embedded again)."""

    def action() -> None:
        qa = where.qa(quiet=False)
        report = qa.build(force=rebuild, verify=verify)
        verb = "built" if report.built else "already up to date:"
        rate = f", {report.embedded / report.embed_seconds:.1f} passages/s" if report.embed_seconds else ""
        out.print(
            f"[green]index {verb}[/] {report.files} articles, {report.passages} passages "
            f"({report.embedded} embedded, {report.passages - report.embedded if report.built else report.passages} reused) "
            f"in {report.seconds:.1f}s{rate} -> {shown(qa.backend.location)}"
            + (f"  [dim]({shown(report.reason)})[/]" if report.built else "")
        )
        if report.skipped:
            out.print(f"[yellow]{len(report.skipped)} file(s) skipped[/] (see warnings above)")

    _run(action)


@app.command()
@takes_ranking
@takes_where
def chat(
    top_k: int = TopKOption,
    explain: bool = ExplainOption,
    reader: Optional[str] = ReaderOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Ask one question after another at a prompt, with everything loaded once (:help lists its commands)."""
    from qa import chat as session

    def action() -> None:
        qa = where.qa(quiet=False)
        qa.warm(reader)
        talk = session.Chat(qa, View(out, Path(where.corpus)), ranking, top_k, reader, explain)
        out.print(f"[dim]{talk.greeting()}[/]")
        session.run(talk, session.history_file())

    _run(action)


@app.command()
@takes_ranking
@takes_where
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs a token."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    token: Optional[str] = typer.Option(
        None, "--token", envvar="QA_TOKEN", show_envvar=True,
        help="Require 'Authorization: Bearer TOKEN' on every request."),
    reader: Optional[str] = ReaderOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Serve POST /ask, POST /search and GET /health as JSON over HTTP (docs at /docs); needs the serve extra."""

    def action() -> None:
        try:
            from qa.serve import serve as run_server
        except ImportError as exc:
            raise QAError(f"qa serve needs the serve extra ({exc.name} is missing): pip install 'qa[serve]'") from None
        run_server(where.qa(quiet=False), host, port, token or None,
                   on_ready=lambda url: err.print(f"serving on {url} (docs at {url}/docs); Ctrl-C stops"),
                   reader=reader, retrieval=ranking)

    _run(action)


if __name__ == "__main__":  # python -m qa.cli, the way eval/bench.py runs older checkouts too
    from qa.__main__ import main

    main()
