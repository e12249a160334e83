"""Sweep the extractive answerer's constants on the dev split of rag/eval/answers (never the test split).

Usage: .venv/bin/python bench/tune_answers.py [--features | --once | --cost | --chat] [--split dev]
                                              [--set main|fresh2]

Runs on the evaluation's own knowledge base (``make eval-answers`` builds it in
var/eval/answers-kb). ``--set fresh2`` runs on the second blind set's dev split instead
(``rag/eval/answers/fresh2``; its knowledge base is built by ``manage.py eval_answers --questions
rag/eval/answers/fresh2/questions.jsonl --corpus rag/eval/answers/fresh2/corpus --kb-dir
var/eval/answers-fresh2-kb``). Each question is retrieved once; the answerer then runs for every setting
of the grid, and the script prints the summary line of each, best first (by a score that weighs
fact recall, abstention and false refusals as the targets do), with fact recall per kind of
question under it. ``--once`` runs the current constants only and adds the answerer's own time
per answer (median and slowest, on a machine that may be shared). ``--features`` prints each
question's best score and what it is made of, to see where answerable and unanswerable overlap;
``--auc`` how well each of those signals (and retrieval's best cosine) tells answerable questions
from unanswerable ones (ROC AUC: 0.5 is chance, 1.0 a perfect abstention threshold).
``--cost`` prints the CPU time of a warm ``answer_question`` (retrieval, the nearby chunks, the
answer), best of 3 passes: CPU time, so that a machine shared with other work still measures it.
``--chat`` asks the questions with a history as the chat does: each earlier question is answered
first and its answer is part of the history (the set itself holds only the user's questions).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "main": (ROOT / "rag" / "eval" / "answers" / "questions.jsonl", ROOT / "var" / "eval" / "answers-kb"),
    "fresh2": (
        ROOT / "rag" / "eval" / "answers" / "fresh2" / "questions.jsonl",
        ROOT / "var" / "eval" / "answers-fresh2-kb",
    ),
}


def boot(kb: Path) -> None:
    os.environ.update(
        {
            "VAR_DIR": str(kb),
            "DATABASE_URL": f"sqlite:///{kb / 'db.sqlite3'}",
            "VECTOR_INDEX_DIR": str(kb / "index"),
            "RAG_VECTOR_STORE": "faiss",
            "USE_FAKE_REDIS": "true",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="dev")
    parser.add_argument("--features", action="store_true")
    parser.add_argument("--auc", action="store_true")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--chat", action="store_true")
    parser.add_argument("--set", choices=sorted(SETS), default="main")
    args = parser.parse_args()
    questions, kb = SETS[args.set]
    boot(kb)
    from rag.eval.answers import by_kind, load_cases, score, select, summarise
    from rag.providers import extractive
    from rag.services.answering import Answer, _contract, _for_extractive, _request
    from rag.services.retrieval import retrieve
    from rag.types import Turn

    cases = select(load_cases(questions), args.split)
    if args.cost:
        cost(cases)
        return
    if args.chat:
        chat(cases, args.split)
        return
    prepared = []
    for case in cases:
        history = [Turn(role="user", content=h) for h in case.history]
        retrieval = retrieve(query=case.q, history=history)
        request = _for_extractive(_request(case.q, retrieval, history))
        prepared.append((case, retrieval, request))

    if args.auc:
        auc(prepared, extractive)
        return
    if args.features:
        for case, _, request in prepared:
            candidates = extractive._candidates(request.documents, request.question_vector)
            scores = extractive._scores(candidates, request) if candidates else [0.0]
            best = max(range(len(scores)), key=scores.__getitem__) if candidates else None
            sim = candidates[best].similarity if best is not None else 0
            lex = (max(scores) - sim) / extractive.LEXICAL_WEIGHT if best is not None else 0
            unknown = request.unknown_terms
            needed = extractive._support_needed(unknown)
            print(
                f"{'A' if case.answerable else 'U'} {max(scores):.3f} (needs {needed:.3f}) sim={sim:.3f} "
                f"lex={lex:.2f} unk={len(unknown)} {case.kind:13} {case.q[:50]} {unknown}"
            )
        return

    def run() -> tuple[float, str, list[float]]:
        outcomes, took = [], []
        for case, retrieval, request in prepared:
            started = time.perf_counter()
            generation = extractive.ExtractiveGenerator().generate(request)
            took.append((time.perf_counter() - started) * 1000)
            answer = _contract(Answer(generation.text, [], "extractive", "x"), generation, retrieval, request)
            outcomes.append(score(case, answer, [d.source for d in retrieval.documents]))
        summary = summarise(args.split, outcomes)
        # The targets: recall >= 0.80, abstention >= 0.85 with false refusals <= 0.05.
        objective = summary.fact_recall + summary.abstention - 3 * summary.false_refusals
        return objective, f"{summary.line()}\n      {by_kind(outcomes)}", took

    if args.once:
        _, line, took = run()
        print(line)
        print(f"      answerer alone: median {statistics.median(took):.1f} ms, slowest {max(took):.1f} ms")
        return

    grid = {
        "MIN_SUPPORT": [0.665, 0.69, 0.72],
        "UNKNOWN_TERM_PENALTY": [0.0, 0.03, 0.06],
        "KEEP_WITHIN": [0.16, 0.22],
        "OTHER_DOCUMENT_WITHIN": [0.02, 0.06],
        "ANSWER_TYPE_BONUS": [0.08, 0.15],
    }
    results = []
    for values in itertools.product(*grid.values()):
        for name, value in zip(grid, values, strict=True):
            setattr(extractive, name, value)
        objective, line, _ = run()
        results.append((objective, dict(zip(grid, values, strict=True)), line))
    for objective, params, line in sorted(results, key=lambda r: -r[0])[:12]:
        print(f"{objective:.3f} {params} {line}")


def _roc_auc(answerable: list[float], unanswerable: list[float]) -> float:
    """The chance that an answerable question scores above an unanswerable one (ties count half)."""
    pairs = [(a > u) + 0.5 * (a == u) for a in answerable for u in unanswerable]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def auc(prepared: list, extractive: ModuleType) -> None:
    """ROC AUC of each abstention signal: the answerer's best score (what abstains today), the
    best unit's cosine and lexical part, the unknown-term count, and retrieval's best chunk cosine."""
    rows = []
    for case, retrieval, request in prepared:
        candidates = extractive._candidates(request.documents, request.question_vector)
        scores = extractive._scores(candidates, request) if candidates else []
        best = max(range(len(scores)), key=scores.__getitem__) if scores else None
        similarity = candidates[best].similarity if best is not None else 0.0
        rows.append(
            (
                case.answerable,
                {
                    "best score": scores[best] if best is not None else 0.0,
                    "unit cosine": similarity,
                    "unit lexical": scores[best] - similarity if best is not None else 0.0,
                    "fewer unknown terms": -len(request.unknown_terms),
                    "retrieval cosine": retrieval.documents[0].similarity if retrieval.documents else 0.0,
                },
            )
        )
    for name in rows[0][1]:
        answerable = [features[name] for ok, features in rows if ok]
        unanswerable = [features[name] for ok, features in rows if not ok]
        print(f"{name:22} AUC {_roc_auc(answerable, unanswerable):.3f}")


def chat(cases: list, split: str) -> None:
    from rag.eval.answers import by_kind, score, summarise
    from rag.services.answering import answer_question
    from rag.types import Turn

    outcomes = []
    for case in (c for c in cases if c.history):
        history: list[Turn] = []
        for earlier in case.history:
            answer = answer_question(question=earlier, history=history)
            history += [Turn(role="user", content=earlier), Turn(role="assistant", content=answer.text)]
        outcomes.append(score(case, answer_question(question=case.q, history=history), []))
    print(f"{summarise(split, outcomes).line()}\n      {by_kind(outcomes)}")


def cost(cases: list) -> None:
    from rag.services.answering import answer_question
    from rag.types import Turn

    asked = [(case.q, [Turn(role="user", content=h) for h in case.history]) for case in cases]
    for question, history in asked:  # warm: the embedding cache and the unit cache
        answer_question(question=question, history=history)
    passes = []
    for _ in range(3):
        started = time.process_time()
        for question, history in asked:
            answer_question(question=question, history=history)
        passes.append((time.process_time() - started) * 1000 / len(asked))
    print(f"CPU per warm answer_question, best of 3 passes over {len(asked)} questions: {min(passes):.2f} ms")


if __name__ == "__main__":
    main()
