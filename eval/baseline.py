"""This checkout's answer stage and cold `qa ask` against an older git commit's, measured in the
same run (`python -m eval.bench --baseline REF`): the older commit is checked out in a temporary
git worktree and run with this venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eval.metrics import percentile
from eval.workload import ROOT, cold_runs

ANSWER_STAGE = """
import json, sys, time
from qa.api import QA
{imports}
qa = QA(sys.argv[1], sys.argv[2])
questions = json.loads(sys.argv[3])
qa.ask(questions[0])
times = []
for question in questions:
{body}
print(json.dumps(times))
"""
READER_STAGE = ("    _, passages = qa.passages_for(question)\n    t = time.perf_counter()\n"
                "    answer(question, passages, load_shipped_reader())\n    times.append((time.perf_counter() - t) * 1000)")
STAGES = (  # the answer stage of each layout the project has had, newest first: (a file that marks it, code)
    ("qa/reading/read.py", ANSWER_STAGE.format(
        imports="from qa.reading.answer import answer\nfrom qa.reading.read import load_shipped_reader", body=READER_STAGE)),
    ("qa/read.py", ANSWER_STAGE.format(
        imports="from qa.answer import answer\nfrom qa.read import load_shipped_reader", body=READER_STAGE)),
    ("qa/answer.py", ANSWER_STAGE.format(  # before the transformer reader: qa.reading + answer.answer
        imports="from qa import answer as answerer",
        body="    reading = qa.reading(question)\n    t = time.perf_counter()\n"
             "    answerer.answer(question, reading)\n    times.append((time.perf_counter() - t) * 1000)")),
)


def stage_of(checkout: Path) -> str:
    return next(code for marker, code in STAGES if (checkout / marker).exists())


def command_of(checkout: Path) -> list[str]:
    """`python -m qa`, or `-m qa.cli` for checkouts from before qa/__main__.py."""
    return [sys.executable, "-m", "qa" if (checkout / "qa" / "__main__.py").exists() else "qa.cli"]


def side_by_side(ref: str, work: Path) -> dict:
    """Seeds answer stage and cold ask of this checkout and of git commit `ref`, in one run."""
    tree = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    try:
        questions = json.dumps([json.loads(line)["question"]
                                for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if line.strip()])
        out = {}
        for label, checkout in (("current", ROOT), (f"baseline {ref}", tree)):
            stage = stage_of(checkout)
            index = work / f"side-index-{len(out)}"
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            seeds = str(checkout / "seeds")
            times = json.loads(subprocess.run([sys.executable, "-c", stage, seeds, str(index), questions], cwd=checkout,
                                              env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            ask_s, rss = cold_runs([*command_of(checkout), "ask", "who built Stargate data centers", "--json",
                                    "--corpus", seeds, "--index", str(index)], env=env, cwd=checkout)
            out[label] = {"answer_ms_p50": round(percentile(times, 50), 1), "answer_ms_p95": round(percentile(times, 95), 1),
                          "cold_ask_s": round(ask_s, 3), "peak_rss_mb": round(rss, 1)}
        return out
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
