"""The offline answerer: the passages of the retrieved documents that answer the question, cited.

Candidates are the quotable units of the retrieved documents' chunks, and of the chunks near them
(``rag.ingestion.units``: sentences, a lead sentence with its list or steps, table rows with their
header, FAQ answers). Each is scored with semantic evidence (the question's embedding against the
unit's, stored at ingestion) and lexical evidence (the share of the question's idf-weighted terms
it contains, its section heading counting half), plus a bonus when it holds the kind of value the
question asks for (a price for "what does it cost", a duration for "how long", an address for
"what's the email address"; a short follow-up asks for what the previous question asked for), and
less a penalty when it says the opposite of a question about all or every ("only that session").
The best unit must reach ``MIN_SUPPORT``, raised for each content word no document uses, or the
answer abstains. Other units join it only while their evidence stays close to the best one's (a
unit of another document must be nearly as good on its own: no padding from a document that merely
shares a word); the sentence after the best one joins it when it states the value asked for; a
best sentence of a short section brings the rest of that section (a paraphrase matches the sentence
next to the fact as often as the fact); a question asking how to do something answered best by a
sentence gets its document's numbered steps too; each part of a compound question ("how do I
prepare him, and what will it cost?") brings its own best unit, or its next best when another part
took that one. A wh-question for a value abstains when no chosen unit holds one, and "how many X"
when none gives a number of X. The chosen units are read in document order, each followed by its
document's marker ``[n]``.

Deterministic and fast: no model run (the vectors come with the request), about a millisecond.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from rag.conversation import new_topic
from rag.ingestion.units import FAQ, SENTENCE, STEPS, Unit, chunk_units
from rag.lexical import tokenize
from rag.types import (
    LOW_SUPPORT,
    NO_INFORMATION_ANSWER,
    NO_MATCH,
    AnswerRequest,
    Citation,
    ContextDocument,
    Generation,
    GenerationDelta,
    Turn,
    Vectors,
)

logger = logging.getLogger(__name__)

__all__ = ["NO_INFORMATION_ANSWER", "ExtractiveGenerator", "extractive_answer"]

# Calibrated on the dev split of rag/eval/answers (README "Measuring answers"); see bench/ for the sweep.
LEXICAL_WEIGHT = 0.35  # weight of the lexical share (0-1) next to the cosine similarity (0-1)
MIN_SUPPORT = 0.69  # below this best score the evidence is too weak: abstain
UNKNOWN_TERM_PENALTY = 0.03  # ... raised by this for each content word no document uses
KEEP_WITHIN = 0.22  # further units of the best unit's document: at most this far below the best
PART_WITHIN = 0.2  # a part's next best unit answers it when this close to its best (taken by another part)
_PART_RANKING = 5
OTHER_DOCUMENT_WITHIN = 0.06  # a unit of another document must be this close to the best
MAX_UNITS = 3
SHORT_SECTION_UNITS = 3  # a best sentence brings the rest of its section when the section has at most this many
MAX_ANSWER_CHARS = 900
_SHORT_QUESTION_TERMS = 3  # below this many content words, the previous user turn helps
_HISTORY_WEIGHT = 0.25
PREVIOUS_ANSWER_BONUS = 0.1  # a short follow-up, for the units of the documents the previous answer quoted
_MIN_QUOTED_CHARS = 20
_CONTEXT_WEIGHT = 0.3  # the rest of a compound question, next to the words of the part being answered
ANSWER_TYPE_BONUS = 0.15  # a unit with what the question asks for (a price for "how much" ...)
STEPS_BONUS = 0.08  # numbered steps, for a question asking how to do something
STEPS_WITHIN = 0.5  # ... and they join a best sentence of their document if at most this far below it
RESTRICTIVE_PENALTY = 0.25  # "only" or "not" in a passage, for a question about all or every
_STREAM_WORDS = 6

_PROCEDURAL = re.compile(
    r"^\W*(?:how\s+(?:do|can|should|would)\s+(?:i|we|you)|how\s+to|what\s+are\s+the\s+steps)\b", re.IGNORECASE
)
_QUESTION_TYPE = re.compile(r"\bhow\s+(long|much|many|often|soon|old)\b|\b(when)\b", re.IGNORECASE)
# Questions that ask for a kind of value without "how much" or "when": "what does X cost?",
# "what's the fee for ...", "what time does ... open?", "what age ...".
_VALUE_WORDS = (
    ("much", re.compile(r"\b(?:cost|costs|price|prices|priced|fee|fees|charge|charges|charged|pay)\b", re.IGNORECASE)),
    ("when", re.compile(r"\bwhat\s+time\b|\b(?:opening\s+hours|open\s+until|until\s+when)\b", re.IGNORECASE)),
    ("old", re.compile(r"\b(?:what|minimum|maximum)\s+age\b", re.IGNORECASE)),
    ("email", re.compile(r"\be-?mail\s+address\b", re.IGNORECASE)),
    (
        "phone",
        re.compile(
            r"\b(?:phone|telephone|contact)\s+number\b|\bnumber\s+(?:to|do\s+i|should\s+i)\s+call\b", re.IGNORECASE
        ),
    ),
)
# A question about all of something ("log out of all my devices") is not answered by a passage
# about one of them or about what is not affected: such passages are the opposite case.
_UNIVERSAL = re.compile(r"\b(?:all|every|everywhere|everything|everyone|each)\b", re.IGNORECASE)
_RESTRICTIVE = re.compile(r"\b(?:only|not|never|none|no\s+other)\b|n't\b", re.IGNORECASE)
# Where a compound question splits: after a sentence, or at ", and" / "and" before a question word.
_PART_BOUNDARY = re.compile(
    r"(?<=[.?!])\s+|,\s*(?:and\s+)?(?=(?:how|what|when|where|who|which|until|is|are|can|do|does|will)\b)"
    r"|\s+and\s+(?=(?:how|what|when|where|who|which|until|is|are|can|do|does|will)\b)",
    re.IGNORECASE,
)
_UNIT_OF_TIME = r"(?:second|minute|hour|day|week|month|year|night)s?"
_NUMBER_WORD = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|thirty|sixty)"
_DURATION = rf"\b{_NUMBER_WORD}[\s-]+(?:\w+[\s-]+)?{_UNIT_OF_TIME}\b"
# "free" is a price ("reservations are free"), but not before what is available ("a free time slot").
_AMOUNT = (
    r"[$\u20ac\u00a3]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:%|percent|eur|euros?|usd|dollars?|gbp|pounds?)\b"
    r"|\bfree\b(?!\s+(?:time|slots?|places?|spaces?|seats?)\b)"
)
_DATE_OR_TIME = (
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|january|february|march"
    r"|april|may|june|july|august|september|october|november|december|\d{1,2}:\d{2}|\d{1,2}\s?(?:am|pm))\b"
)
_ANSWER_TYPES = {
    "long": re.compile(_DURATION, re.IGNORECASE),
    "soon": re.compile(_DURATION, re.IGNORECASE),
    "often": re.compile(rf"{_DURATION}|\b(?:every|daily|weekly|monthly|yearly|annually|once|twice)\b", re.IGNORECASE),
    "much": re.compile(_AMOUNT, re.IGNORECASE),
    # A count: not a time of day ("10:00"), a price or a share.
    "many": re.compile(
        r"(?<![$\u20ac\u00a3\d:.,])\b\d+\b(?![:.,]?\d)(?!\s?(?:%|am\b|pm\b|percent))"
        r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty)\b",
        re.IGNORECASE,
    ),
    "when": re.compile(rf"{_DURATION}|{_DATE_OR_TIME}", re.IGNORECASE),
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "phone": re.compile(r"\+?\d[\d ()-]{6,}\d"),
    "old": re.compile(r"\b\d+\b|\b(?:age|aged|adults?|children|under|over)\b", re.IGNORECASE),
}
# What "how many" counts: the word after it ("how many holds can I have" counts holds).
_COUNTED = re.compile(r"\bhow\s+many\s+([^\W\d_]{3,})", re.IGNORECASE)
_COUNT_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(rf"\d+|{_NUMBER_WORD}|twenty|hundred", re.IGNORECASE)
_COUNT_DISTANCE = 3  # words between a number and what it counts ("up to 15 active holds")
# "Will I pay anything if ...?" asks whether, not how much: "No." answers it without a price.
_YES_NO = re.compile(
    r"^\W*(?:will|would|do|does|did|is|are|was|were|can|could|should|shall|may|must|have|has)\b", re.IGNORECASE
)
_WORD_GROUP = re.compile(rf"(?:\S+\s*){{1,{_STREAM_WORDS}}}")
# A unit carrying its own citation ("... [2].", "[Source: Official Policy]") would read as if we had
# cited it: a document could attribute its claims to another document or to an authority. Such
# units are never quoted. Code spans ("`[1]`") are prose about markers and do not count.
_CITATION_LOOKALIKE = re.compile(
    r"[\[\uff3b\u3010]\s*(?:\d+\s*[\]\uff3d\u3011]|(?:sources?|citations?|cite|ref(?:erence)?s?|doc(?:ument)?s?)\b)",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class _Candidate:
    number: int  # the document's marker
    rank: int  # the document's retrieval rank (0 first)
    chunk_id: int
    chunk_order: int  # the chunk's position in its document
    unit: Unit
    terms: frozenset[str]
    section_terms: frozenset[str]
    similarity: float  # cosine of the question and the unit (or its chunk, without vectors)


@dataclass(frozen=True)
class ExtractiveResult:
    text: str
    citations: tuple[Citation, ...]
    abstain_reason: str | None  # "no_match" or "low_support" when it declined


def _cites_something(text: str) -> bool:
    return bool(_CITATION_LOOKALIKE.search(_CODE_SPAN.sub("", text)))


def _unit_similarities(vectors: Vectors | None, count: int, question: Vectors | None, fallback: float) -> list[float]:
    if question is None or vectors is None or vectors.shape != (count, question.shape[0]):
        return [fallback] * count
    return [float(value) for value in np.asarray(vectors, dtype=np.float32) @ question]


def _candidates(documents: Sequence[ContextDocument], question: Vectors | None) -> list[_Candidate]:
    found: list[_Candidate] = []
    for rank, document in enumerate(documents):
        for passage in document.passages:
            units = _units(passage.text)
            fallback = passage.similarity or document.similarity
            similarities = _unit_similarities(passage.unit_vectors, len(units), question, fallback)
            order = passage.index
            for (unit, terms, section_terms, cites), similarity in zip(units, similarities, strict=True):
                if not cites:
                    found.append(
                        _Candidate(
                            document.number, rank, passage.chunk_id, order, unit, terms, section_terms, similarity
                        )
                    )
    return found


@lru_cache(maxsize=1024)  # a few MB per process at most
def _units(chunk_text: str) -> tuple[tuple[Unit, frozenset[str], frozenset[str], bool], ...]:
    """A chunk's units with their terms, read once per chunk text: the same chunks answer many questions."""
    return tuple(
        (unit, frozenset(tokenize(unit.display)), frozenset(tokenize(unit.section)), _cites_something(unit.quote))
        for unit in chunk_units(chunk_text)
    )


