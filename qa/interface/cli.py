"""`qa`: ask questions about a folder of articles and see exactly where each answer came from.

A thin layer over `qa.api.QA`: it parses options, renders with `qa.interface.view`, and turns every
`QAError` (and Ctrl-C, SIGTERM) into one line on stderr with a non-zero exit. `qa chat` and
`qa serve` import their modules (readline; FastAPI and uvicorn) only when they run, so `qa ask`
starts no slower for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from qa.api import QA, json_shape
from qa.errors import QAError, interruption
from qa.interface import progress
from qa.interface.options import (
    AnswersOption,
    ExplainOption,
    JsonOption,
    ReaderOption,
    TopKOption,
    Where,
    takes_ranking,
    takes_where,
)
from qa.interface.view import View, json_line, shown
from qa.search.retrieve import Retrieval

app = typer.Typer(
    help="Answer questions about a folder of news articles, offline, citing the exact source text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long


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
        progress.stop_all()


def _open(where: Where, quiet: bool) -> QA:
    """The QA of these options; unless `quiet`, its notices and build progress on stderr."""
    if quiet:
        return where.qa(on_notice=lambda message: None, on_progress=None)
    return where.qa(on_notice=lambda message: err.print(f"[dim]{shown(message)}[/]"),
                    on_progress=progress.embedding(err))


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
    answers: Optional[int] = AnswersOption,
    reader: Optional[str] = ReaderOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Answer QUESTION (or each line of --file) from the articles, with the sentence it comes from and citations."""

    def action() -> None:
        if (question is None) == (file is None):
            raise QAError("give a question or --file FILE (- for stdin), not both and not neither")
        options = dict(top_k=top_k, retrieval=ranking, reader=reader, explain=explain, answers=answers)
        if file is not None:
            _ask_batch(_open(where, quiet=True), file, options)
            return
        qa = _open(where, quiet=json_output)
        result = qa.ask(question, **options)
        if json_output:
            print(json_line({**json_shape(result), "warnings": qa.warnings}))
        else:
            View(out, Path(where.corpus)).answer(result, explain=explain)

    _run(action)


def _ask_batch(qa: QA, file: Path, options: dict) -> None:
    """JSON Lines on stdout; a bad line is reported with its number on stderr, the rest still answered."""
    from qa.interface.batch import answer_each, read_questions

    piped = str(file) == "-"
    stream = sys.stdin.buffer if piped else file.open("rb")
    with stream:
        # A file is counted first, for the progress bar's total; stdin is answered as it arrives.
        questions = read_questions(stream) if piped else list(read_questions(stream))
        advance = progress.answering(err, None if piped else len(questions))
        bad = 0
        for result in answer_each(qa, iter(questions), on_answered=advance, **options):
            if "error" in result:
                bad += 1
                err.print(f"[bold red]error:[/] line {result['line']}: {shown(result['error'])}")
            print(json_line(result), flush=True)
    if bad:
        raise typer.Exit(1)


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
        qa = _open(where, quiet=json_output)
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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every file not indexed, with its reason."),
    json_output: bool = JsonOption,
    where: Where = None,
) -> None:
    """Build or update the index of the corpus (only changed articles are embedded again)."""

    def action() -> None:
        qa = _open(where, quiet=json_output)
        report = qa.build(force=rebuild, verify=verify)
        if json_output:
            print(json_line({"built": report.built, "reason": report.reason, "files": report.files,
                             "passages": report.passages, "embedded": report.embedded,
                             "seconds": round(report.seconds, 3), "index": str(qa.backend.location),
                             "skipped": [{"source": s.source, "reason": s.reason} for s in report.skipped]}))
            return
        verb = "built" if report.built else "already up to date:"
        rate = f", {report.embedded / report.embed_seconds:.1f} passages/s" if report.embed_seconds else ""
        out.print(
            f"[green]index {verb}[/] {report.files} articles, {report.passages} passages "
            f"({report.embedded} embedded, {report.passages - report.embedded if report.built else report.passages} reused) "
            f"in {report.seconds:.1f}s{rate} -> {shown(qa.backend.location)}"
            + (f"  [dim]({shown(report.reason)})[/]" if report.built else "")
        )
        if report.skipped and verbose:
            out.print(f"[yellow]{len(report.skipped)} file(s) not indexed:[/]")
            for skipped in report.skipped:
                out.print(f"  {shown(skipped.source)}: {shown(skipped.reason)}")
        elif report.skipped:
            out.print(f"[yellow]{len(report.skipped)} file(s) not indexed[/] (--verbose says which and why)")

    _run(action)


@app.command()
@takes_ranking
@takes_where
def chat(
    top_k: int = TopKOption,
    explain: bool = ExplainOption,
    answers: Optional[int] = AnswersOption,
    reader: Optional[str] = ReaderOption,
    where: Where = None,
    ranking: Retrieval = None,
) -> None:
    """Ask one question after another at a prompt, with everything loaded once (:help lists its commands)."""
    from qa.interface import chat as session

    def action() -> None:
        qa = _open(where, quiet=False)
        qa.warm(reader)
        talk = session.Chat(qa, View(out, Path(where.corpus)), ranking, top_k, reader, explain, answers)
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
            from qa.interface.serve import serve as run_server
        except ImportError as exc:
            raise QAError(f"qa serve needs the serve extra ({exc.name} is missing): pip install 'qa[serve]'") from None
        run_server(_open(where, quiet=False), host, port, token or None,
                   on_ready=lambda url: err.print(f"serving on {url} (docs at {url}/docs); Ctrl-C stops"),
                   reader=reader, retrieval=ranking)

    _run(action)
