"""Retrieval evaluation: hit@1, hit@3, MRR@3 and latency over a question set (JSON lines)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.providers.base import Turn
from rag.services.retrieval import retrieve
from utils.stats import percentile


@dataclass(frozen=True)
class Question:
    q: str
    expect: tuple[str, ...]
    history: tuple[str, ...] = ()  # earlier user questions of the same session, oldest first


@dataclass
class EvalReport:
    questions: int = 0
    hit1: float = 0.0
    hit3: float = 0.0
    mrr3: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    misses: list[tuple[str, list[str]]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"questions: {self.questions}  hit@1: {self.hit1:.3f}  hit@3: {self.hit3:.3f}  "
            f"MRR@3: {self.mrr3:.3f}  search p50: {self.p50_ms:.1f} ms  p95: {self.p95_ms:.1f} ms"
        )


def load_questions(path: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    q=str(row["q"]),
                    expect=tuple(str(s) for s in row["expect"]),
                    history=tuple(str(h) for h in row.get("history", ())),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{'q': ..., 'expect': [...]}} ({exc})") from exc
    return questions


def evaluate(questions: list[Question], *, top_k: int = 3, fusion: str | None = None) -> EvalReport:
    report = EvalReport(questions=len(questions))
    latencies: list[float] = []
    hit1 = hit3 = reciprocal = 0.0
    for question in questions:
        started = time.perf_counter()
        history = [Turn(role="user", content=text) for text in question.history]
        found = retrieve(query=question.q, history=history, top_k=top_k, fusion=fusion, use_cache=False)
        sources = [d.source for d in found.documents]
        latencies.append((time.perf_counter() - started) * 1000)
        rank = next((i for i, s in enumerate(sources[:3], start=1) if s in question.expect), None)
        hit1 += rank == 1
        hit3 += rank is not None
        reciprocal += 1 / rank if rank else 0.0
        if rank != 1:
            report.misses.append((question.q, sources[:3]))
    count = max(len(questions), 1)
    report.hit1, report.hit3, report.mrr3 = hit1 / count, hit3 / count, reciprocal / count
    report.p50_ms = statistics.median(latencies) if latencies else 0.0
    report.p95_ms = percentile(latencies, 95) or 0.0
    return report
