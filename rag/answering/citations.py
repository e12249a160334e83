"""The answer contract, the same for every generator: verified citations, cited sources, abstention.

Every ``[n]`` left in an answer maps to ``{n, document_id, chunk_id, quote}``, where ``quote`` is
text that really is in that chunk: a generator that knows its quotes (the extractive one) has
them checked; for a model's answer the quote is the passage of the cited document that best
matches the sentence carrying the marker. A marker naming no retrieved document, or one whose
document shares nothing with its sentence, is removed. Cited documents are renumbered 1, 2, 3 in
the order they are first cited, so the answer's markers are the positions in its ``sources``. A
model that says it has no information, or an answer left with nothing cited, is ``abstained``.
Pure: no Django.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.ingestion.chunking import split_sentences
from rag.ingestion.units import chunk_units
from rag.lexical import tokenize
from rag.types import (
    ABSTAINED,
    ANSWERED,
    LOW_SUPPORT,
    MODEL_DECLINED,
    NO_INFORMATION_ANSWER,
    NO_MATCH,
    Citation,
    ContextDocument,
)

ATTRIBUTION_OVERLAP = 0.5  # term F1 between a model's uncited sentence and a passage to cite it
_MARKER = re.compile(r"[ \t]?\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_REFUSAL = re.compile(
    r"\b(?:do(?:n't|\s+not)|does(?:n't|\s+not)|cannot|can't|am\s+unable\s+to)\s+(?:have|find|provide|contain)\s+"
    r"(?:any\s+)?(?:specific\s+|enough\s+|relevant\s+|the\s+)?information\b",
    re.IGNORECASE,
)


@dataclass
class Final:
    """An answer as stored and shown: text, status, verified citations, cited document numbers."""

    text: str
    status: str
    abstain_reason: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)  # the request's document numbers, in citation order


def abstained(reason: str, text: str = NO_INFORMATION_ANSWER) -> Final:
    return Final(text=text, status=ABSTAINED, abstain_reason=reason)


def _overlap(claim: set[str], candidate: str) -> float:
    terms = set(tokenize(candidate))
    shared = len(claim & terms)
    if not shared:
        return 0.0
    precision, recall = shared / len(terms), shared / len(claim)
    return 2 * precision * recall / (precision + recall)


def _scored_quote(claim: str, document: ContextDocument) -> tuple[float, int, str] | None:
    terms = set(tokenize(claim))
    best: tuple[float, int, str] | None = None
    for passage in document.passages:
        for unit in chunk_units(passage.text):
            score = _overlap(terms, unit.quote)
            if score > 0 and (best is None or score > best[0]):
                best = (score, passage.chunk_id, unit.quote)
    return best


def _best_quote(claim: str, document: ContextDocument) -> tuple[int, str] | None:
    """The passage text of ``document`` that best supports ``claim``, if any shares a word with it."""
    best = _scored_quote(claim, document)
    return (best[1], best[2]) if best else None


def _attributed(text: str, documents: Sequence[ContextDocument]) -> str:
    """``text`` with a marker after each sentence that closely restates a retrieved passage.

    For a model that answered without citing: its sentences that match a passage get that
    passage's document; the others stay uncited.
    """
    lines = []
    for line in text.split("\n"):
        sentences = split_sentences(line)
        for sentence in sentences:
            scored = [(found, d.number) for d in documents if (found := _scored_quote(sentence, d)) is not None]
            if scored:
                best, number = max(scored, key=lambda pair: pair[0][0])
                if best[0] >= ATTRIBUTION_OVERLAP:
                    line = line.replace(sentence, f"{sentence} [{number}]", 1)
        lines.append(line)
    return "\n".join(lines)


def _verified(citation: Citation, document: ContextDocument) -> tuple[int, str] | None:
    passage = next((p for p in document.passages if p.chunk_id == citation.chunk_id), None)
    if passage is None or not citation.quote or citation.quote not in passage.text:
        return None
    return citation.chunk_id, citation.quote


def _claim(segment: str) -> str:
    """The last sentence before a marker: what the marker vouches for."""
    sentences = split_sentences(segment.strip().split("\n")[-1])
    return sentences[-1] if sentences else segment


class _Rewriter:
    def __init__(self, documents: Sequence[ContextDocument], supplied: Sequence[Citation]) -> None:
        self.documents = {d.number: d for d in documents}
        self.supplied = list(supplied)
        self.renumbered: dict[int, int] = {}
        self.citations: list[dict[str, Any]] = []

    def cite(self, number: int, segment: str) -> str:
        """The new marker for ``[number]`` after ``segment``, or "" if it cites nothing retrieved."""
        document = self.documents.get(number)
        if document is None:
            return ""
        found: tuple[int, str] | None = None
        if self.supplied:
            given = self.supplied.pop(0)
            found = _verified(given, document) if given.n == number else None
        else:
            found = _best_quote(_claim(segment), document)
        if found is None:
            return ""
        new = self.renumbered.setdefault(number, len(self.renumbered) + 1)
        entry = {"n": new, "document_id": document.document_id, "chunk_id": found[0], "quote": found[1]}
        if entry not in self.citations:
            self.citations.append(entry)
        return f"[{new}]"

    def rewrite(self, text: str) -> str:
        out: list[str] = []
        position = 0
        segment = ""
        for match in _MARKER.finditer(text):
            between = text[position : match.start()]
            if between.strip():
                segment = between  # "[1][2]" share one claim
            out.append(between)
            markers = "".join(self.cite(int(n), segment) for n in dict.fromkeys(match.group(1).split(",")))
            out.append(f" {markers}" if markers and match.group(0).startswith((" ", "\t")) else markers)
            position = match.end()
        out.append(text[position:])
        return "\n".join(re.sub(r"[ \t]{2,}", " ", line).rstrip() for line in "".join(out).split("\n")).strip()


def finalize(
    text: str,
    documents: Sequence[ContextDocument],
    *,
    citations: Sequence[Citation] = (),
    abstain_reason: str | None = None,
) -> Final:
    """Apply the answer contract to a generator's ``text`` for the request's ``documents``."""
    if not documents:
        return abstained(NO_MATCH)
    if abstain_reason:
        return abstained(abstain_reason)
    rewriter = _Rewriter(documents, citations)
    rewritten = rewriter.rewrite(text)
    if not rewriter.citations and not citations and not _REFUSAL.search(text):
        rewriter = _Rewriter(documents, ())
        rewritten = rewriter.rewrite(_attributed(rewritten, documents))
    if not rewriter.citations:
        # Nothing the answer says is tied to a retrieved document: a refusal, or an ungrounded reply.
        reason = MODEL_DECLINED if _REFUSAL.search(text) or not rewritten else LOW_SUPPORT
        return abstained(reason, text=rewritten if reason == MODEL_DECLINED and rewritten else NO_INFORMATION_ANSWER)
    return Final(
        text=rewritten,
        status=ANSWERED,
        citations=rewriter.citations,
        cited=list(rewriter.renumbered),
    )
