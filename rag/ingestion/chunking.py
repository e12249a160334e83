"""Splitting documents into overlapping chunks on paragraph and sentence boundaries.

Pure and deterministic. Each chunk is ``"{title}\\n\\n{body}"``: the title travels with every
chunk so that a chunk read alone (by the embedder, by the generator) still says what it is about.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Lines that stand on their own even without a blank line before them: list items, headings,
# table rows. Other single newlines are soft wraps and become spaces.
_OWN_LINE = re.compile(r"^\s*(?:[-*+\u2022]\s|\d{1,3}[.)]\s|#{1,6}\s|\|)")
# A sentence ends at . ! ? or … (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "fig", "approx", "incl"}
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_NEXT_CHAR = re.compile(r"\s*(\S)")
# Paragraph breaks are preferred chunk boundaries once a chunk is this full.
_PARAGRAPH_FILL = 0.75


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an overlong one) and the block it came from."""

    text: str
    paragraph: int
    block: int


def split_sentences(text: str) -> list[str]:
    """Sentences of one block of text, each an exact (stripped) substring of ``text``."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if _is_abbreviation(text, match.start(), end):
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_abbreviation(text: str, dot: int, end: int) -> bool:
    if text[dot] != ".":
        return False
    # Bounded look-behind and look-ahead: a block may be a whole page of text.
    word = _WORD_BEFORE.search(text, max(0, dot - 24), dot)
    token = word.group(1).lower() if word else ""
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return True
    following = _NEXT_CHAR.match(text, end)
    return bool(following and following.group(1).islower())  # "approx. two days" goes on


def _blocks(text: str) -> list[tuple[int, str]]:
    """(paragraph number, block) pairs; soft-wrapped lines are joined, list items kept apart."""
    blocks: list[tuple[int, str]] = []
    for number, paragraph in enumerate(_PARAGRAPH_BREAK.split(text.replace("\r\n", "\n"))):
        current: list[str] = []
        for line in paragraph.split("\n"):
            if not line.strip():
                continue
            if current and _OWN_LINE.match(line):
                blocks.append((number, " ".join(current)))
                current = []
            current.append(" ".join(line.split()))
        if current:
            blocks.append((number, " ".join(current)))
    return blocks


def _split_long(sentence: str, limit: int) -> list[str]:
    """An overlong sentence in pieces of at most ``limit`` characters, cut between words."""
    pieces: list[str] = []
    current = ""
    for word in sentence.split(" "):
        if current and len(current) + 1 + len(word) > limit:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _units(text: str, target_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for block_number, (paragraph, block) in enumerate(_blocks(text)):
        for sentence in split_sentences(block):
            for piece in _split_long(sentence, target_chars):
                units.append(_Unit(piece, paragraph, block_number))
    return units


def _join(units: list[_Unit]) -> str:
    parts: list[str] = []
    for previous, unit in zip([None, *units], units, strict=False):
        if previous is not None:
            parts.append(
                " " if previous.block == unit.block else "\n" if previous.paragraph == unit.paragraph else "\n\n"
            )
        parts.append(unit.text)
    return "".join(parts)


def _overlap(chunk: list[_Unit], overlap_chars: int, room: int) -> list[_Unit]:
    """The last whole sentences of ``chunk`` that fit in ``overlap_chars`` and in ``room``."""
    kept: list[_Unit] = []
    size = 0
    for unit in reversed(chunk[1:]):  # never the whole previous chunk again
        size += len(unit.text) + 1
        if size > min(overlap_chars, room):
            break
        kept.insert(0, unit)
    return kept


def split_into_chunks(*, title: str, text: str, target_chars: int = 800, overlap_chars: int = 150) -> list[str]:
    """Chunks of about ``target_chars`` (body), overlapping by whole sentences, each titled."""
    if target_chars <= 0 or overlap_chars < 0:
        raise ValueError("target_chars must be positive and overlap_chars not negative")
    units = _units(text, target_chars)
    bodies: list[list[_Unit]] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        new_paragraph = bool(current) and unit.paragraph != current[-1].paragraph
        full = size + 1 + len(unit.text) > target_chars or (new_paragraph and size >= target_chars * _PARAGRAPH_FILL)
        if current and full:
            bodies.append(current)
            current = _overlap(current, overlap_chars, target_chars - len(unit.text) - 1)
            size = len(_join(current))
        current.append(unit)
        size = len(_join(current))
    if current:
        bodies.append(current)
    heading = " ".join(title.split())
    return [f"{heading}\n\n{_join(body)}" if heading else _join(body) for body in bodies]


def content_hash(title: str, text: str) -> str:
    """sha256 hex of the title and text with Unicode, line endings and whitespace runs normalised."""

    def normalise(value: str) -> str:
        # Only what chunking ignores too: line endings, runs of spaces, extra blank lines.
        value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
        lines = "\n".join(" ".join(line.split()) for line in value.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", lines).strip()

    return hashlib.sha256(f"{normalise(title)}\x00{normalise(text)}".encode()).hexdigest()
