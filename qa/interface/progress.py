"""Progress bars on stderr while an index is embedded or a question file answered; every bar on
screen is stopped on any way out (`stop_all`), so the terminal's cursor comes back."""

from __future__ import annotations

from typing import Callable

from rich.console import Console

_live: list = []


def stop_all() -> None:
    while _live:
        _live.pop().stop()


def embedding(console: Console) -> Callable[[int, int], None] | None:
    """A bar driven by (done, total) callbacks, with passages/s and time left; None off a terminal."""
    if not console.is_terminal:
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
                                TimeRemainingColumn(), console=console, transient=True)
            state["progress"] = progress
            state["task"] = progress.add_task("embed", total=total, rate="")
            progress.start()
            _live.append(progress)
        progress = state["progress"]
        task = progress.tasks[0]
        rate = f"{task.speed:.0f} passages/s" if task.speed else ""
        progress.update(state["task"], completed=done, total=total, rate=rate)
        if done >= total:
            progress.stop()
            _live.remove(progress)
            state.clear()

    return update


def answering(console: Console, total: int | None) -> Callable[[], None] | None:
    """A bar advanced once per answered question; `total` None (stdin) counts without an end."""
    if not console.is_terminal or total == 0:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    task = progress.add_task("answer", total=total)
    progress.start()
    _live.append(progress)

    def advance() -> None:
        progress.advance(task)

    return advance
