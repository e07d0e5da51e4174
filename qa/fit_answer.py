"""Fit the answerer's weights (qa/answer_weights.json) on SQuAD-format data.

    python -m qa.fit_answer --data ../shared/data/squad/squad2-dev-a.json --per-file 3000 \\
        --gold eval/gold.jsonl [--seed 0]

squad1-dev-40 is left out of the weights shipped: the span networks (qa/span_net.py), whose scores
are features here, were trained on 32 of its 40 articles, and on text they were trained on those
scores look better than they are on new text, so the scorer would lean on them too much.
squad2-dev-a's 8 articles and the seeds are text the networks never saw.

For each sampled question the real pipeline retrieves passages over the file's whole corpus and
lists candidate spans with their features (nothing here is specific to any question or article).
1. Span scorer: a listwise logistic model, the softmax over a question's candidates, trained
   to put its probability on the spans equal to a gold answer (after SQuAD normalization),
   with L2 regularization.
2. Confidence: logistic regression from the best span's margin, support, kind and span-network
   score (and the question's wh-word) to "this answer is right" (token F1 >= 0.5), on all sampled
   questions, unanswerable ones included, each data set weighing the same in total (so the 38 news
   questions of the gold file are not drowned by thousands of Wikipedia ones).
3. Threshold: the confidence below which the answerer abstains: the lowest one at which every
   data set holding unanswerable questions still sees at least 57% of them abstained
   (MIN_NO_ANSWER): on articles the fit never saw that share falls by 3-7 points, so this
   keeps at least half of their unanswerable questions abstained (`--folds`: 0.526 at 57%,
   0.504 at 55%). Maximizing SQuAD 2.0's overall F1 instead was tried: with squad2-dev-a's 54%
   unanswerable questions it abstains on most answerable ones too (threshold 0.33).
With --gold, a gold JSON-lines file (eval/gold.jsonl) joins the data as a set of its own.
With --folds K it also prints figures on articles the fit never saw (K folds of articles, each
answered by weights fitted on the others), the honest counterpart of the in-sample ones.
The candidates' features are cached (`--cache`, plain .npz and JSON) so a refit after changing
only this script does not run the pipeline again.
"""

from __future__ import annotations

import collections
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from scipy import sparse

from qa import answer as answerer
from qa.api import QA
from qa.squad import best_over_gold, load_gold, load_squad

L2 = 1.0
MIN_NO_ANSWER = 0.57  # the share of the fitted unanswerable questions the answerer must abstain on


@dataclass
class Collected:
    names: list[str]  # feature name of each column
    matrix: sparse.csr_matrix  # one row per candidate, all questions stacked
    offsets: np.ndarray  # question q's rows are offsets[q]:offsets[q + 1]
    labels: np.ndarray  # candidate equals a gold answer
    texts: list[str]  # candidate texts
    answers: list[list[str]]  # gold answers per question ([] = unanswerable)
    terms: list[int]  # content terms per question
    groups: list[str]  # data set of each question
    units: list[str]  # what a cross-validation fold holds out whole: the SQuAD article, or the gold question

    def rows(self, q: int) -> slice:
        return slice(int(self.offsets[q]), int(self.offsets[q + 1]))

    def subset(self, questions: list[int]) -> Collected:
        rows = np.concatenate([np.arange(self.offsets[q], self.offsets[q + 1]) for q in questions])
        sizes = [int(self.offsets[q + 1] - self.offsets[q]) for q in questions]
        return Collected(self.names, self.matrix[rows], np.concatenate([[0], np.cumsum(sizes)]), self.labels[rows],
                         [self.texts[i] for i in rows], [self.answers[q] for q in questions],
                         [self.terms[q] for q in questions], [self.groups[q] for q in questions],
                         [self.units[q] for q in questions])


def sources(data_files: list[Path], per_file: int, seed: int, index_root: Path,
            gold: Path | None, gold_corpus: Path) -> list[tuple[str, QA, list[tuple[str, list[str], str]]]]:
    """(group name, pipeline, [(question, gold answers, unit)]) for each data set to learn from; the
    gold file's questions are their own units, as such a file covers too few articles to hold any out whole."""
    out = []
    for path in data_files:
        articles, questions, _ = load_squad(path)
        questions = random.Random(seed).sample(questions, min(per_file, len(questions)))
        qa = QA(articles, index_root / f"eval-{path.stem}", on_notice=lambda m: typer.echo(m, err=True))
        out.append((path.stem, qa, [(q.question, q.answers, q.source.split("#")[0]) for q in questions]))
    if gold is not None:
        qa = QA(gold_corpus, index_root / "eval-gold", on_notice=lambda m: typer.echo(m, err=True))
        out.append((gold.stem, qa, [(r["question"], r["answers"], r["id"]) for r in load_gold(gold)]))
    return out


