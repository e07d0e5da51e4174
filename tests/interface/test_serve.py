"""`qa serve` as a real server on a loopback port: requests, limits, a token, concurrency, shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from qa.api import MAX_ANSWERS, json_shape
from qa.search.retrieve import Retrieval
from tests.conftest import ROOT, SEEDS

pytest.importorskip("fastapi")  # the serve extra; without it these tests are skipped, not failed
pytest.importorskip("uvicorn")

from qa.interface.serve import MAX_ASK_TOP_K, MAX_BODY_BYTES  # noqa: E402  (needs fastapi)

TOKEN = "s3cret-token"
QUESTIONS = ["Who is the chairman of Oracle?", "What is the price of an Nvidia H100 GPU?",
             "who built Stargate data centers", "Who is the CEO of Microsoft?"]


@pytest.fixture(scope="module")
def server(seeds_index):
    """(base URL, process) of `qa serve --port 0 --token TOKEN` over the seeds."""
    process = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", "0", "--corpus", str(SEEDS),
                                "--index", str(seeds_index), "--token", TOKEN],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    found = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
    assert found, f"no 'serving on' line: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
    yield found.group(1), process
    if process.poll() is None:
        process.kill()
        process.wait()


def call(url: str, path: str, body: dict | bytes | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_ask_search_and_health_answer_as_the_cli_does(server, seeds_qa):
    url, _ = server
    status, health = call(url, "/health")
    assert status == 200 and health["status"] == "ok" and health["stale"] is None
    assert health["articles"] == 3 and health["passages"] == len(seeds_qa.all_passages())
    status, data = call(url, "/ask", {"question": QUESTIONS[0]})
    assert status == 200 and data == {**json_shape(seeds_qa.ask(QUESTIONS[0])), "warnings": []}
    status, data = call(url, "/ask", {"question": QUESTIONS[0], "answers": 3})
    assert data == {**json_shape(seeds_qa.ask(QUESTIONS[0], answers=3)), "warnings": []}
    assert len(data["alternatives"]) == 2
    status, data = call(url, "/ask", {"question": QUESTIONS[0], "explain": True, "top_k": 3})
    assert len(data["explain"]["passages"]) == len(data["passages"]) == 3
    status, data = call(url, "/search", {"query": "Stargate data centers", "top_k": 4, "retriever": "bm25"})
    assert status == 200 and data["passages"] == seeds_qa.search("Stargate data centers", k=4, retrieval=Retrieval("bm25"))
    scoped = Retrieval(since="2024-06", sources=("003_*",))
    status, data = call(url, "/search", {"query": "Stargate data centers", "since": "2024-06", "sources": ["003_*"]})
    assert status == 200 and data["passages"] == seeds_qa.search("Stargate data centers", retrieval=scoped)
    assert {p["source"] for p in data["passages"]} == {"003_033a1c9dbcb95f04.txt"}
    status, docs = call(url, "/openapi.json", token=None)
    assert status == 200 and {"/ask", "/search", "/health"} <= set(docs["paths"])


def test_concurrent_requests_get_the_answers_of_sequential_ones(server):
    url, _ = server
    sequential = [call(url, "/ask", {"question": q})[1] for q in QUESTIONS]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda q: call(url, "/ask", {"question": q})[1], QUESTIONS * 2))
    assert concurrent == sequential * 2


@pytest.mark.parametrize("body, status", [
    ({"question": "x", "top_k": MAX_ASK_TOP_K + 1}, 422),
    ({"question": ""}, 422),
    ({"question": "   "}, 422),
    ({"question": "x", "unknown": 1}, 422),
    ({"question": "x", "answers": 0}, 422),
    ({"question": "x", "answers": MAX_ANSWERS + 1}, 422),
    ({"question": "x", "since": "2024-06-13 and more"}, 422),
    ({"question": "x", "until": "June"}, 422),
    ({"question": "x", "sources": ["nothing-matches-*"]}, 422),
    (b"{not json", 422),
    (json.dumps({"question": "x" * (MAX_BODY_BYTES + 10)}).encode(), 413),
])
def test_bad_requests_are_refused_with_a_reason(server, body, status):
    url, _ = server
    code, data = call(url, "/ask", body)
    assert code == status and data["detail"]


def test_the_token_is_required(server):
    url, _ = server
    assert call(url, "/health", token=None)[0] == 401
    assert call(url, "/ask", {"question": QUESTIONS[0]}, token="wrong")[0] == 401


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qa", "serve", "--host", "0.0.0.0", "--index", str(tmp_path / "i")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "QA_TOKEN": ""})
    assert result.returncode == 2 and "refusing to serve on 0.0.0.0 without a token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "i").exists()


def test_ctrl_c_stops_the_server_cleanly(server):
    url, process = server
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in process.stderr.read()
