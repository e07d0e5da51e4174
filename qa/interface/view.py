"""How answers and passages look at a terminal, shared by `qa ask`, `qa search` and `qa chat`.

Everything shown that comes from files or the user (names, titles, text) has its control
characters escaped, so an article cannot move the cursor or retitle the window. A citation is a
clickable link (OSC 8) only where the terminal is known to support them, and the link's target is
the article's own path, percent-encoded, never text from an article.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

HYPERLINKS_ENV = "QA_HYPERLINKS"
"""1 or 0 forces file links on or off; otherwise they follow what the terminal is known to support."""


def safe(text: str) -> str:
    """Text for the terminal: control characters (escape sequences included) shown, never executed."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


def shown(text: str) -> str:
    """`safe` text as rich markup: neither the terminal nor rich interprets any of it."""
    return escape(safe(text))


def json_line(data: dict) -> str:
    """One JSON line in which no character can act on a terminal: json escapes C0 controls, this
    also DEL, C1 controls (U+009B is a one-byte CSI) and the other unprintable ones (bidi overrides)."""
    text = json.dumps(data, ensure_ascii=False)
    return re.sub(r"[^\x20-\x7e]", lambda m: m.group() if m.group().isprintable() else json.dumps(m.group())[1:-1], text)


def hyperlinks_supported(console: Console, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OSC 8 links will be understood: terminals that announce themselves and are known to.

    Terminals that do not understand OSC 8 may print its bytes, so the default is off."""
    forced = environ.get(HYPERLINKS_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if not console.is_terminal or console.is_dumb_terminal:
        return False
    if environ.get("TERM_PROGRAM") in {"iTerm.app", "WezTerm", "vscode", "ghostty", "Hyper"}:
        return True
    if environ.get("KITTY_WINDOW_ID") or environ.get("WT_SESSION") or environ.get("KONSOLE_VERSION"):
        return True
    vte = environ.get("VTE_VERSION", "")
    return vte.isdigit() and int(vte) >= 5000  # GNOME Terminal, Tilix and others on VTE 0.50+


_HEADER_NOTES_NONE = {"byline": "(the article's header names no writer)",
                      "dateline": "(the article's header gives no date)"}


class View:
    """Renders `QA.ask` and `QA.search` results on one console."""

    def __init__(self, console: Console, corpus: Path | None = None, links: bool | None = None):
        self.console = console
        self.corpus = corpus.resolve() if corpus is not None else None
        self.links = hyperlinks_supported(console) if links is None else links

    def _source(self, source: str) -> Text:
        text = Text(safe(source), style="bold")
        if self.links and self.corpus is not None:
            text.stylize(Style(link=(self.corpus / source).as_uri()))
        return text

    def citation_line(self, citation: dict) -> Text:
        about = "".join(f", {part}" for part in (citation.get("date"), citation.get("author") and f"by {citation['author']}",
                                                   citation.get("sitename")) if part)
        page = f"page {citation['page']}, " if citation.get("page") else ""
        return Text.assemble(self._source(citation["source"]), f" — {safe(citation['title'])}{safe(about)} ",
                             (f"{page}chars {citation['start']}–{citation['end']}", "dim"))

    def answer(self, result: dict, explain: bool = False) -> None:
        """An answer, a best guess marked as unsure, or no answer; then the runners-up."""
        out = self.console
        out.print(f"[bold]Q:[/] {shown(result['question'])}")
        guess = result.get("best_guess")
        if result["answer"] is None and guess is None:
            out.print(Panel(Text("No answer found in the articles.", style="bold yellow"), expand=False))
            out.print(f"confidence {result['confidence']:.2f} " + _HEADER_NOTES_NONE.get(
                result.get("answered_from"), "(below the answering threshold)"))
            if explain:
                self.explanation(result)
            else:
                self.passages(result["passages"], title="Closest passages")
            return
        if guess is not None:
            out.print(Panel(Text(safe(guess["answer"]), style="bold yellow"), expand=False,
                            title="Not sure. The closest the articles come:", title_align="left"))
            out.print(f"confidence {guess['confidence']:.2f} (below the answering threshold)")
            out.print(self._in_sentence(guess["sentence"], guess["answer_in_sentence"]))
            out.print(Text("  ") + self.citation_line(guess["citation"]))
        else:
            out.print(Panel(Text(safe(result["answer"]), style="bold green"), title="Answer", title_align="left",
                            expand=False))
            source = result.get("answered_from", "reader")
            out.print(f"confidence {result['confidence']:.2f}" + (
                "" if source == "reader" else f" (the article's share of the retrieval score), from its {source}"))
            out.print(self._in_sentence(result["sentence"], result["answer_in_sentence"]))
            out.print("[bold]Sources:[/]")
            for number, citation in enumerate(result["citations"], 1):
                out.print(Text(f"  [{number}] ") + self.citation_line(citation))
        self.alternatives(result.get("alternatives") or [])
        if explain:
            self.explanation(result)

    @staticmethod
    def _in_sentence(sentence: str, where: list[int]) -> Text:
        text = Text(safe(sentence))
        text.stylize("bold black on yellow", *where)
        return Text("“") + text + Text("”")

    def alternatives(self, candidates: list[dict]) -> None:
        """The runners-up, each with its confidence, its sentence and where it is."""
        if not candidates:
            return
        self.console.print("[bold]Other answers:[/]")
        for number, candidate in enumerate(candidates, 2):
            self.console.print(Text(f"  {number}. ") + Text(safe(candidate["answer"]), style="bold")
                               + Text(f"  confidence {candidate['confidence']:.2f}", style="dim"))
            self.console.print(Text("     ") + self._in_sentence(candidate["sentence"], candidate["answer_in_sentence"]))
            self.console.print(Text("     ") + self.citation_line(candidate["citation"]))

    def explanation(self, result: dict) -> None:
        """Why this answer or abstention: what the reader made of each passage, against the threshold."""
        why = result["explain"]
        table = Table(title="Passages read", show_lines=True, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("retrieval", justify="right")
        table.add_column("reader margin", justify="right")
        table.add_column("source / the reader's best span", ratio=1)
        for passage, reading in zip(result["passages"], why["passages"]):
            margin = "-" if reading["margin"] is None else f"{reading['margin']:+.2f}"
            span = (Text("(not read: the passages above gave a clear answer)", style="dim") if not reading["read"]
                    else Text("(no span)", style="dim") if reading["span"] is None else Text(safe(reading["span"])))
            where = Text.assemble(self._source(passage["source"]), (f" {passage['start']}–{passage['end']}\n", "dim"))
            table.add_row(str(passage["rank"]), f"{passage['score']:.4f}", margin, where + span)
        self.console.print(table)
        if result.get("answered_from", "reader") != "reader":
            self.console.print(f"a question about the article itself: read from the {result['answered_from']} of the "
                               "article holding most of the passages' retrieval score (that share is the confidence)")
            return
        if why["margin"] is None:
            self.console.print("the reader found no span in the passages read")
            return
        guess = "" if why["guess_threshold"] is None else f", a best guess from {why['guess_threshold']:.2f}"
        self.console.print(
            f"best span's margin over \"no answer\": {why['margin']:+.2f}, lead over the next answer "
            f"{why['lead']:+.2f}, {why['agreement']} other passage(s) agree; with these it answers from a margin "
            f"of {why['margin_needed']:+.2f} (confidence {why['threshold']:.2f}, the reader's abstention "
            f"threshold{guess})")

    def passages(self, passages: list[dict], title: str) -> None:
        if not passages:
            self.console.print("[yellow]No passages matched.[/]")
            return
        table = Table(title=title, show_lines=True, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("score", justify="right")
        table.add_column("bm25", justify="right")
        table.add_column("dense", justify="right")
        table.add_column("source / passage", ratio=1)
        for p in passages:
            snippet = p["text"] if len(p["text"]) <= 320 else p["text"][:320].rsplit(" ", 1)[0] + " …"
            page = f" page {p['page']}," if p.get("page") else ""
            where = Text.assemble(self._source(p["source"]), (f"{page} {p['start']}–{p['end']}\n", "dim"))
            table.add_row(str(p["rank"]), f"{p['score']:.4f}",
                          "-" if p["bm25_rank"] is None else str(p["bm25_rank"]),
                          "-" if p["dense_rank"] is None else str(p["dense_rank"]),
                          where + Text(safe(snippet)))
        self.console.print(table)
