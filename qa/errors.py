"""The exception types the CLI turns into a one-line message and a non-zero exit."""


class QAError(Exception):
    """Something a user can fix; the message says what is wrong and what to do."""


class ModelError(QAError):
    """The embedding model cannot be loaded or is not the one it claims to be."""


class QuestionError(QAError):
    """This question or query cannot be asked (it is empty); other questions still can."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup runs (staging removed, terminal restored)."""


def interruption(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The one line and the exit status (128 + signal number) for Ctrl-C or SIGTERM."""
    return ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
