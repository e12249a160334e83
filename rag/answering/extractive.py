"""The offline answerer: the retrieved sentences that best answer the question, each cited.

Deterministic and fast (well under 5 ms for three documents). It only ever emits sentences copied
from the retrieved documents, each followed by its document's marker ``[n]``, or the one fixed
``NO_INFORMATION_ANSWER`` sentence.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.ingestion.chunking import split_sentences
from rag.lexical import tokenize
from rag.providers.base import AnswerRequest, ContextDocument, Generation, GenerationDelta, Turn

logger = logging.getLogger(__name__)

NO_INFORMATION_ANSWER = "I don't have specific information about this topic."

MIN_SENTENCE_CHARS = 25
_SHORT_QUESTION_TERMS = 3  # below this many content words, the previous user turn helps
_HISTORY_WEIGHT = 0.5
_RANK_BONUS = 0.25  # x1.25 for the first document's sentences, x1.125 for the second's, ...
_ANSWER_TYPE_BONUS = 1.3  # "how long" and a sentence with a duration in it, etc.
_RELATIVE_FLOOR = 0.35  # sentences scoring under this share of the best one are left out
_DUPLICATE_OVERLAP = 0.8  # Jaccard overlap of terms above which two sentences say the same
_HEADING_MAX_CHARS = 60
_STREAM_WORDS = 6

_LIST_MARKER = re.compile(r"^\s*(?:[-*+\u2022>]\s+|\d{1,3}[.)]\s+)")
_UNDERLINE = re.compile(r"^\s*([=\-~^*#_])\1{2,}\s*$")
_ENDS_SENTENCE = re.compile(r"[.!?:;)\"'\u2019\u201d]\s*$")
# "how long/much/many/often/soon", "when": the kind of answer asked for, not a topic word.
_QUESTION_TYPE = re.compile(r"\bhow\s+(long|much|many|often|soon)\b|\b(when)\b", re.IGNORECASE)
_UNIT_OF_TIME = r"(?:second|minute|hour|day|week|month|year|night)s?"
_NUMBER_WORD = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|thirty|sixty)"
_DURATION = rf"\b{_NUMBER_WORD}[\s-]+(?:\w+[\s-]+)?{_UNIT_OF_TIME}\b"
_AMOUNT = r"[$\u20ac\u00a3]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:%|percent|eur|euros?|usd|dollars?|gbp|pounds?)\b|\bfree\b"
_DATE_OR_TIME = (
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|january|february|march"
    r"|april|may|june|july|august|september|october|november|december|\d{1,2}:\d{2}|\d{1,2}\s?(?:am|pm))\b"
)
_ANSWER_TYPES = {
    "long": re.compile(_DURATION, re.IGNORECASE),
    "soon": re.compile(_DURATION, re.IGNORECASE),
    "often": re.compile(rf"{_DURATION}|\b(?:every|daily|weekly|monthly|yearly|annually|once|twice)\b", re.IGNORECASE),
    "much": re.compile(_AMOUNT, re.IGNORECASE),
    "many": re.compile(r"\b\d+\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b", re.IGNORECASE),
    "when": re.compile(rf"{_DURATION}|{_DATE_OR_TIME}", re.IGNORECASE),
}
_WORD_GROUP = re.compile(rf"(?:\S+\s*){{1,{_STREAM_WORDS}}}")
# A sentence carrying its own citation ("... [2].", "[Source: Official Policy]") would read as if we
# had cited it: a document could attribute its claims to another document or to an authority.
# Such sentences are never quoted. Code spans ("`[1]`") are prose about markers and do not count.
_CITATION_LOOKALIKE = re.compile(
    r"[\[\uff3b\u3010]\s*(?:\d+\s*[\]\uff3d\u3011]|(?:sources?|citations?|cite|ref(?:erence)?s?|doc(?:ument)?s?)\b)",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class _Sentence:
    number: int  # the document's citation marker
    position: int  # reading order within the document
    text: str
    terms: frozenset[str]


def _is_heading(line: str, title: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or _UNDERLINE.match(stripped):
        return True
    if " ".join(stripped.split()).casefold() == title:
        return True  # the title line that prefixes every chunk
    # A short line without closing punctuation that is not a list item reads as a heading.
    return len(stripped) <= _HEADING_MAX_CHARS and not _ENDS_SENTENCE.search(stripped) and not _LIST_MARKER.match(line)


def _is_marked_heading(line: str, title: str) -> bool:
    stripped = line.strip()
    return (
        stripped.startswith("#")
        or bool(_UNDERLINE.match(stripped))
        or (
            " ".join(stripped.split()).casefold() == title  # the title line that prefixes every chunk
        )
    )


def _paragraphs(text: str, title: str) -> Iterator[str]:
    """Paragraphs and list items with their wrapped lines joined; headings, code and tables left out.

    Help-centre Markdown wraps prose at ~100 columns, so a sentence often spans two lines; a
    paragraph of one short line without closing punctuation reads as a heading.
    """
    lines: list[str] = []

    def flush() -> Iterator[str]:
        if lines and not (len(lines) == 1 and _is_heading(lines[0], title)):
            yield " ".join(lines)
        lines.clear()

    in_code = False
    for line in text.splitlines():
        stripped = line.strip()
        fence = stripped.startswith("```")
        in_code = in_code != fence  # a fence opens or closes a code block
        marker = _LIST_MARKER.match(line)
        skip = fence or in_code or stripped.startswith("|") or _is_marked_heading(line, title)
        if skip or not stripped or marker:
            yield from flush()
        if skip or not stripped:
            continue
        lines.append(line[marker.end() :].strip() if marker else stripped)
    yield from flush()


def _cites_something(sentence: str) -> bool:
    return bool(_CITATION_LOOKALIKE.search(_CODE_SPAN.sub("", sentence)))


def _sentences(document: ContextDocument) -> list[_Sentence]:
    """Candidate sentences of one document (its text with line wraps joined), headings and sentences
    with citation markers of their own left out."""
    title = " ".join(document.title.split()).casefold()
    found: list[_Sentence] = []
    for paragraph in _paragraphs(document.text, title):
        for sentence in split_sentences(paragraph):
            if len(sentence) >= MIN_SENTENCE_CHARS and not _cites_something(sentence):
                found.append(_Sentence(document.number, len(found), sentence, frozenset(tokenize(sentence))))
    return found


def _query_terms(question: str, history: Sequence[Turn]) -> tuple[set[str], dict[str, float]]:
    """The question's own terms, and every term's weight (previous user turn at half weight)."""
    own = set(tokenize(_QUESTION_TYPE.sub(" ", question)))
    weights = dict.fromkeys(own, 1.0)
    if len(own) < _SHORT_QUESTION_TERMS:
        previous = next((t.content for t in reversed(history) if t.role == "user" and t.content != question), "")
        for term in tokenize(_QUESTION_TYPE.sub(" ", previous)):
            weights.setdefault(term, _HISTORY_WEIGHT)
    # A question with no content words of its own ("and then?") leans on the turn before it.
    return (own or set(weights)), weights


def _answer_type(question: str) -> re.Pattern[str] | None:
    """What a sentence that answers ``question`` probably contains (a duration, an amount …)."""
    match = _QUESTION_TYPE.search(question)
    return _ANSWER_TYPES[(match.group(1) or match.group(2)).lower()] if match else None


def _scores(sentences: list[_Sentence], request: AnswerRequest) -> dict[int, float]:
    """Score per sentence index, only for sentences sharing a content word with the question."""
    required, weights = _query_terms(request.question, request.history)
    answer_type = _answer_type(request.question)
    ranks = {document.number: rank for rank, document in enumerate(request.documents)}
    document_frequency = Counter(term for s in sentences for term in s.terms & weights.keys())
    idf = {term: math.log(1 + len(sentences) / count) for term, count in document_frequency.items()}
    mass = sum(weights[term] * value for term, value in idf.items()) or 1.0
    scores: dict[int, float] = {}
    for index, sentence in enumerate(sentences):
        if not sentence.terms & required:
            continue
        score = sum(weights[term] * idf[term] for term in sentence.terms & weights.keys()) / mass
        # Long sentences match more terms by chance; damp them gently.
        score /= 1 + 0.02 * max(0, len(sentence.terms) - 20)
        score *= 1 + _RANK_BONUS / (1 + ranks[sentence.number])
        if answer_type is not None and answer_type.search(sentence.text):
            score *= _ANSWER_TYPE_BONUS
        scores[index] = score
    return scores


def _select(sentences: list[_Sentence], scores: dict[int, float], limit: int) -> list[_Sentence]:
    """The best sentences, no near-duplicates, ordered by document and then by reading order."""
    best = max(scores.values())
    chosen: list[_Sentence] = []
    for index in sorted(scores, key=lambda i: (-scores[i], sentences[i].number, sentences[i].position)):
        if len(chosen) == limit or scores[index] < best * _RELATIVE_FLOOR:
            break
        candidate = sentences[index]
        if not any(_same(candidate, other) for other in chosen):
            chosen.append(candidate)
    return sorted(chosen, key=lambda s: (s.number, s.position))


def _same(a: _Sentence, b: _Sentence) -> bool:
    if a.text == b.text:
        return True
    union = a.terms | b.terms
    return bool(union) and len(a.terms & b.terms) / len(union) >= _DUPLICATE_OVERLAP


def extractive_answer(request: AnswerRequest, *, max_sentences: int = 4) -> str:
    """The best-matching sentences of the retrieved documents, each followed by its ``[n]``."""
    sentences = [s for document in request.documents for s in _sentences(document)]
    scores = _scores(sentences, request) if sentences else {}
    if not scores:
        return NO_INFORMATION_ANSWER
    chosen = _select(sentences, scores, max(1, max_sentences))
    return " ".join(f"{sentence.text} [{sentence.number}]" for sentence in chosen)


class ExtractiveGenerator:
    """``Generator`` that answers extractively, offline; never fails, never calls out."""

    name = "extractive"
    model = "extractive-v1"

    def __init__(self, *, max_sentences: int = 4) -> None:
        self.max_sentences = max_sentences

    def generate(self, request: AnswerRequest) -> Generation:
        """The whole answer at once."""
        return Generation(text=extractive_answer(request, max_sentences=self.max_sentences), model=self.model)

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]:
        """The same answer in groups of a few words; the deltas concatenate to ``generate``'s text."""
        text = self.generate(request).text
        for match in _WORD_GROUP.finditer(text):
            yield GenerationDelta(text=match.group(0))
