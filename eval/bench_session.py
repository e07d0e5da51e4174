"""What a long-lived process saves: `qa chat` and `qa serve` against a fresh `qa ask` per question.

    python -m eval.bench_session [--json OUT] [--cold-runs 5]

On the seeds and their gold questions (eval/gold.jsonl, read for its questions only), in one run:
- cold: a fresh `qa ask --json` process per question (median over --cold-runs questions);
- chat: one `qa chat` process fed the questions on a pipe, each timed from the line written to
  the next prompt shown (p50/p95); what a person at the prompt waits;
- serve: one `qa serve` on a loopback port, POST /ask per question from one client (p50/p95), and
  the throughput of four clients at once against one client.
Ratios are against the cold ask measured in the same run. Runs vary by 10-30% on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import typer

from eval.metrics import percentile
from eval.results import write_results
from qa.api import QA
from qa.interface.chat import PROMPT

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def gold_questions() -> list[str]:
    lines = (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def qa_command(*args: str, index: Path) -> list[str]:
    return [sys.executable, "-m", "qa", *args, "--corpus", str(SEEDS), "--index", str(index)]


def cold_asks(questions: list[str], index: Path) -> list[float]:
    times = []
    for question in questions:
        started = time.perf_counter()
        subprocess.run(qa_command("ask", question, "--json", index=index), check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def chat_answers(questions: list[str], index: Path) -> list[float]:
    """Seconds from each question written to `qa chat` to its next prompt."""
    process = subprocess.Popen(qa_command("chat", index=index), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env={**os.environ, "QA_HISTORY": os.devnull})
    shown = b""

    def until_prompt() -> None:
        nonlocal shown
        while not shown.endswith(PROMPT.encode()):
            select.select([process.stdout], [], [], 60)
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"qa chat ended: {shown[-500:]!r}")
            shown += chunk
        shown = b""

    try:
        until_prompt()
        process.stdin.write(b":json\n")
        process.stdin.flush()
        until_prompt()
        times = []
        for question in questions:
            started = time.perf_counter()
            process.stdin.write(question.encode() + b"\n")
            process.stdin.flush()
            until_prompt()
            times.append(time.perf_counter() - started)
        return times
    finally:
        process.kill()
        process.wait()


def served_answers(questions: list[str], index: Path) -> tuple[list[float], float, float]:
    """(seconds per POST /ask from one client, questions/s with one client, with four)."""
    process = subprocess.Popen(qa_command("serve", "--port", "0", index=index), stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"serving on (\S+)", process.stderr.readline()).group(1)

        def ask(question: str) -> float:
            request = urllib.request.Request(url + "/ask", json.dumps({"question": question}).encode(),
                                             {"Content-Type": "application/json"})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            return time.perf_counter() - started

        started = time.perf_counter()
        times = [ask(q) for q in questions]
        one_client = len(questions) / (time.perf_counter() - started)
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(ask, questions))
        four_clients = len(questions) / (time.perf_counter() - started)
        return times, one_client, four_clients
    finally:
        process.terminate()
        process.wait()


def main(json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here."),
         cold_runs: int = typer.Option(5, help="Fresh `qa ask` processes timed.")) -> None:
    questions = gold_questions()
    with tempfile.TemporaryDirectory(prefix="qa-bench-session-") as work:
        index = Path(work) / "index"
        QA(SEEDS, index).build()
        cold = cold_asks(questions[:cold_runs], index)
        chat = chat_answers(questions, index)
        served, one_client, four_clients = served_answers(questions, index)
    cold_s = statistics.median(cold)
    report = {
        "questions": len(questions),
        "cold_ask_s_median": round(cold_s, 3),
        "chat_ms_p50": round(percentile(chat, 50) * 1000, 1), "chat_ms_p95": round(percentile(chat, 95) * 1000, 1),
        "chat_ratio_to_cold": round(percentile(chat, 50) / cold_s, 3),
        "serve_ms_p50": round(percentile(served, 50) * 1000, 1),
        "serve_ms_p95": round(percentile(served, 95) * 1000, 1),
        "serve_questions_per_s": {"one_client": round(one_client, 2), "four_clients": round(four_clients, 2)},
    }
    print(json.dumps(report, indent=1))
    if json_out:
        write_results(json_out, report)


if __name__ == "__main__":
    typer.run(main)
