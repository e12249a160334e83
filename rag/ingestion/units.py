"""The passages an extractive answer can quote, read from a chunk along its structure.

A unit is what is quoted whole: a sentence; a lead sentence ending in ":" with the list, steps or
table it introduces; a table row read with its header; an FAQ answer under its question heading.
Each unit's ``quote`` is an exact substring of the chunk text, so that a citation can be checked
against the chunk; ``display`` is how it reads in an answer (a table row with its header names).
Pure: ingestion embeds ``embed_text`` of every unit, and the answerer reads the same units back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.ingestion.chunking import PATH_SEPARATOR, chunk_body, chunk_heading, split_sentences
from rag.ingestion.structure import clean_inline

SENTENCE, LIST, STEPS, ROW, TABLE, FAQ = "sentence", "list", "steps", "row", "table", "faq"
MIN_SENTENCE_CHARS = 20
MAX_LIST_ITEMS = 12
MAX_TABLE_ROWS = 8
_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+")


@dataclass(frozen=True)
class Unit:
    kind: str
    quote: str  # exact substring of the chunk text
    display: str  # how the unit reads in an answer
    position: int  # reading order within the chunk
    section: str  # the innermost heading above it ("" if none)

    @property
    def embed_text(self) -> str:
        """What is embedded for this unit: its section heading, then the unit as it reads."""
        return f"{self.section}: {self.display}" if self.section else self.display


def plain(text: str) -> str:
    """Inline markup reduced to its text, as chunking does (chunks from older ingestions keep it)."""
    stripped = text.lstrip()
    return clean_inline(stripped.lstrip("#") if stripped.startswith("#") else text)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _row_display(header: list[str], row: str) -> str:
    cells = _cells(row)
    pairs = [f"{name}: {value}" if name else value for name, value in zip(header, cells, strict=False) if value]
    return "; ".join(pairs) + "."


def _piece_units(piece: str, section: str, is_faq: bool, start: int) -> list[Unit]:
    lines = [line for line in piece.split("\n") if line.strip()]
    if not lines or lines[0].startswith("```") or (len(lines) > 1 and lines[1].startswith("```")):
        # Code is never quoted as an answer; a lead sentence before it still reads as a sentence.
        return [] if lines[0].startswith("```") else _sentences(lines[0], section, is_faq, start)
    first_item = next((i for i, line in enumerate(lines) if _ITEM.match(line)), None)
    if first_item is not None and all(_ITEM.match(line) or line.startswith(" ") for line in lines[first_item:]):
        return _list_units(lines, first_item, section, start)
    first_row = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first_row is not None and all(line.startswith("|") for line in lines[first_row:]):
        return _table_units(lines, first_row, section, start)
    if is_faq:
        return [Unit(FAQ, piece, plain(" ".join(lines)), start, section)]
    return _sentences(" ".join(lines) if len(lines) > 1 else lines[0], section, False, start, quote_source=piece)


def _sentences(text: str, section: str, is_faq: bool, start: int, quote_source: str | None = None) -> list[Unit]:
    source = quote_source if quote_source is not None else text
    units: list[Unit] = []
    for sentence in split_sentences(text):
        quote = _located(sentence, source)
        if len(sentence) < MIN_SENTENCE_CHARS or quote is None:
            continue
        units.append(Unit(FAQ if is_faq else SENTENCE, quote, plain(sentence), start + len(units), section))
    return units


def _located(sentence: str, source: str) -> str | None:
    """``sentence`` as it stands in ``source``, where a space may have been a line break."""
    if sentence in source:
        return sentence
    match = re.search(r"\s+".join(re.escape(word) for word in sentence.split()), source)
    return match.group(0) if match else None


def _list_units(lines: list[str], first_item: int, section: str, start: int) -> list[Unit]:
    lead = " ".join(lines[:first_item])
    items = lines[first_item:]
    numbered = all(_NUMBERED.match(item) for item in items if not item.startswith(" "))
    kind = STEPS if numbered else LIST
    units: list[Unit] = []
    if lead and not lead.endswith(":"):
        units += _sentences(lead, section, False, start)
        lead = ""
    if len(items) <= MAX_LIST_ITEMS or numbered:
        quote = "\n".join([*([lead] if lead else []), *items])
        display = "\n".join([*([plain(lead)] if lead else []), *(plain(item.strip()) for item in items)])
        return [*units, Unit(kind, quote, display, start + len(units), section)]
    # A long bulleted list: each item is a unit of its own, read after the lead.
    for item in items:
        text = _ITEM.sub("", item).strip()
        if len(text) >= MIN_SENTENCE_CHARS // 2:
            display = f"{plain(lead)} {plain(text)}" if lead else plain(text)
            units.append(Unit(LIST, item, display, start + len(units), section))
    return units


def _table_units(lines: list[str], first_row: int, section: str, start: int) -> list[Unit]:
    lead = " ".join(lines[:first_row])
    units = _sentences(lead, section, False, start) if first_row else []
    header = [plain(cell) for cell in _cells(lines[first_row])]
    rows = lines[first_row + 1 :]
    if lead.endswith(":") and len(rows) <= MAX_TABLE_ROWS:
        # "The plans are:" and a small table: the whole table reads as the answer, like a list.
        display = "\n".join([plain(lead), *(_row_display(header, row) for row in rows)])
        units.append(Unit(TABLE, "\n".join(lines), display, start + len(units), section))
    for row in rows:
        units.append(Unit(ROW, row, _row_display(header, row), start + len(units), section))
    return units


def chunk_units(chunk_text: str) -> list[Unit]:
    """The quotable units of one chunk (``"{heading path}\\n\\n{body}"``), in reading order."""
    heading = chunk_heading(chunk_text)
    section = heading.rsplit(PATH_SEPARATOR, 1)[-1].strip() if heading else ""
    is_faq = section.endswith("?")
    units: list[Unit] = []
    for number, piece in enumerate(chunk_body(chunk_text).split("\n\n")):
        units += _piece_units(piece, section, is_faq and number == 0, len(units))
    # A sentence ending in ":" announces what follows; quoted without it (code is never quoted) it
    # answers nothing.
    return [u for u in units if not (u.kind in (SENTENCE, FAQ) and u.display.rstrip().endswith(":"))]
