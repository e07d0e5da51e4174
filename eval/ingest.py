"""Score how qa reads saved web pages, with the snippets of trafilatura's public benchmark.

    git clone --depth 1 https://github.com/adbar/trafilatura eval/data/trafilatura   # git-ignored
    python -m eval.ingest [--pages eval/data/trafilatura] [--json eval/results/ingest.json]

Each annotated page (tests/evaldata.json: 990 pages of news sites, magazines, blogs and public
bodies in many languages) lists text that must be in its article ("with") and boilerplate that
must not ("without"). The text scored is what `qa index` stores and cites: the article's body as
`qa.corpus.ingest.read_article` reads it from the file. Counted as the benchmark counts (whitespace-
normalized substring matches): precision, recall and F1 over snippets, pages read, pages with a
date (and with the annotated date), pages with the annotated author. Side by side, in the same
run: qa's former reader (tags filtered, `qa.corpus.webpage.html_to_text` and the furniture rules) and
trafilatura's own `extract()` on the file's bytes. Reported for every page and for the pages of
news outlets (NEWS_HOSTS: newspapers, broadcasters, agencies and news sites, by host).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from eval.metrics import percentile
from eval.results import write_results
from qa.corpus.ingest import CorpusFile, Unreadable, read_article
from qa.corpus.metadata import body_span, find_date
from qa.corpus.webpage import decode_page, html_to_text

console = Console(highlight=False, width=150)

NEWS_HOSTS = set("""
24horas.cl abc13.com abc7news.com ambito.com axios.com badische-zeitung.de bbc.com biobiochile.cl bostonherald.com
brasil247.com californiaglobe.com campograndenews.com.br caymancompass.com cbsnews.com citylimits.org clarin.com
cooperativa.cl corkbeo.ie correio24horas.com.br correiobraziliense.com.br dailymail.co.uk deutschlandfunk.de
dorzeczy.pl dw.com economictimes.indiatimes.com economist.com edition.cnn.com elcolombiano.com elcomercio.pe
eldeber.com.bo elespectador.com elmostrador.cl elnacional.com elnuevodia.com elpais.com elpais.com.uy eltiempo.com
eluniversal.com express.de faz.net focus.de fr.de freitag.de gazetadopovo.com.br gothamist.com handelsblatt.com
hessenschau.de hoy.com.py independent.co.uk infobae.com japantimes.co.jp kxan.com lacuarta.com ladiaria.com.uy
lanacion.com.ar lapresse.tn larepublica.pe lastampa.it latercera.com latimes.com ledevoir.com libero.pe ln-online.de
lopinion.fr losandes.com.ar lostiempos.com mdr.de metrotimes.com miamitodaynews.com minuto30.com mopo.de mz-web.de
nachrichten.at ndr.de neues-deutschland.de newrepublic.com nytimes.com nzz.ch observer.com osthessen-news.de
pagesix.com pagina12.com.ar paginasiete.bo phillyvoice.com politico.com polityka.pl publimetro.cl reuters.com rnz.de
rp.pl rundschau-online.de salon.com scmp.com spiegel.de standard.co.uk stern.de sueddeutsche.de swr.de tag24.de
tagblatt.ch tagesanzeiger.ch tagesschau.de tagesspiegel.de taz.de tdg.ch telebasel.ch telegraph.co.uk theatlantic.com
theguardian.com theintercept.com thelocal.se timesofisrael.com trome.pe twincities.com ultimahora.com
ultimasnoticias.com.ve uusisuomi.fi vancouversun.com villagevoice.com watson.ch welt.de wiadomosci.dziennik.pl
wiadomosci.gazeta.pl wien.orf.at world.kbs.co.kr wsvn.com www1.wdr.de www3.nhk.or.jp xinhuanet.com yle.fi zdf.de
zeit.de
""".split())
"""News outlets among the benchmark's hosts, chosen by name before any page was scored."""


def host(url: str) -> str:
    return re.sub(r"^https?://(www\.)?", "", url).split("/")[0]


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def qa_now(path: Path) -> dict:
    try:
        article = read_article(CorpusFile(path, path.name, path.stat().st_size, 0))
    except Unreadable:
        return {"text": None}
    return {"text": article.text[article.body_start : article.body_end], "date": article.date,
            "author": article.author}


