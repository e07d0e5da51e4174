"""`qa`: ask questions about a folder of articles and see exactly where each answer came from.

A thin layer over `qa.api.QA`: it parses options, renders with rich, and turns every
`QAError` (and Ctrl-C, SIGTERM) into one line on stderr with a non-zero exit. Everything it prints
that comes from files or the user (names, titles, text) is shown with control characters escaped.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from qa.api import DEFAULT_CORPUS, DEFAULT_INDEX, DEFAULT_TOP_K, QA
from qa.embed import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS
from qa.errors import QAError, interruption
from qa.retrieve import DEFAULT_ALPHA, DEFAULT_FUSION

app = typer.Typer(
    help="Answer questions about a folder of news articles, offline, citing the exact source text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long


class RetrieverChoice(str, Enum):
    hybrid = "hybrid"
    bm25 = "bm25"
    dense = "dense"


class FusionChoice(str, Enum):
    weighted = "weighted"
    rrf = "rrf"


PrecisionChoice = Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)


CorpusOption = typer.Option(DEFAULT_CORPUS, "--corpus", help="Folder of .txt/.md/.html articles (searched recursively).")
IndexOption = typer.Option(DEFAULT_INDEX, "--index", help="Folder where the index is kept.")
ModelOption = typer.Option(DEFAULT_MODEL, "--model", help="Embedding model: a sentence-transformers name or local folder.")
PrecisionOption = typer.Option(
    PrecisionChoice(DEFAULT_PRECISION), "--precision",
    help="How the model's weights run for passages and questions alike (int8: faster builds; its retrieval "
         "cost is in the README). Changing it rebuilds the index.")
RetrieverOption = typer.Option(RetrieverChoice.hybrid, "--retriever", help="Which ranking to use.")
FusionOption = typer.Option(
    FusionChoice(DEFAULT_FUSION), "--fusion",
    help="How hybrid combines rankings: min-max normalized scores weighted by --alpha, or reciprocal rank fusion (k=60).")
AlphaOption = typer.Option(DEFAULT_ALPHA, "--alpha", min=0.0, max=1.0, help="Weight of the dense score in --fusion weighted.")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of the rich view.")
StrictOption = typer.Option(False, "--strict", help="Fail on an unreadable article instead of skipping it.")
FollowLinksOption = typer.Option(
    False, "--follow-links", help="Also index files and folders that links in the corpus lead to outside it.")


def _safe(text: str) -> str:
    """Text for the terminal: control characters (escape sequences included) shown, never executed."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


def _shown(text: str) -> str:
    """`_safe` text as rich markup: neither the terminal nor rich interprets any of it."""
    return escape(_safe(text))


def _json(data: dict) -> str:
    """One JSON line in which no character can act on a terminal: json escapes C0 controls, this
    also DEL, C1 controls (U+009B is a one-byte CSI) and the other unprintable ones (bidi overrides)."""
    text = json.dumps(data, ensure_ascii=False)
    return re.sub(r"[^\x20-\x7e]", lambda m: m.group() if m.group().isprintable() else json.dumps(m.group())[1:-1], text)


_live_progress: list = []  # progress bars on screen: stopped on any way out, so the cursor comes back


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except QAError as exc:
        err.print(f"[bold red]error:[/] {_shown(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        message, code = interruption(exc)
        err.print(f"[bold red]error:[/] {message}")
        raise typer.Exit(code) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[bold red]error:[/] {_shown((exc.strerror or str(exc)) + where)}")
        raise typer.Exit(1) from None
    finally:
        while _live_progress:
            _live_progress.pop().stop()


def _make_qa(corpus: str, index: str, model: str, precision: Enum, strict: bool, quiet: bool,
             follow_links: bool) -> QA:
    notice = (lambda message: None) if quiet else (lambda message: err.print(f"[dim]{_shown(message)}[/]"))
    return QA(corpus, index, model, strict=strict, follow_links=follow_links, precision=precision.value,
              on_notice=notice, on_progress=_progress_bar(quiet))


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


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    top_k: int = typer.Option(DEFAULT_TOP_K, "--top-k", "-k", min=1, max=100, help="Passages to read for the answer."),
    json_output: bool = JsonOption,
    corpus: str = CorpusOption,
    index: str = IndexOption,
    model: str = ModelOption,
    precision: PrecisionChoice = PrecisionOption,
    retriever: RetrieverChoice = RetrieverOption,
    fusion: FusionChoice = FusionOption,
    alpha: float = AlphaOption,
    strict: bool = StrictOption,
    follow_links: bool = FollowLinksOption,
    reader: Optional[str] = typer.Option(
        None, "--reader", help="A transformers extractive-QA model (local folder or cached name, loaded offline) "
                               "to pick the answer instead of the built-in reader."),
) -> None:
    """Answer QUESTION from the articles, with the sentence it comes from and citations."""

    def action() -> None:
        qa = _make_qa(corpus, index, model, precision, strict, json_output, follow_links)
        result = qa.ask(question, top_k=top_k, retriever=retriever.value, fusion=fusion.value, alpha=alpha,
                        reader=reader)
        if json_output:
            result.pop("answer_in_sentence")
            print(_json({**result, "warnings": qa.warnings}))
        else:
            _show_answer(result)

    _run(action)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for."),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, max=1000, help="Passages to show."),
    json_output: bool = JsonOption,
    corpus: str = CorpusOption,
    index: str = IndexOption,
    model: str = ModelOption,
    precision: PrecisionChoice = PrecisionOption,
    retriever: RetrieverChoice = RetrieverOption,
    fusion: FusionChoice = FusionOption,
    alpha: float = AlphaOption,
    strict: bool = StrictOption,
    follow_links: bool = FollowLinksOption,
) -> None:
    """Rank the passages for QUERY, showing fused and per-retriever ranks."""

    def action() -> None:
        qa = _make_qa(corpus, index, model, precision, strict, json_output, follow_links)
        passages = qa.search(query, k=top_k, retriever=retriever.value, fusion=fusion.value, alpha=alpha)
        if json_output:
            print(_json({"query": query.strip(), "passages": passages, "warnings": qa.warnings}))
        else:
            _show_passages(passages, title=f"Passages for: {_shown(query.strip())}")

    _run(action)


