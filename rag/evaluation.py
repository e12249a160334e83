"""Retrieval evaluation over labelled question sets (JSON lines): hit@1, hit@3, MRR@3, nDCG@10.

A question names the documents (their ``source`` paths) that answer it; each is retrieved once
per fusion mode with the top 10 documents kept, and every metric is read off that one ranking.
The metric functions are pure; ``run`` calls the retrieval the chat uses.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rag.services.retrieval import retrieve
from rag.types import Turn
from utils.stats import percentile

SPLITS = ("dev", "test")
ALL = "all"  # every question of a set; the only split of a set whose lines name none
KINDS = ("paraphrase", "typo", "follow_up", "factoid", "howto")
DEPTH = 10  # documents retrieved per question: nDCG@10 needs ten, the other metrics fewer


@dataclass(frozen=True)
class Question:
    q: str
    expect: tuple[str, ...]  # sources that answer it; any one of them is a hit
    history: tuple[str, ...] = ()  # earlier user questions of the same session, oldest first
    split: str | None = None  # "dev" (tune on it) or "test" (report only); None: unsplit set
    kind: str | None = None  # one of KINDS, for reading the misses


@dataclass(frozen=True)
class Outcome:
    question: Question
    sources: tuple[str, ...]  # retrieved document sources, best first
    ms: float


@dataclass
class EvalReport:
    questions: int = 0
    hit1: float = 0.0
    hit3: float = 0.0
    mrr3: float = 0.0
    ndcg10: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    misses: list[tuple[str, list[str]]] = field(default_factory=list)  # (question, top 3) missed at rank 1

    def summary(self) -> str:
        return (
            f"questions: {self.questions}  hit@1: {self.hit1:.3f}  hit@3: {self.hit3:.3f}  "
            f"MRR@3: {self.mrr3:.3f}  nDCG@10: {self.ndcg10:.3f}  "
            f"search p50: {self.p50_ms:.1f} ms  p95: {self.p95_ms:.1f} ms"
        )


# Metrics: ``ranked`` is the retrieved sources best first, ``relevant`` the expected ones.


def first_hit(ranked: Sequence[str], relevant: Collection[str], k: int) -> int | None:
    """The 1-based rank of the first relevant source among the top ``k``, or None."""
    return next((rank for rank, source in enumerate(ranked[:k], start=1) if source in relevant), None)


def hit_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    return 1.0 if first_hit(ranked, relevant, k) else 0.0


def reciprocal_rank_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    rank = first_hit(ranked, relevant, k)
    return 1.0 / rank if rank else 0.0


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance; a source counts once."""
    seen: set[str] = set()
    gain = 0.0
    for rank, source in enumerate(ranked[:k], start=1):
        if source in relevant and source not in seen:
            seen.add(source)
            gain += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(set(relevant)), k) + 1))
    return gain / ideal if ideal else 0.0


# Question sets.


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines set; raises ``ValueError`` naming the line of a malformed entry."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            questions.append(_question(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: expected {{'q': ..., 'expect': [...]}} ({exc})") from exc
    return questions


def _question(row: dict[str, object]) -> Question:
    expect = row["expect"]
    history = row.get("history", ())
    if not isinstance(expect, list) or not expect or not isinstance(history, list | tuple):
        raise ValueError("'expect' must be a non-empty list and 'history' a list")
    split, kind = row.get("split"), row.get("kind")
    if split is not None and split not in SPLITS:
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, not {split!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    return Question(
        q=str(row["q"]),
        expect=tuple(str(source) for source in expect),
        history=tuple(str(turn) for turn in history),
        split=split if isinstance(split, str) else None,
        kind=kind if isinstance(kind, str) else None,
    )


def splits_of(questions: Sequence[Question], wanted: Sequence[str]) -> list[str]:
    """The wanted splits this set has; a set whose lines name no split has only ``all``."""
    if not any(question.split for question in questions):
        return [ALL]
    present = {question.split for question in questions}
    return [split for split in wanted if split == ALL or split in present]


def in_split(question: Question, split: str) -> bool:
    """Whether ``question`` belongs to ``split`` (every question belongs to ``all``)."""
    return split == ALL or question.split == split


def select_split(questions: Sequence[Question], split: str) -> list[Question]:
    return [question for question in questions if in_split(question, split)]


def after_unrelated(questions: Sequence[Question]) -> list[Question]:
    """A change of topic within one project: each question without a history, asked after the
    nearest earlier question of the set (wrapping round) that has no history either and expects
    none of its documents. The question must be found as if it had been asked first."""
    standalone = [question for question in questions if not question.history]
    switched = []
    for i, question in enumerate(standalone):
        earlier = (standalone[(i - step) % len(standalone)] for step in range(1, len(standalone)))
        previous = next((other for other in earlier if not set(other.expect) & set(question.expect)), None)
        if previous is not None:
            switched.append(replace(question, history=(previous.q,)))
    return switched


# Running and summarising.


def run(questions: Sequence[Question], *, fusion: str | None = None, top_k: int = DEPTH) -> list[Outcome]:
    """Retrieve the top ``top_k`` documents for each question, uncached, as the chat would."""
    outcomes = []
    for question in questions:
        history = [Turn(role="user", content=text) for text in question.history]
        started = time.perf_counter()
        found = retrieve(query=question.q, history=history, top_k=top_k, fusion=fusion, use_cache=False)
        ms = (time.perf_counter() - started) * 1000
        outcomes.append(Outcome(question, tuple(d.source for d in found.documents), ms))
    return outcomes


def summarise(outcomes: Sequence[Outcome]) -> EvalReport:
    report = EvalReport(questions=len(outcomes))
    if not outcomes:
        return report
    count = len(outcomes)
    report.hit1 = sum(hit_at(o.sources, o.question.expect, 1) for o in outcomes) / count
    report.hit3 = sum(hit_at(o.sources, o.question.expect, 3) for o in outcomes) / count
    report.mrr3 = sum(reciprocal_rank_at(o.sources, o.question.expect, 3) for o in outcomes) / count
    report.ndcg10 = sum(ndcg_at(o.sources, o.question.expect, DEPTH) for o in outcomes) / count
    latencies = [o.ms for o in outcomes]
    report.p50_ms = statistics.median(latencies)
    report.p95_ms = percentile(latencies, 95) or 0.0
    report.misses = [
        (o.question.q, list(o.sources[:3])) for o in outcomes if not hit_at(o.sources, o.question.expect, 1)
    ]
    return report


def evaluate(questions: Sequence[Question], *, fusion: str | None = None, top_k: int = DEPTH) -> EvalReport:
    return summarise(run(questions, fusion=fusion, top_k=top_k))
