"""Answer evaluation: does the answerer state the key facts, abstain when it should, cite the right pages?

The question set (``rag/eval/answers/questions.jsonl``) is asked of the answering service against
an isolated knowledge base built from ``rag/eval/answers/corpus/`` (help-centre articles of other
domains than this product). ``manage.py eval_answers`` (``make eval-answers``) runs it; the format
and the metrics are described in ``rag/eval/answers/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.types import Turn

KINDS = ("factoid", "procedure", "paraphrase", "typo", "follow-up", "multi-document", "unanswerable")
SPLITS = ("dev", "test")
HIT_AT = 3
# The fixed sentence an answerer without an ``answer_status`` uses to say it has nothing to go on.
NO_INFORMATION_PREFIX = "i don't have specific information"

_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00a0": " ", "\u2013": "-", "\u2014": "-", "\u2212": "-"})


@dataclass(frozen=True)
class AnswerCase:
    """One question of the set, with what a correct answer must contain."""

    q: str
    kind: str
    split: str
    expect_docs: tuple[str, ...]  # source paths (relative to the corpus folder) that answer it
    facts: tuple[str, ...]  # regexes (case-insensitive), each a key fact the answer must state
    history: tuple[str, ...] = ()  # earlier user questions of the same conversation, oldest first
    line: int = 0

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable"


class AnswerLike(Protocol):
    text: str
    sources: list[dict[str, Any]]


AnswerFn = Callable[[str, Sequence[Turn]], AnswerLike]
RetrieveFn = Callable[[str, Sequence[Turn]], Sequence[str]]


@dataclass(frozen=True)
class Outcome:
    """What the answerer did with one case."""

    case: AnswerCase
    text: str
    abstained: bool
    matched: tuple[str, ...]  # the case's fact regexes found in the answer
    sources: tuple[str, ...]  # the answer's listed sources (their ``source`` paths)
    retrieved: tuple[str, ...] = ()  # what retrieval alone ranks first, for hit@3

    @property
    def fact_recall(self) -> float | None:
        """Share of the key facts stated; None for an unanswerable case."""
        if not self.case.answerable:
            return None
        return len(self.matched) / len(self.case.facts) if self.case.facts else 1.0

    @property
    def citation_precision(self) -> float | None:
        """Share of listed sources that are expected ones, for an answerable case that was answered."""
        if not self.case.answerable or self.abstained:
            return None
        if not self.sources:
            return 0.0  # an answer that lists nothing cites nothing right
        return sum(source in self.case.expect_docs for source in self.sources) / len(self.sources)

    @property
    def hit(self) -> bool | None:
        """Whether retrieval ranks an expected document in its first ``HIT_AT``; None if unanswerable."""
        if not self.case.answerable:
            return None
        return any(source in self.case.expect_docs for source in self.retrieved[:HIT_AT])

    @property
    def correct_abstention(self) -> bool:
        return self.abstained != self.case.answerable


@dataclass(frozen=True)
class Summary:
    split: str
    questions: int
    answerable: int
    unanswerable: int
    fact_recall: float
    abstention: float  # unanswerable cases that were abstained on
    false_refusals: float  # answerable cases that were abstained on
    citation_precision: float
    median_chars: float  # of the answers given (abstentions excluded)
    hit3: float

    def line(self) -> str:
        return (
            f"[{self.split}] questions: {self.questions} ({self.answerable} answerable, {self.unanswerable} "
            f"unanswerable)  fact recall: {self.fact_recall:.3f}  abstention: {self.abstention:.3f}  "
            f"false refusals: {self.false_refusals:.3f}  citation precision: {self.citation_precision:.3f}  "
            f"median answer: {self.median_chars:.0f} chars  hit@{HIT_AT}: {self.hit3:.3f}"
        )


# --- loading ------------------------------------------------------------------------------------


def _strings(row: dict[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"'{key}' must be a list of non-empty strings")
    return tuple(value)


def _case(row: Any, line: int) -> AnswerCase:
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    q = row.get("q")
    if not isinstance(q, str) or not q.strip():
        raise ValueError("'q' must be a non-empty string")
    kind, split = row.get("kind"), row.get("split")
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    if split not in SPLITS:
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    case = AnswerCase(
        q=q,
        kind=kind,
        split=split,
        expect_docs=_strings(row, "expect_docs"),
        facts=_strings(row, "facts"),
        history=_strings(row, "history"),
        line=line,
    )
    if case.answerable and not (case.facts and case.expect_docs):
        raise ValueError("an answerable question needs at least one 'facts' regex and one 'expect_docs' path")
    if not case.answerable and (case.facts or case.expect_docs):
        raise ValueError("an unanswerable question has empty 'facts' and 'expect_docs'")
    if kind == "follow-up" and not case.history:
        raise ValueError("a follow-up question needs a 'history'")
    for fact in case.facts:
        try:
            re.compile(fact)
        except re.error as exc:
            raise ValueError(f"fact {fact!r} is not a valid regex: {exc}") from exc
    return case


def load_cases(path: Path) -> list[AnswerCase]:
    """Parse a question file (JSON lines); a ``ValueError`` names the file and line of a bad row."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(_case(json.loads(line), number))
        except (json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return cases


def missing_documents(cases: Iterable[AnswerCase], corpus: Path) -> list[str]:
    """``file:line: path`` for every expected document that is not a file of the corpus."""
    return [
        f"line {case.line}: {source}"
        for case in cases
        for source in case.expect_docs
        if not (corpus / source).is_file()
    ]


def select(cases: Iterable[AnswerCase], split: str) -> list[AnswerCase]:
    return [case for case in cases if split == "all" or case.split == split]


# --- scoring ------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Curly quotes, dashes and no-break spaces made plain, runs of whitespace made one space."""
    return " ".join(text.translate(_TYPOGRAPHY).split())


def matched_facts(text: str, facts: Iterable[str]) -> tuple[str, ...]:
    plain = normalise(text)
    return tuple(fact for fact in facts if re.search(fact, plain, flags=re.IGNORECASE))


def is_abstained(answer: object) -> bool:
    """``answer_status == "abstained"``; without that field, a text opening with the no-information sentence."""
    status = getattr(answer, "answer_status", None)
    if status:
        return bool(status == "abstained")
    return normalise(str(getattr(answer, "text", ""))).casefold().startswith(NO_INFORMATION_PREFIX)


def source_paths(sources: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(str(source.get("source", "")) for source in sources)


def score(case: AnswerCase, answer: AnswerLike, retrieved: Sequence[str] = ()) -> Outcome:
    abstained = is_abstained(answer)
    return Outcome(
        case=case,
        text=answer.text,
        abstained=abstained,
        matched=() if abstained else matched_facts(answer.text, case.facts),
        sources=source_paths(answer.sources),
        retrieved=tuple(retrieved),
    )


def _mean(values: Iterable[float | bool | None]) -> float:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else 0.0


def summarise(split: str, outcomes: Sequence[Outcome]) -> Summary:
    answerable = [o for o in outcomes if o.case.answerable]
    unanswerable = [o for o in outcomes if not o.case.answerable]
    answered = [o for o in outcomes if not o.abstained]
    return Summary(
        split=split,
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        fact_recall=_mean(o.fact_recall for o in answerable),
        abstention=_mean(o.abstained for o in unanswerable),
        false_refusals=_mean(o.abstained for o in answerable),
        citation_precision=_mean(o.citation_precision for o in answerable),
        median_chars=statistics.median(len(o.text) for o in answered) if answered else 0.0,
        hit3=_mean(o.hit for o in answerable),
    )


def by_kind(outcomes: Sequence[Outcome]) -> str:
    """Fact recall per kind of answerable question, and abstention on unanswerable ones."""
    parts = []
    for kind in KINDS:
        chosen = [o for o in outcomes if o.case.kind == kind]
        if not chosen:
            continue
        if kind == "unanswerable":
            parts.append(f"{kind} abstained {_mean(o.abstained for o in chosen):.2f} ({len(chosen)})")
        else:
            parts.append(f"{kind} {_mean(o.fact_recall for o in chosen):.2f} ({len(chosen)})")
    return "fact recall by kind: " + ", ".join(parts)


def failures(outcomes: Iterable[Outcome]) -> list[str]:
    """One line per shortcoming of one question: missed facts, wrong abstention, off-target sources."""
    lines = []
    for o in outcomes:
        where = f"{o.case.split} line {o.case.line} [{o.case.kind}] {o.case.q!r}"
        if not o.case.answerable:
            if not o.abstained:
                lines.append(f"{where}: answered an unanswerable question: {normalise(o.text)[:160]!r}")
            continue
        if o.abstained:
            lines.append(
                f"{where}: abstained (expected {', '.join(o.case.expect_docs)}; retrieved {list(o.retrieved)})"
            )
            continue
        missed = [fact for fact in o.case.facts if fact not in o.matched]
        if missed:
            lines.append(f"{where}: missed {missed} in {normalise(o.text)[:200]!r}")
        off = [source for source in o.sources if source not in o.case.expect_docs]
        if off or not o.sources:
            lines.append(f"{where}: cited {list(o.sources)}, expected {list(o.case.expect_docs)}")
    return lines


# --- running --------------------------------------------------------------------------------------


def _service_answer(question: str, history: Sequence[Turn]) -> AnswerLike:
    from rag.services.answering import answer_question

    return answer_question(question=question, history=history)


def _service_retrieve(question: str, history: Sequence[Turn]) -> list[str]:
    from rag.services.retrieval import retrieve

    return [d.source for d in retrieve(query=question, history=history, top_k=HIT_AT).documents]


def evaluate(
    cases: Iterable[AnswerCase], *, answer_fn: AnswerFn | None = None, retrieve_fn: RetrieveFn | None = None
) -> list[Outcome]:
    """Ask every case of the answering service (or ``answer_fn``) and score its answer."""
    answer_fn = answer_fn or _service_answer
    retrieve_fn = retrieve_fn or _service_retrieve
    outcomes = []
    for case in cases:
        history = [Turn(role="user", content=text) for text in case.history]
        answer = answer_fn(case.q, history)
        outcomes.append(score(case, answer, retrieve_fn(case.q, history)))
    return outcomes


def knowledge_base_load(*, corpus: Path) -> str:
    """Make the current database's knowledge base exactly the corpus: ingest new and changed files,
    delete documents that are no longer in it. Returns the ingestion summary line."""
    import io

    from rag.files import iter_files
    from rag.management.commands.ingest import ingest_files
    from rag.models import Document
    from rag.services.ingestion import document_delete

    files = list(iter_files([corpus], "*.md"))
    wanted = {file.relative_to(base).as_posix() for file, base in files}
    for document in Document.objects.exclude(source__in=wanted):
        document_delete(document=document)
    errors = io.StringIO()
    summary = ingest_files(files, category=None, stdout=io.StringIO(), stderr=errors)
    if errors.getvalue():
        raise ValueError(f"the corpus did not ingest cleanly: {errors.getvalue().strip()}")
    return summary


# The code and settings that decide what the stored chunks and vectors of an unchanged file are.
KNOWLEDGE_BASE_CODE = (
    "rag/ingestion/*.py",
    "rag/services/ingestion.py",
    "rag/files.py",
    "rag/providers/local_embedder.py",
)
KNOWLEDGE_BASE_SETTINGS = ("RAG_EMBEDDER", "MISTRAL_EMBED_MODEL")


def knowledge_base_fingerprint(*, base_dir: Path, settings: Any) -> str:
    """Changes when chunking, extraction or the embedder change: ingestion skips unchanged files,
    so a knowledge base built by other code must be rebuilt rather than updated."""
    digest = hashlib.sha256()
    for pattern in KNOWLEDGE_BASE_CODE:
        for path in sorted(base_dir.glob(pattern)):
            digest.update(path.relative_to(base_dir).as_posix().encode() + b"\0" + path.read_bytes())
    for name in KNOWLEDGE_BASE_SETTINGS:
        digest.update(f"{name}={getattr(settings, name, '')}".encode())
    return digest.hexdigest()