def collect(groups: list[tuple[str, QA, list[tuple[str, list[str], str]]]]) -> Collected:
    """Run the pipeline on every question and keep every candidate's features, sparsely."""
    columns: dict[str, int] = {}
    data, indices, indptr = [], [], [0]
    offsets, labels, texts, answers, terms, names, units = [0], [], [], [], [], [], []
    for group, qa, questions in groups:
        for number, (text, gold_answers, unit) in enumerate(questions, 1):
            question = answerer.analyze_question(text)
            gold = {answerer.normalize(a) for a in gold_answers}
            for candidate in answerer.candidates(question, qa.reading(text)):
                for name, value in candidate.features.items():
                    indices.append(columns.setdefault(name, len(columns)))
                    data.append(value)
                indptr.append(len(indices))
                labels.append(answerer.normalize(candidate.text) in gold)
                texts.append(candidate.text)
            offsets.append(len(labels))
            answers.append(gold_answers)
            terms.append(len(question.term_set))
            names.append(group)
            units.append(unit)
            if number % 250 == 0:
                typer.echo(f"{group}: {number}/{len(questions)} questions", err=True)
    matrix = sparse.csr_matrix((np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr, np.int64)),
                               shape=(len(labels), len(columns)))
    features = sorted(columns, key=columns.get)
    return Collected(features, matrix, np.array(offsets), np.array(labels, bool), texts, answers, terms, names, units)