def _question_terms(question: str, history: Sequence[Turn]) -> dict[str, float]:
    """Each question term's weight; a short follow-up borrows the previous user turn's at half weight."""
    own = tokenize(_QUESTION_TYPE.sub(" ", question))
    weights = dict.fromkeys(own, 1.0)
    if len(weights) < _SHORT_QUESTION_TERMS:
        previous = next((t.content for t in reversed(history) if t.role == "user" and t.content != question), "")
        for term in tokenize(_QUESTION_TYPE.sub(" ", previous)):
            weights.setdefault(term, _HISTORY_WEIGHT)
    return weights


def _asks_for(question: str, history: Sequence[Turn]) -> tuple[re.Pattern[str] | None, bool]:
    """What kind of text answers ``question`` (a price, a duration ...) and whether it asks how to
    do something. A short follow-up ("and a follow-up visit?") asks what the previous question asked."""
    kind = _value_kind(question)
    procedural = bool(_PROCEDURAL.search(question))
    if not kind and not procedural and len(tokenize(question)) < _SHORT_QUESTION_TERMS:
        previous = next((t.content for t in reversed(history) if t.role == "user" and t.content != question), "")
        kind = _value_kind(previous)
        procedural = bool(_PROCEDURAL.search(previous))
    return (_ANSWER_TYPES[kind] if kind else None), procedural


