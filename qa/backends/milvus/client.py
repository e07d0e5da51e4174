"""Talking to Milvus: where it is, every failure said in one line, rows read a batch at a time.

One client code for Milvus Lite (`--milvus-uri ./milvus.db`: embedded, one process at a time) and
a Milvus server or cluster (`--milvus-uri http://host:19530`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from qa.errors import QAError
from qa.index import store

DEFAULT_COLLECTION = "qa_passages"
BATCH_ROWS = 1000  # rows per insert: ~4 MB of vectors and text, well under gRPC's 64 MB


class MilvusError(store.StoreError):
    """Milvus cannot be reached, holds something else under the name, or refuses an operation."""

    def __init__(self, problem: str, advice: str | None = None):
        super().__init__(problem, advice)


@dataclass(frozen=True)
class MilvusConfig:
    uri: str  # a local file path (Milvus Lite) or http(s)://host:port
    collection: str = DEFAULT_COLLECTION
    token: str | None = None  # "user:password" or an API key, for a server that wants one

    @property
    def local(self) -> bool:
        return "://" not in self.uri


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed call with a traceback (and Lite's server the calls it does not
    implement); qa says what went wrong in one line."""
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(config: MilvusConfig):
    # gRPC's core logs to stderr on its own (a Lite server's "too_many_pings" reconnects among
    # them); what fails reaches qa as an exception and is said in one line.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise QAError("the milvus backend needs the milvus extra: pip install 'qa[milvus]'") from None
    _quiet_pymilvus()
    if config.local:
        path = Path(config.uri).expanduser()
        if not path.parent.is_dir():
            raise MilvusError(f"cannot create the Milvus Lite database {config.uri}: folder {path.parent} is missing")
    try:
        return MilvusClient(uri=config.uri, token=config.token or "")
    except Exception as exc:  # pymilvus wraps gRPC, Lite and config errors alike
        if config.local:
            raise MilvusError(f"cannot open the Milvus Lite database {config.uri} ({_reason(exc)}); Milvus Lite "
                              "lets one process open it at a time: stop the other one (a `qa serve` or "
                              "`qa chat`?) or use a Milvus server") from None
        raise MilvusError(f"cannot reach Milvus at {config.uri} ({_reason(exc)})",
                          advice="check the URI, the server and the token in QA_MILVUS_TOKEN") from None


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0][:200]


class Connection:
    """A client, made on first use, whose calls fail as one MilvusError naming the URI."""

    def __init__(self, config: MilvusConfig):
        self.config = config
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.config)
        return self._client

    def call(self, method: str, *args, **kwargs):
        """The client's `method`, called."""
        return self._guarded(getattr(self.client, method), *args, **kwargs)

    def _guarded(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except QAError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException and gRPC errors
            raise MilvusError(f"Milvus at {self.config.uri} failed: {_reason(exc)}") from None

    def scan(self, collection: str, where: str, fields: list[str]) -> list[dict]:
        return [row for batch in self.batches(collection, where, fields) for row in batch]

    def batches(self, collection: str, where: str, fields: list[str]) -> Iterator[list[dict]]:
        """The rows matching `where`, a batch at a time (a query returns at most 16,384 rows)."""
        self.call("load_collection", collection)
        iterator = self.call("query_iterator", collection, filter=where, output_fields=fields, batch_size=BATCH_ROWS)
        try:
            while batch := self._guarded(iterator.next):
                yield batch
        finally:
            iterator.close()