@app.command()
def index(
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild from scratch even if nothing changed."),
    verify: bool = typer.Option(False, "--verify", help="Hash every index file, the big ones too, and rebuild "
                                                        "the index if one does not match."),
    corpus: str = CorpusOption,
    index: str = IndexOption,
    model: str = ModelOption,
    precision: PrecisionChoice = PrecisionOption,
    strict: bool = StrictOption,
    follow_links: bool = FollowLinksOption,
) -> None:
    """Build or update the index of the corpus (only changed articles are embedded again)."""

    def action() -> None:
        qa = _make_qa(corpus, index, model, precision, strict, False, follow_links)
        report = qa.build(force=rebuild, verify=verify)
        verb = "built" if report.built else "already up to date:"
        rate = f", {report.embedded / report.embed_seconds:.1f} passages/s" if report.embed_seconds else ""
        out.print(
            f"[green]index {verb}[/] {report.files} articles, {report.passages} passages "
            f"({report.embedded} embedded, {report.passages - report.embedded if report.built else report.passages} reused) "
            f"in {report.seconds:.1f}s{rate} -> {_shown(index)}"
            + (f"  [dim]({_shown(report.reason)})[/]" if report.built else "")
        )
        if report.skipped:
            out.print(f"[yellow]{len(report.skipped)} file(s) skipped[/] (see warnings above)")

    _run(action)


# --------------------------------------------------------------------------- rendering


def _citation_line(citation: dict) -> str:
    date = f", {citation['date']}" if citation.get("date") else ""
    return (f"[bold]{_shown(citation['source'])}[/] — {_shown(citation['title'])}{_shown(date)} "
            f"[dim]chars {citation['start']}–{citation['end']}[/]")


def _show_answer(result: dict) -> None:
    out.print(f"[bold]Q:[/] {_shown(result['question'])}")
    if result["answer"] is None:
        out.print(Panel(Text("No answer found in the articles.", style="bold yellow"), expand=False))
        out.print(f"confidence {result['confidence']:.2f} (below the answering threshold)")
        _show_passages(result["passages"], title="Closest passages")
        return
    out.print(Panel(Text(_safe(result["answer"]), style="bold green"), title="Answer", title_align="left",
                    expand=False))
    out.print(f"confidence {result['confidence']:.2f}")
    sentence = Text(_safe(result["sentence"]))
    start, end = result["answer_in_sentence"]
    sentence.stylize("bold black on yellow", start, end)
    out.print(Text("“") + sentence + Text("”"))
    out.print("[bold]Sources:[/]")
    for number, citation in enumerate(result["citations"], 1):
        out.print(f"  [{number}] " + _citation_line(citation))


def _show_passages(passages: list[dict], title: str) -> None:
    if not passages:
        out.print("[yellow]No passages matched.[/]")
        return
    table = Table(title=title, show_lines=True, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("bm25", justify="right")
    table.add_column("dense", justify="right")
    table.add_column("source / passage", ratio=1)
    for p in passages:
        snippet = p["text"] if len(p["text"]) <= 320 else p["text"][:320].rsplit(" ", 1)[0] + " …"
        where = f"[bold]{_shown(p['source'])}[/] [dim]{p['start']}–{p['end']}[/]\n"
        table.add_row(str(p["rank"]), f"{p['score']:.4f}",
                      "-" if p["bm25_rank"] is None else str(p["bm25_rank"]),
                      "-" if p["dense_rank"] is None else str(p["dense_rank"]),
                      where + _shown(snippet))
    out.print(table)


if __name__ == "__main__":  # python -m qa.cli, the way eval/bench.py runs older checkouts too
    from qa.__main__ import main

    main()
