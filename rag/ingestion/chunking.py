"""Splitting a document into chunks along its own structure.

The text is read as sections (``rag.ingestion.structure``); each chunk holds whole blocks of one
section and starts with its heading path, ``"{title} › {section} › {subsection}\n\n{body}"``, so
that a chunk read alone (by the embedder, by BM25, by the answerer) still says what it is about.
A paragraph ending in ":" stays with the list, table or code that it introduces; a list or table
too long for one chunk is cut between items or rows, and each piece repeats the lead sentence
and the table's header. Chunks are sized in the embedder's tokens: the local model reads 256, and
a chunk it cannot read whole is a chunk half-indexed. Pure and deterministic.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace

from rag.ingestion.structure import CODE, LIST, PARAGRAPH, TABLE, Block, parse_structure

TokenCounter = Callable[[str], int]

MAX_TOKENS = 256  # the local embedder's window, [CLS] and [SEP] included
PATH_SEPARATOR = " \u203a "  # " › "
_SPECIAL_TOKENS = 2
_SAFETY = 4  # the sum of the pieces' counts can be a token or two short of the whole's
_MIN_BODY_TOKENS = 48
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "fig", "approx", "incl"}
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_ROUGH_TOKEN = re.compile(r"\w+|[^\w\s]")


def approximate_tokens(text: str) -> int:
    """A WordPiece-like count without a tokenizer: a piece per short word, more for long ones."""
    return sum(1 + len(piece) // 8 for piece in _ROUGH_TOKEN.findall(text))


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


@dataclass(frozen=True)
class _Unit:
    """What stays together in a chunk if it fits: a block, or a lead sentence and its block."""

    kind: str
    lead: str  # "Options:" before a list, table or code; "" otherwise
    lines: tuple[str, ...]
    path: tuple[str, ...]

    def render(self) -> str:
        return _render(self.kind, self.lead, self.lines)


def _render(kind: str, lead: str, lines: tuple[str, ...] | list[str]) -> str:
    body = "\n".join(lines)
    if kind == CODE:
        body = f"```\n{body}\n```"
    return f"{lead}\n{body}" if lead else body


def _units(blocks: list[Block]) -> list[_Unit]:
    units: list[_Unit] = []
    for block in blocks:
        previous = units[-1] if units else None
        introduces = (
            previous is not None
            and previous.kind == PARAGRAPH
            and previous.path == block.path
            and previous.lines[0].endswith(":")
            and block.kind in (LIST, TABLE, CODE)
        )
        if introduces and previous is not None:
            units[-1] = _Unit(block.kind, previous.lines[0], block.lines, block.path)
        else:
            units.append(_Unit(block.kind, "", block.lines, block.path))
    return units


def _split_words(text: str, budget: int, count: TokenCounter) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for word in text.split(" "):
        if current and count(" ".join([*current, word])) > budget:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _pack(parts: list[str], budget: int, count: TokenCounter) -> list[list[str]]:
    """Consecutive ``parts`` grouped greedily so that each group's joined text fits ``budget``."""
    groups: list[list[str]] = []
    current: list[str] = []
    size = 0
    for part in parts:
        tokens = count(part)
        if current and size + tokens > budget:
            groups.append(current)
            current, size = [], 0
        current.append(part)
        size += tokens
    if current:
        groups.append(current)
    return groups