def _value_kind(question: str) -> str:
    match = _QUESTION_TYPE.search(question)
    if match:
        return (match.group(1) or match.group(2)).lower()
    return next((kind for kind, words in _VALUE_WORDS if words.search(question)), "")


def _previously_quoted(candidates: list[_Candidate], request: AnswerRequest) -> set[int]:
    """The documents (markers) the previous answer quoted, for a short follow-up ("and for A3?"):
    what it is about is most likely where the last answer came from. Found by the quotes themselves,
    as the previous answer's markers numbered another retrieval's documents."""
    if len(tokenize(request.question)) >= _SHORT_QUESTION_TERMS:
        return set()
    previous = next((t.content for t in reversed(request.history) if t.role == "assistant"), "")
    if not previous:
        return set()
    return {c.number for c in candidates if len(c.unit.display) >= _MIN_QUOTED_CHARS and c.unit.display in previous}


def _scores(candidates: list[_Candidate], request: AnswerRequest) -> list[float]:
    weights = _question_terms(request.searched or request.question, request.history)
    # Retrieval's spelling correction rewrites words the knowledge base never uses, real words
    # too ("older" became "holder"): the question's own words that a passage uses count as well
    # (a misspelt one is in no passage, and would only lower every passage's share).
    own = set(tokenize(_QUESTION_TYPE.sub(" ", request.question))) - weights.keys()
    if own:
        used = {term for c in candidates for term in (c.terms | c.section_terms) & own}
        weights.update(dict.fromkeys(used, 1.0))
    answer_type, procedural = _asks_for(request.question, request.history)
    universal = bool(_UNIVERSAL.search(request.question)) and not _RESTRICTIVE.search(request.question)
    scores = _weighted_scores(candidates, weights, answer_type, procedural, universal)
    quoted = _previously_quoted(candidates, request)
    return [score + PREVIOUS_ANSWER_BONUS * (c.number in quoted) for c, score in zip(candidates, scores, strict=True)]