def qa_before(path: Path) -> dict:
    """qa's reader before trafilatura: visible text with nav/footer/aside dropped, then the furniture rules."""
    text, _ = html_to_text(decode_page(path.read_bytes()))
    start, end = body_span(text)
    return {"text": text[start:end] or None, "date": find_date(text), "author": None}


def trafilatura_default(path: Path) -> dict:
    import trafilatura

    found = trafilatura.bare_extraction(path.read_bytes(), with_metadata=True)
    return {"text": found.text if found else None, "date": found.date if found else None,
            "author": found.author if found else None}


READERS: dict[str, Callable[[Path], dict]] = {
    "qa (trafilatura, favor_precision)": qa_now,
    "qa before (tag filter)": qa_before,
    "trafilatura extract() default": trafilatura_default,
}


def score(pages: list[tuple[str, dict, Path]], read: Callable[[Path], dict]) -> dict:
    tp = fp = fn = 0
    read_count = dated = right_date = authors = right_author = 0
    times = []
    for _, item, path in pages:
        began = time.perf_counter()
        try:
            got = read(path)
        except Exception:  # a reader that crashes on a page scores that page as unread
            got = {"text": None}
        times.append((time.perf_counter() - began) * 1000)
        text = norm(got["text"]) if got.get("text") else None
        hits = sum(norm(w) in text for w in item["with"]) if text else 0
        leaks = sum(norm(w) in text for w in item["without"]) if text else 0
        tp, fp, fn = tp + hits, fp + leaks, fn + len(item["with"]) - hits
        read_count += text is not None
        dated += bool(got.get("date"))
        right_date += bool(item.get("date")) and got.get("date") == item.get("date")
        authors += bool(item.get("author"))
        right_author += bool(item.get("author")) and got.get("author") == item.get("author")
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"pages": len(pages), "read": read_count, "precision": round(precision, 3), "recall": round(recall, 3),
            "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3), "dated": dated,
            "date_right": right_date, "dates_annotated": sum(bool(i.get("date")) for _, i, _ in pages),
            "author_right": right_author, "authors_annotated": authors,
            "ms_per_page_median": round(percentile(times, 50), 1)}


def load_pages(folder: Path) -> list[tuple[str, dict, Path]]:
    tests = folder / "tests"
    annotations = tests / "evaldata.json"
    if not annotations.exists():
        raise typer.BadParameter(f"{annotations} not found; clone the benchmark first: git clone --depth 1 "
                                 "https://github.com/adbar/trafilatura eval/data/trafilatura")
    pages = []
    for url, item in sorted(json.loads(annotations.read_text(encoding="utf-8")).items()):
        path = next((tests / sub / item["file"] for sub in ("cache", "eval") if (tests / sub / item["file"]).is_file()), None)
        if path is not None:
            pages.append((url, item, path))
    return pages


def main(pages_folder: Path = typer.Option(Path("eval/data/trafilatura"), "--pages", help="A checkout of adbar/trafilatura."),
         json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures here.")) -> None:
    pages = load_pages(pages_folder)
    subsets = {"news outlets": [p for p in pages if host(p[0]) in NEWS_HOSTS], "all pages": pages}
    report = {"benchmark": "adbar/trafilatura tests/evaldata.json", "subsets": {}}
    for subset, chosen in subsets.items():
        table = Table(title=f"{subset} ({len(chosen)} pages)", title_justify="left")
        for column in ("reader", "precision", "recall", "F1", "read", "dated", "date right", "author right", "ms/page"):
            table.add_column(column, justify="left" if column == "reader" else "right")
        report["subsets"][subset] = {}
        for name, read in READERS.items():
            figures = score(chosen, read)
            report["subsets"][subset][name] = figures
            table.add_row(name, f"{figures['precision']:.3f}", f"{figures['recall']:.3f}", f"{figures['f1']:.3f}",
                          str(figures["read"]), str(figures["dated"]),
                          f"{figures['date_right']}/{figures['dates_annotated']}",
                          f"{figures['author_right']}/{figures['authors_annotated']}", f"{figures['ms_per_page_median']}")
        console.print(table)
    if json_out:
        write_results(json_out, report)


if __name__ == "__main__":
    typer.run(main)
