"""`qa chat`: one process that loads the index, encoder and reader once and answers at a prompt.

Line editing and history come from the standard library's readline (GNU readline or libedit, as
Python was built): no new dependency, and the keys people already know from bash and the Python
prompt. History is kept in $QA_HISTORY, else $XDG_STATE_HOME/qa/history (~/.local/state/qa/history).
Ctrl-C drops the line being typed or cancels the question being answered; Ctrl-D leaves.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text

from qa.api import DEFAULT_TOP_K, MAX_ANSWERS, QA, json_shape
from qa.errors import QAError, Terminated
from qa.interface.view import View, json_line, shown
from qa.search.retrieve import Retrieval

PROMPT = "qa> "
HISTORY_ENV = "QA_HISTORY"
HISTORY_LENGTH = 1000
SEARCH_TOP_K = 10  # as qa search shows

HELP = """\
Type a question and press Enter. Commands:
  :search QUERY   the passages that rank highest for QUERY
  :sources        the citations and every passage read for the last answer
  :explain        turn the reader's reasons (score per passage, threshold) on or off
  :answers N      show the N best distinct answers (default 1, or 3 with :explain)
  :json           turn JSON output (the shape of qa ask --json) on or off
  :rebuild        bring the index up to date after the articles changed
  :help           this list
  :quit           leave (or Ctrl-D)"""

COMMANDS = (":search", ":sources", ":explain", ":answers", ":json", ":rebuild", ":help", ":quit")


def history_file() -> Path:
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV])
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "qa" / "history"


class Chat:
    """What each line typed at the prompt does; the terminal loop is `run`."""

    def __init__(self, qa: QA, view: View, retrieval: Retrieval = Retrieval(), top_k: int = DEFAULT_TOP_K,
                 reader: str | None = None, explain: bool = False, answers: int | None = None):
        self.qa = qa
        self.view = view
        self.retrieval = retrieval
        self.top_k = top_k
        self.reader = reader
        self.explain = explain
        self.answers = answers  # None: as --answers's default
        self.json = False
        self.last: dict | None = None
        self._change_told: str | None = None

    def greeting(self) -> str:
        about = self.qa.summary()
        return (f"{about['articles']} articles, {about['passages']} passages in {shown(about['index'])}. "
                "Type a question; :help lists the commands, Ctrl-D leaves.")

    def handle(self, line: str) -> bool:
        """Act on one line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith(":"):
            self._ask(line)
            return True
        name, _, argument = line.partition(" ")
        if name in (":quit", ":q", ":exit"):
            return False
        if name == ":help":
            self.view.console.print(HELP, markup=False, highlight=False)
        elif name == ":json":
            self.json = not self.json
            self._say(f"JSON output {'on' if self.json else 'off'}")
        elif name == ":explain":
            self.explain = not self.explain
            self._say(f"explanations {'on' if self.explain else 'off'}")
        elif name == ":answers":
            self._set_answers(argument)
        elif name == ":search":
            self._search(argument)
        elif name == ":sources":
            self._sources()
        elif name == ":rebuild":
            self._rebuild()
        else:
            self._say(f"unknown command {shown(name)}; :help lists the commands", style="yellow")
        return True

    def _set_answers(self, argument: str) -> None:
        if not argument.strip().isdigit() or not 1 <= int(argument) <= MAX_ANSWERS:
            self._say(f":answers takes a number from 1 to {MAX_ANSWERS}, e.g. :answers 3", style="yellow")
            return
        self.answers = int(argument)
        self._say(f"showing up to {self.answers} answer(s)")

    def _say(self, message: str, style: str = "dim") -> None:
        self.view.console.print(f"[{style}]{message}[/]")

    def _notice_changes(self) -> None:
        """Say once per change that the articles moved on since the index was loaded."""
        reason = self.qa.staleness()
        if reason is not None and reason != self._change_told:
            self._say(f"the articles changed since the index was loaded ({shown(reason)}); answers still come "
                      "from the loaded index; :rebuild brings it up to date", style="yellow")
        self._change_told = reason

    def _ask(self, question: str) -> None:
        self._notice_changes()
        result = self.qa.ask(question, self.top_k, self.retrieval, self.reader, self.explain, self.answers)
        self.last = result
        if self.json:
            self.view.console.out(json_line(json_shape(result)), highlight=False)
        else:
            self.view.answer(result, explain=self.explain)

    def _search(self, query: str) -> None:
        self._notice_changes()
        passages = self.qa.search(query, k=SEARCH_TOP_K, retrieval=self.retrieval)
        if self.json:
            self.view.console.out(json_line({"query": query.strip(), "passages": passages}), highlight=False)
        else:
            self.view.passages(passages, title=f"Passages for: {shown(query.strip())}")

    def _sources(self) -> None:
        if self.last is None:
            self._say("no question asked yet", style="yellow")
            return
        for number, citation in enumerate(self.last["citations"], 1):
            self.view.console.print(Text(f"[{number}] ") + self.view.citation_line(citation))
            self.view.console.print(f"    “{shown(citation['quote'])}”")
        self.view.passages(self.last["passages"], title=f"Passages read for: {shown(self.last['question'])}")

    def _rebuild(self) -> None:
        report = self.qa.build()
        self._change_told = None
        verb = "rebuilt" if report.built else "already up to date:"
        self._say(f"index {verb} {report.files} articles, {report.passages} passages "
                  f"({report.embedded} embedded) in {report.seconds:.1f}s", style="green")


def run(chat: Chat, history: Path | None) -> None:
    """The prompt loop: readline editing and history where the terminal allows it."""
    editing = _setup_readline(history)
    console = chat.view.console
    try:
        while True:
            known = editing.get_current_history_length() if editing is not None else 0
            try:
                line = input(PROMPT)
            except EOFError:  # Ctrl-D
                console.print()
                return
            except KeyboardInterrupt as exc:  # Ctrl-C at the prompt drops the line, as in bash
                if isinstance(exc, Terminated):
                    raise
                console.print()
                continue
            if editing is not None and history is not None:
                _append_history(editing, history, editing.get_current_history_length() - known)
            try:
                if not chat.handle(line):
                    return
            except KeyboardInterrupt as exc:
                if isinstance(exc, Terminated):
                    raise
                console.print("[yellow]cancelled[/]")
            except QAError as exc:
                console.print(f"[bold red]error:[/] {shown(str(exc))}")
    finally:
        if editing is not None and history is not None:
            try:
                editing.write_history_file(history)  # trims the file to HISTORY_LENGTH entries
            except OSError:
                pass


def _setup_readline(history: Path | None):
    try:
        import readline
    except ImportError:  # Python built without it: plain input() still works
        return None
    readline.set_history_length(HISTORY_LENGTH)
    if history is not None and history.is_file():
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    readline.set_completer(lambda text, state: ([c for c in COMMANDS if c.startswith(text)] + [None])[state])
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")
    return readline


def _append_history(readline, history: Path, added: int) -> None:
    """Each line is written at once, so a session that is killed keeps what was typed (readline
    adds no line twice in a row, hence `added`, which may be 0)."""
    if added <= 0:
        return
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        if not history.exists():
            history.touch()
        readline.append_history_file(added, history)
    except OSError:
        pass