def _weighted_scores(
    candidates: list[_Candidate],
    weights: dict[str, float],
    answer_type: re.Pattern[str] | None,
    procedural: bool,
    universal: bool = False,
) -> list[float]:
    """Each candidate's evidence: cosine similarity plus the idf-weighted share of the question's
    terms it (or its heading) contains, plus bonuses for holding what the question asks for, less
    a penalty for saying the opposite ("only that session" for "all my devices")."""
    frequency = Counter(term for c in candidates for term in (c.terms | c.section_terms) & weights.keys())
    idf = {term: math.log(1 + len(candidates) / count) for term, count in frequency.items()}
    # Terms no candidate contains count too: a question about something the documents never
    # mention has a low lexical share everywhere.
    mass = sum(weight * idf.get(term, math.log(1 + len(candidates))) for term, weight in weights.items()) or 1.0
    scores = []
    for candidate in candidates:
        own = candidate.terms & weights.keys()
        from_section = (candidate.section_terms - candidate.terms) & weights.keys()
        section_share = 1.0 if candidate.unit.kind == FAQ else 0.5
        lexical = (
            sum(weights[t] * idf[t] for t in own) + section_share * sum(weights[t] * idf[t] for t in from_section)
        ) / mass
        score = candidate.similarity + LEXICAL_WEIGHT * lexical
        if answer_type is not None and answer_type.search(candidate.unit.display):
            score += ANSWER_TYPE_BONUS
        if procedural and candidate.unit.kind == STEPS:
            score += STEPS_BONUS
        if universal and _RESTRICTIVE.search(candidate.unit.display):
            score -= RESTRICTIVE_PENALTY
        scores.append(score)
    return scores