def _pieces(unit: _Unit, budget: int, count: TokenCounter) -> list[str]:
    """``unit`` rendered in pieces of at most ``budget`` tokens, cut at its natural joints."""
    text = unit.render()
    if count(text) <= budget:
        return [text]
    if unit.kind == PARAGRAPH:
        sentences = [piece for s in split_sentences(text) for piece in _split_words(s, budget, count)]
        return [" ".join(group) for group in _pack(sentences, budget, count)]
    # A list, table or code block: each piece repeats the lead sentence (and a table its header).
    header = unit.lines[:1] if unit.kind == TABLE else ()
    if header and count(_render(unit.kind, "", list(header))) > budget - _MIN_BODY_TOKENS:
        header = ()  # a header too wide to repeat is read once, as the table's first row
    rows = list(unit.lines[len(header) :])
    fixed = count(_render(unit.kind, unit.lead, list(header)))  # code fences count too
    if unit.lead and fixed > budget - _MIN_BODY_TOKENS:
        # A lead too long to repeat before every piece ("... the default of 10 takes place. E.g.:"
        # before a code block): its last sentence leads, the sentences before it are a paragraph of
        # their own; a lead that is one long sentence is a paragraph, and the block goes on alone.
        sentences = split_sentences(unit.lead)
        rest, lead = (" ".join(sentences[:-1]), sentences[-1]) if len(sentences) > 1 else (unit.lead, "")
        before = _Unit(PARAGRAPH, "", (rest,), unit.path)
        return [*_pieces(before, budget, count), *_pieces(replace(unit, lead=lead), budget, count)]
    room = max(budget - fixed, _MIN_BODY_TOKENS)
    rows = [piece for row in rows for piece in (_split_words(row, room, count) if count(row) > room else [row])]
    return [_render(unit.kind, unit.lead, [*header, *group]) for group in _pack(rows, room, count)]


def _section_heading(title: str, path: tuple[str, ...]) -> str:
    names = [" ".join(title.split())] if title.strip() else []
    for name in path:
        if not names or name.casefold() != names[-1].casefold():
            names.append(name)
    if len(names) > 1 and names[1].casefold() == names[0].casefold():
        names.pop(1)
    return PATH_SEPARATOR.join(names)


def split_into_chunks(
    *, title: str, text: str, max_tokens: int = MAX_TOKENS, count_tokens: TokenCounter | None = None
) -> list[str]:
    """The chunks of a document: ``"{heading path}\n\n{body}"``, each at most ``max_tokens``."""
    count = count_tokens or approximate_tokens
    chunks: list[str] = []
    current: list[str] = []
    section: tuple[str, ...] | None = None
    heading = ""
    size = budget = 0
    for unit in _units(parse_structure(text).blocks):
        if unit.path != section:
            if current:
                chunks.append(_chunk(heading, current))
            current, size, section = [], 0, unit.path
            heading = _section_heading(title, unit.path)
            if max_tokens - _SPECIAL_TOKENS - _SAFETY - count(heading) < _MIN_BODY_TOKENS:
                heading = " ".join(heading.split()[:12])  # a runaway heading keeps its start
            budget = max(max_tokens - _SPECIAL_TOKENS - _SAFETY - count(heading), _MIN_BODY_TOKENS)
        for piece in _pieces(unit, budget, count):
            tokens = count(piece)
            if current and size + tokens > budget:
                chunks.append(_chunk(heading, current))
                current, size = [], 0
            current.append(piece)
            size += tokens
    if current:
        chunks.append(_chunk(heading, current))
    return chunks


def _chunk(heading: str | None, pieces: list[str]) -> str:
    body = "\n\n".join(pieces)
    return f"{heading}\n\n{body}" if heading else body


def chunk_heading(chunk: str) -> str:
    """The heading path line of a chunk made by ``split_into_chunks``."""
    head, sep, _ = chunk.partition("\n\n")
    return head if sep else ""


def chunk_body(chunk: str) -> str:
    """A chunk without its heading path line."""
    head, sep, body = chunk.partition("\n\n")
    return body if sep else head


def content_hash(title: str, text: str) -> str:
    """sha256 hex of the title and text with Unicode, line endings and whitespace runs normalised."""

    def normalise(value: str) -> str:
        # Only what chunking ignores too: line endings, runs of spaces, extra blank lines.
        value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
        lines = "\n".join(" ".join(line.split()) for line in value.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", lines).strip()

    return hashlib.sha256(f"{normalise(title)}\x00{normalise(text)}".encode()).hexdigest()
