"""`qa serve`: the answers of `qa ask --json` over a local HTTP JSON API (the `serve` extra).

FastAPI for the routes, their validation and the OpenAPI page at /docs; uvicorn to serve them.
One `QA` is loaded before the first request and shared by every request: the query encoder and
the reader are onnxruntime sessions, which serve concurrent runs, and FastAPI runs these routes
in its thread pool. It binds 127.0.0.1 by default; bound to anything else it refuses to start
without a token, which every route (not the docs page) then requires (`Authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import time
from dataclasses import replace
from typing import Callable, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from qa.api import DEFAULT_TOP_K, MAX_ANSWERS, QA, json_shape
from qa.errors import QAError, QuestionError
from qa.search.retrieve import DATE_BOUND, FUSIONS, RETRIEVERS, Retrieval

TOKEN_ENV = "QA_TOKEN"
MAX_BODY_BYTES = 16 * 1024
MAX_TEXT_CHARS = 2000  # far longer than any question; the reader reads its first 64 word pieces
MAX_ASK_TOP_K = 20  # each passage read costs ~60 ms of reader time
MAX_SEARCH_TOP_K = 100
MAX_SOURCES = 50
DATE_PATTERN = f"^{DATE_BOUND.pattern}$"
STALENESS_TTL_SECONDS = 5.0  # a check stats every article; at most this often


class Ranking(BaseModel):
    """Which passages a request may read and how they are ranked (the CLI's ranking options)."""

    model_config = ConfigDict(extra="forbid")
    retriever: Literal[RETRIEVERS] | None = None
    fusion: Literal[FUSIONS] | None = None
    alpha: float | None = Field(None, ge=0.0, le=1.0)
    since: str | None = Field(None, pattern=DATE_PATTERN, description="only articles dated on or after this "
                              "(YYYY, YYYY-MM or YYYY-MM-DD); articles with no known date are left out")
    until: str | None = Field(None, pattern=DATE_PATTERN, description="only articles dated on or before this")
    sources: list[str] | None = Field(None, max_length=MAX_SOURCES,
                                      description="only articles whose path in the corpus matches one of these globs")


class AskRequest(Ranking):
    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_ASK_TOP_K)
    explain: bool = False
    answers: int | None = Field(None, ge=1, le=MAX_ANSWERS, description="the N best distinct answers: the answer "
                                "or best guess, then N-1 in `alternatives` (default 1, or 3 with explain)")


class SearchRequest(Ranking):
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    top_k: int = Field(10, ge=1, le=MAX_SEARCH_TOP_K)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(qa: QA, token: str | None = None, reader: str | None = None,
               retrieval: Retrieval = Retrieval()) -> FastAPI:
    """The API over one loaded `qa`; a request's retriever, fusion, alpha, dates and sources override `retrieval`'s."""
    staleness = _cached(qa.staleness, STALENESS_TTL_SECONDS)
    app = FastAPI(title="qa", summary="Answers from a folder of news articles, citing the exact source text.",
                  dependencies=[Depends(_token_check(token))])
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    def warnings() -> list[str]:
        reason = staleness()
        return [] if reason is None else [
            f"the articles changed since the server loaded the index ({reason}); restart it to answer from them"]

    def chosen(request: AskRequest | SearchRequest) -> Retrieval:
        given = {name: getattr(request, name) for name in ("retriever", "fusion", "alpha", "since", "until")}
        if request.sources is not None:
            given["sources"] = tuple(request.sources)
        return replace(retrieval, **{name: value for name, value in given.items() if value is not None})

    @app.get("/health")
    def health() -> dict:
        """What the server answers from, and whether the articles changed since it loaded them."""
        return {"status": "ok", **qa.summary(), "stale": staleness()}

    @app.post("/ask")
    def ask(request: AskRequest) -> dict:
        """The answer, as `qa ask --json` prints it."""
        result = _answering(lambda: qa.ask(request.question, request.top_k, chosen(request), reader,
                                           request.explain, request.answers))
        return {**json_shape(result), "warnings": warnings()}

    @app.post("/search")
    def search(request: SearchRequest) -> dict:
        """The ranked passages, as `qa search --json` prints them."""
        passages = _answering(lambda: qa.search(request.query, request.top_k, chosen(request)))
        return {"query": request.query.strip(), "passages": passages, "warnings": warnings()}

    return app


def serve(qa: QA, host: str, port: int, token: str | None, on_ready: Callable[[str], None],
          reader: str | None = None, retrieval: Retrieval = Retrieval()) -> None:
    """Load everything, bind, then serve until Ctrl-C or SIGTERM, which stop it cleanly (exit 0)."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise QAError(f"refusing to serve on {host} without a token (anyone who can reach it could ask): "
                      f"pass --token or set {TOKEN_ENV}")
    qa.warm(reader)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise QAError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    listener.listen(128)
    bound = listener.getsockname()[1]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(create_app(qa, token, reader, retrieval), log_level="warning", access_log=False)
    on_ready(f"http://{shown_host}:{bound}")
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C or SIGTERM, then raises the signal again
        pass


class BodyLimit:
    """Reject request bodies over `limit` bytes with 413, declared or chunked, before any route reads them."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _too_large(self.limit)(scope, receive, send)
            messages.append(message)
            if not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def _token_check(token: str | None):
    def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})

    return check


def _answering(work: Callable):
    """A question's own problem is the client's (422); anything else the index's (503)."""
    try:
        return work()
    except QuestionError as exc:
        raise HTTPException(422, str(exc)) from None
    except QAError as exc:
        raise HTTPException(503, str(exc)) from None


def _cached(function: Callable, seconds: float) -> Callable:
    state = {"at": -float("inf"), "value": None}

    def cached():
        now = time.monotonic()
        if now - state["at"] >= seconds:
            state["value"], state["at"] = function(), now
        return state["value"]

    return cached