def question_parts(question: str) -> list[str]:
    """The questions inside a compound one ("How do I prepare him, and what will it cost?"); one
    part for a simple question."""
    parts = [p.strip() for p in _PART_BOUNDARY.split(question) if p and p.strip()]
    parts = [p for p in parts if tokenize(p)]
    return parts if len(parts) > 1 else [question]


def _part_answers(candidates: list[_Candidate], request: AnswerRequest) -> list[list[tuple[_Candidate, float]]]:
    """For a compound question, each of its parts' best units with their scores, best first, from
    whichever retrieved documents answer that part best; nothing for a simple question."""
    parts = question_parts(request.question)
    if len(parts) == 1:
        return []
    context = tokenize(request.question)
    found = []
    for part in parts:
        # The part's own words lead; the rest of the question says what "it" and "him" are.
        weights = {**dict.fromkeys(context, _CONTEXT_WEIGHT), **dict.fromkeys(tokenize(part), 1.0)}
        answer_type, procedural = _asks_for(part, ())
        scores = _weighted_scores(candidates, weights, answer_type, procedural)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].rank))
        found.append([(candidates[i], scores[i]) for i in order[:_PART_RANKING]])
    return found


def _with_parts(
    chosen: list[_Candidate],
    parts: list[list[tuple[_Candidate, float]]],
    threshold: float,
    max_units: int,
    candidates: list[_Candidate],
) -> list[_Candidate]:
    """``chosen`` completed with the answer to each part of a compound question. A part's best unit
    may already be there as another part's answer: every part shares the whole question's
    similarity, so the unit closest to the whole question tops them all ("How often does my pet
    need a scale and polish?" for "how do I prepare him" and "what will it cost"). The part then
    brings its next best unit of its own if that is close to its best."""
    result = list(chosen)
    for ranking in parts:
        best_score = ranking[0][1]
        for candidate, score in ranking:
            if score < threshold or score < best_score - PART_WITHIN:
                break
            if any(c is candidate or _overlaps(candidate, c) for c in result):
                continue
            if len(result) >= max_units + len(parts) - 1:
                break
            result.append(candidate)
            result.extend(c for c in _section_context(candidate, candidates) if c not in result)
            break
    documents = list(dict.fromkeys(c.number for c in result))
    return sorted(result, key=lambda c: (documents.index(c.number), c.chunk_order, c.unit.position))


def _overlaps(a: _Candidate, b: _Candidate) -> bool:
    if a.chunk_id == b.chunk_id and (a.unit.quote in b.unit.quote or b.unit.quote in a.unit.quote):
        return True
    union = a.terms | b.terms
    return bool(union) and len(a.terms & b.terms) / len(union) >= 0.8


def _next_in_section(best: _Candidate, candidates: list[_Candidate]) -> _Candidate | None:
    """The unit read right after ``best`` in its chunk and section, if any."""
    return next(
        (
            c
            for c in candidates
            if c.chunk_id == best.chunk_id
            and c.unit.position == best.unit.position + 1
            and c.unit.section == best.unit.section
        ),
        None,
    )


