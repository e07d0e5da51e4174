"""eval/bench.py's figures as tables at the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from qa.search.embed import BATCH_SIZE
from qa.search.onnx_encoder import BUILD_WORKERS

console = Console(highlight=False, width=150)


def show(report: dict) -> None:
    if "side_by_side" in report:
        table = Table(title="seeds, side by side: answer stage (ms) and cold qa ask (s)", title_justify="left")
        for column in ("checkout", "answer p50", "answer p95", "cold ask", "peak RSS MB"):
            table.add_column(column, justify="right")
        for label, row in report["side_by_side"].items():
            table.add_row(label, str(row["answer_ms_p50"]), str(row["answer_ms_p95"]), str(row["cold_ask_s"]),
                          str(row["peak_rss_mb"]))
        console.print(table)
    if "build" not in report:
        return
    b = report["build"]
    table = Table(title=f"build throughput, {b['passages']} passages of {b['words_per_passage']} words on average "
                        f"(torch model.encode, as builds did before: {b['torch_encode_per_s']} passages/s)", title_justify="left")
    one_call = f"one_call_batch_{BATCH_SIZE}_per_s"
    for column in ("precision", "raw onnxruntime /s", "qa index rebuild /s", "ratio",
                   f"one {BUILD_WORKERS}-thread call, batch {BATCH_SIZE} /s", "first build (export) s"):
        table.add_column(column, justify="right")
    for name, row in b["precisions"].items():
        table.add_row(name, str(row["raw_onnx_per_s"]), str(row["build_per_s"]), str(row["ratio"]),
                      str(row[one_call]), str(row["first_build_s"]))
    console.print(table)
    if "real" in b:
        r = b["real"]
        console.print(f"[bold]real build[/] (fresh `qa index` process, {r['precision']}): {r['passages']} passages in "
                      f"{r['wall_s']} s, {r['passages_per_s']} passages/s, peak RSS {r['peak_rss_mb']} MB")
    if "synthetic" in b:
        r = b["synthetic"]
        console.print(f"[bold]build with synthetic vectors[/]: {r['passages']} passages in {r['wall_s']} s, "
                      f"peak RSS {r['peak_rss_mb']} MB")
    if "query" not in report:
        return
    table = Table(title="warm query latency, ms (p50; hybrid p50/p95)", title_justify="left")
    for column in ("passages", "vectors", "bm25", "dense", "fusion", "answer", "hybrid p50", "hybrid p95", "index"):
        table.add_column(column, justify="right")
    for row in report["query"].values():
        table.add_row(str(row["passages"]), row["vectors"], f"{row['bm25_ms_p50']}", f"{row['dense_ms_p50']}",
                      f"{row['fusion_ms_p50']}", f"{row['answer_ms_p50']}", f"{row['hybrid_ms_p50']}",
                      f"{row['hybrid_ms_p95']}",
                      f"{row['bm25']} + {row['dense_index']}")
    console.print(table)
    if "hnsw" in report:
        h = report["hnsw"]
        console.print(f"[bold]HNSW[/] (M={h['M']}, efSearch={h['efSearch']}) over {h['passages']} vectors: recall@10 "
                      f"{h['recall@10']} against exact, {h['query_ms_p50']} ms per query, built in {h['build_s']} s")
    c = report["cold_ask"]
    console.print(f"[bold]cold qa ask[/] (seeds): {c['ask_s']} s vs import sentence_transformers {c['import_st_s']} s, "
                  f"ratio {c['ratio']}"
                  + (f"; at {c['largest_passages']} passages {c['largest_ask_s']} s" if "largest_ask_s" in c else ""))
    console.print(f"[bold]peak RSS[/] of qa ask: {report['peak_rss_mb']} MB")