def save(collected: Collected, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    m = collected.matrix
    np.savez(folder / "features.npz", data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
             offsets=collected.offsets, labels=collected.labels)
    (folder / "meta.json").write_text(json.dumps({
        "names": collected.names, "texts": collected.texts, "answers": collected.answers, "terms": collected.terms,
        "groups": collected.groups, "units": collected.units,
    }, ensure_ascii=False), encoding="utf-8")


def load(folder: Path) -> Collected:
    arrays = np.load(folder / "features.npz", allow_pickle=False)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    matrix = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"]))
    return Collected(meta["names"], matrix, arrays["offsets"], arrays["labels"], meta["texts"], meta["answers"],
                     meta["terms"], meta["groups"], meta["units"])


def fit_span_scorer(c: Collected) -> np.ndarray:
    """Weights maximizing the log softmax probability of the gold spans, question by question."""
    from scipy.optimize import minimize

    trainable = [q for q in range(len(c.answers)) if c.labels[c.rows(q)].any()]
    blocks = [(c.matrix[c.rows(q)].astype(np.float64), c.labels[c.rows(q)]) for q in trainable]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = L2 * 0.5 * w @ w, L2 * w
        for x, y in blocks:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            gold_mass = p[y].sum() + 1e-12
            total -= np.log(gold_mass)
            # d/dw of -log(sum of gold p) = E_p[x] - E_{p restricted to gold}[x]
            q = -p * (y / gold_mass)
            grad += x.T @ (p + q)
        return total, grad

    result = minimize(loss, np.zeros(len(c.names)), jac=True, method="L-BFGS-B", options={"maxiter": 400})
    typer.echo(f"span scorer: {len(trainable)} questions with a gold candidate, loss {result.fun:.1f}", err=True)
    return result.x


def best_spans(c: Collected, w: np.ndarray) -> list[tuple[dict[str, float] | None, float]]:
    """Per question, the confidence features of the span the weights rank first (None when there is
    no candidate) and that span's F1 against the gold answers (0 for unanswerable questions)."""
    out = []
    for q in range(len(c.answers)):
        rows_q = c.rows(q)
        if rows_q.start == rows_q.stop:
            out.append((None, 0.0))
            continue
        scores = c.matrix[rows_q] @ w
        best = int(np.argmax(scores))
        row = c.matrix[rows_q.start + best]
        features = {c.names[j]: float(v) for j, v in zip(row.indices, row.data)}
        f1 = best_over_gold(c.texts[rows_q.start + best], c.answers[q])[1] if c.answers[q] else 0.0
        out.append((answerer.confidence_features(features, scores, c.terms[q]), f1))
    return out


def fit_confidence(c: Collected, w: np.ndarray) -> tuple[dict[str, float], float]:
    """Calibration weights and the abstention threshold, from the best span of every question."""
    from sklearn.linear_model import LogisticRegression

    spans = best_spans(c, w)
    fitted = [q for q, (features, _) in enumerate(spans) if features is not None]
    names = sorted(spans[fitted[0]][0])
    x = np.array([[spans[q][0][n] for n in names] for q in fitted])
    sizes = collections.Counter(c.groups[q] for q in fitted)
    balance = np.array([len(fitted) / (len(sizes) * sizes[c.groups[q]]) for q in fitted])  # each data set weighs the same
    model = LogisticRegression(C=1.0, max_iter=2000, fit_intercept=False).fit(
        x, np.array([spans[q][1] >= 0.5 for q in fitted]), sample_weight=balance)
    probability = dict(zip(fitted, model.predict_proba(x)[:, 1]))
    scored = [(float(probability.get(q, 0.0)), bool(c.answers[q]), spans[q][1], c.groups[q])
              for q in range(len(c.answers))]
    return {n: round(float(v), 5) for n, v in zip(names, model.coef_[0])}, choose_threshold(scored)


def cross_validate(c: Collected, folds: int) -> dict[str, dict[str, float]]:
    """Figures per data set on questions whose article the fit never saw: the units (articles) are
    dealt into folds, and each fold is answered by weights fitted on the others, as a new corpus
    would be."""
    units = sorted(set(c.units))
    folds = min(folds, len(units))  # no fold left empty
    fold_of = {unit: i % folds for i, unit in enumerate(units)}
    outcomes: dict[str, list[tuple[bool, float, bool]]] = collections.defaultdict(list)
    for fold in range(folds):
        train = c.subset([q for q, unit in enumerate(c.units) if fold_of[unit] != fold])
        test = c.subset([q for q, unit in enumerate(c.units) if fold_of[unit] == fold])
        w = fit_span_scorer(train)
        confidence, threshold = fit_confidence(train, w)
        for q, (features, f1) in enumerate(best_spans(test, w)):
            answered = features is not None and answerer.calibrated(features, confidence) >= threshold
            outcomes[test.groups[q]].append((bool(test.answers[q]), f1, answered))
    figures = {}
    for group, rows in sorted(outcomes.items()):
        answerable = [(f1, answered) for has, f1, answered in rows if has]
        unanswerable = [answered for has, _, answered in rows if not has]
        figures[group] = {
            "questions": len(rows),
            "best_span_f1": round(float(np.mean([f1 for f1, _ in answerable])), 3),
            "has_answer_f1": round(float(np.mean([f1 * answered for f1, answered in answerable])), 3),
            "abstained_answerable": sum(not answered for _, answered in answerable),
            "no_answer_accuracy": round(float(np.mean([not a for a in unanswerable])), 3) if unanswerable else None,
        }
    return figures


def choose_threshold(scored: list[tuple[float, bool, float, str]]) -> float:
    """The lowest abstention threshold at which every data set holding unanswerable questions still
    abstains on at least MIN_NO_ANSWER of them: answer as much as possible, stay silent on at least
    that share of what has no answer."""
    groups = sorted({g for _, answerable, _, g in scored if not answerable})
    for threshold in np.linspace(0.0, 1.0, 201):
        if all(np.mean([p < threshold for p, answerable, _, g in scored if g == group and not answerable])
               >= MIN_NO_ANSWER for group in groups):
            break
    typer.echo(f"threshold {threshold:.3f} chosen on {', '.join(groups)}", err=True)
    return round(float(threshold), 3)


def main(
    data: list[Path] = typer.Option(..., help="SQuAD v1.1/v2.0 files to fit on (repeatable)."),
    per_file: int = typer.Option(1500, help="Questions sampled from each file."),
    seed: int = typer.Option(0, help="Seed of the samples."),
    index_root: Path = typer.Option(Path("index"), help="Where the per-file indexes are kept."),
    cache: Path = typer.Option(Path("index") / "fit-cache", help="Candidate features are kept here."),
    reuse_cache: bool = typer.Option(False, help="Refit from the cache instead of running the pipeline."),
    gold: Optional[Path] = typer.Option(None, help="Also learn from a gold JSON-lines file (e.g. eval/gold.jsonl)."),
    gold_corpus: Path = typer.Option(Path("seeds"), help="The articles that gold file is about."),
    out: Path = typer.Option(answerer.WEIGHTS_FILE, help="Weights file to write."),
    folds: int = typer.Option(0, help="Also print figures cross-validated over this many folds of articles."),
) -> None:
    if reuse_cache:
        try:
            collected = load(cache)
        except (OSError, KeyError) as exc:  # no cache, or one written before a field was added
            typer.echo(f"error: cannot reuse the cache in {cache} ({exc}); run without --reuse-cache", err=True)
            raise typer.Exit(1) from None
    else:
        collected = collect(sources(data, per_file, seed, index_root, gold, gold_corpus))
        save(collected, cache)
    if folds > 1:
        typer.echo(json.dumps(cross_validate(collected, folds), indent=1))
    w = fit_span_scorer(collected)
    weights = {n: round(float(v), 5) for n, v in zip(collected.names, w) if abs(v) > 1e-5}
    confidence, threshold = fit_confidence(collected, w)
    out.write_text(json.dumps({
        "note": "fitted by `python -m qa.fit_answer` (see its docstring); do not edit by hand",
        "fitted_on": {"files": [p.name for p in data] + ([gold.name] if gold else []), "per_file": per_file,
                      "seed": seed, "questions": len(collected.answers)},
        "weights": dict(sorted(weights.items())),
        "confidence": confidence,
        "threshold": threshold,
    }, indent=1) + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}: {len(weights)} span weights, abstain below confidence {threshold}")


if __name__ == "__main__":
    typer.run(main)