def _section_context(best: _Candidate, candidates: list[_Candidate]) -> list[_Candidate]:
    """The other sentences of ``best``'s section when it is a sentence of a short section: "Suspend
    your holds for up to 90 days." then "You keep your place in the queue ...": the sentence that
    matches a paraphrase best is often not the one that states the fact."""
    if best.unit.kind != SENTENCE:
        return []
    section = [
        c for c in candidates if c is not best and c.chunk_id == best.chunk_id and c.unit.section == best.unit.section
    ]
    if 0 < len(section) < SHORT_SECTION_UNITS and all(c.unit.kind == SENTENCE for c in section):  # best + 1 or 2
        return section
    return []


def _steps_of(
    best: _Candidate, candidates: list[_Candidate], scores: list[float], best_score: float
) -> _Candidate | None:
    """For a question asking how to do something answered best by a sentence ("You can unlock bikes
    for other people from your own account."), the best numbered steps of the same document, if
    they are not far below: the sentence says it can be done, the steps say how."""
    if best.unit.kind == STEPS:
        return None
    steps = [
        (score, c)
        for c, score in zip(candidates, scores, strict=True)
        if c.unit.kind == STEPS and c.number == best.number
    ]
    if not steps:
        return None
    score, candidate = max(steps, key=lambda pair: pair[0])
    return candidate if score >= best_score - STEPS_WITHIN else None


def _select(
    candidates: list[_Candidate],
    scores: list[float],
    max_units: int,
    answer_type: re.Pattern[str] | None = None,
    procedural: bool = False,
) -> list[_Candidate]:
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].rank, candidates[i].chunk_order))
    best_index = order[0]
    best, best_score = candidates[best_index], scores[best_index]
    chosen = [best]
    length = len(best.unit.display)
    following = _next_in_section(best, candidates) if answer_type is not None else None
    if following is not None and answer_type is not None and answer_type.search(following.unit.display):
        # "Cards are free for residents." then "Others pay €30 a year.": the value asked for is
        # often stated (again, or for the other case) right after the sentence that matches best.
        chosen.append(following)
        length += len(following.unit.display)
    for candidate in _section_context(best, candidates):
        if candidate not in chosen and length + len(candidate.unit.display) <= MAX_ANSWER_CHARS:
            chosen.append(candidate)
            length += len(candidate.unit.display)
            max_units += 1  # context of the best unit, not another answer
    steps = _steps_of(best, candidates, scores, best_score) if procedural else None
    if steps is not None and length + len(steps.unit.display) <= MAX_ANSWER_CHARS:
        chosen.append(steps)
        length += len(steps.unit.display)
        max_units += 1
    for index in order[1:]:
        candidate, score = candidates[index], scores[index]
        margin = KEEP_WITHIN if candidate.number == best.number else OTHER_DOCUMENT_WITHIN
        if len(chosen) == max_units or score < best_score - margin:
            continue
        if length + len(candidate.unit.display) > MAX_ANSWER_CHARS or any(_overlaps(candidate, c) for c in chosen):
            continue
        chosen.append(candidate)
        length += len(candidate.unit.display)
    documents = list(dict.fromkeys(c.number for c in chosen))
    return sorted(chosen, key=lambda c: (documents.index(c.number), c.chunk_order, c.unit.position))


def _render(chosen: list[_Candidate]) -> str:
    parts: list[str] = []
    previous: _Candidate | None = None
    for candidate in chosen:
        text = f"{candidate.unit.display} [{candidate.number}]"
        inline = candidate.unit.kind in (SENTENCE, FAQ) and "\n" not in candidate.unit.display
        if previous is not None:
            same_flow = inline and previous.unit.kind in (SENTENCE, FAQ) and previous.chunk_id == candidate.chunk_id
            parts.append(" " if same_flow else "\n\n")
        parts.append(text)
        previous = candidate
    return "".join(parts)


def _counts(text: str, noun: str) -> bool:
    """Whether ``text`` gives a number of ``noun``: a number within a few words of it ("up to 15
    active holds", "holds: 15")."""
    target = tokenize(noun)
    words = _COUNT_WORD.findall(text)
    numbers = [i for i, word in enumerate(words) if _NUMBER.fullmatch(word)]
    return any(
        tokenize(word) == target and any(abs(i - n) <= _COUNT_DISTANCE for n in numbers) for i, word in enumerate(words)
    )


def _support_needed(unknown: Sequence[str]) -> float:
    """The best score an answer needs: higher for each of the question's content words that no
    document of the knowledge base uses (the question is about something it never mentions)."""
    return MIN_SUPPORT + UNKNOWN_TERM_PENALTY * len(unknown)


def extractive_result(request: AnswerRequest, *, max_units: int | None = None) -> ExtractiveResult:
    """The answer, the citation behind each marker, and why it declined if it did."""
    if not request.documents:
        return ExtractiveResult(NO_INFORMATION_ANSWER, (), NO_MATCH)
    rest = new_topic(request.question)
    if rest is not None:  # "totally unrelated: what's your email?" owes nothing to the conversation
        request = replace(request, question=rest, history=())
    question = None if request.question_vector is None else np.asarray(request.question_vector, dtype=np.float32)
    candidates = _candidates(request.documents, question)
    if not candidates:
        return ExtractiveResult(NO_INFORMATION_ANSWER, (), LOW_SUPPORT)
    scores = _scores(candidates, request)
    parts = _part_answers(candidates, request)
    needed = _support_needed(request.unknown_terms)
    # A compound question is answered when one of its parts is, with the parts that are.
    if max([*scores, *(ranking[0][1] for ranking in parts)]) < needed:
        return ExtractiveResult(NO_INFORMATION_ANSWER, (), LOW_SUPPORT)
    answer_type, procedural = _asks_for(request.question, request.history)
    limit = max(1, max_units or MAX_UNITS)
    chosen = _select(candidates, scores, limit, answer_type, procedural) if max(scores) >= needed else []
    chosen = _with_parts(chosen, parts, needed, limit, candidates)
    # Only a value the question itself asks for: a short follow-up inherits the previous question's
    # kind for scoring, but "reset password?" after "how much is printing?" does not ask for a price.
    asks_value = bool(_value_kind(request.question)) and not parts and not _YES_NO.match(request.question)
    if asks_value and answer_type is not None and not any(answer_type.search(c.unit.display) for c in chosen):
        # The question asks for a price, a duration, an address ...: evidence without one does not answer it.
        return ExtractiveResult(NO_INFORMATION_ANSWER, (), LOW_SUPPORT)
    counted = _COUNTED.search(request.question)
    if counted and not parts and not any(_counts(c.unit.display, counted.group(1)) for c in chosen):
        # "How many books does the library hold?" is not answered by "6 branches" and "7 days".
        return ExtractiveResult(NO_INFORMATION_ANSWER, (), LOW_SUPPORT)
    citations = tuple(Citation(c.number, c.chunk_id, c.unit.quote) for c in chosen)
    return ExtractiveResult(_render(chosen), citations, None)


def extractive_answer(request: AnswerRequest, *, max_units: int | None = None) -> str:
    """The answer's text alone."""
    return extractive_result(request, max_units=max_units).text


class ExtractiveGenerator:
    """``Generator`` that answers extractively, offline; never fails, never calls out."""

    name = "extractive"
    model = "extractive-v2"

    def __init__(self, *, max_units: int | None = None) -> None:
        self.max_units = max_units

    def generate(self, request: AnswerRequest) -> Generation:
        """The whole answer at once, with the quote behind each of its markers."""
        result = extractive_result(request, max_units=self.max_units)
        return Generation(
            text=result.text, model=self.model, citations=result.citations, abstain_reason=result.abstain_reason
        )

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]:
        """The same answer in groups of a few words; the deltas concatenate to ``generate``'s text."""
        for group in stream_text(self.generate(request).text):
            yield GenerationDelta(text=group)


def stream_text(text: str) -> Iterator[str]:
    """``text`` in groups of a few words (with their spacing), for a stream that reads naturally."""
    for match in _WORD_GROUP.finditer(text):
        yield match.group(0)
