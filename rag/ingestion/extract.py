"""Text extraction from uploaded files: .txt, .md, .rst, .html/.htm and .pdf.

Every failure is a ``ValidationFailed`` (``unsupported_file_type`` or ``unreadable_file``), never
a parser's own exception. The text comes back with normalised line endings and paragraphs
separated by blank lines, ready for chunking.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag

from rag.ingestion.limits import pdf_parse
from rag.ingestion.structure import parse_structure
from utils.exceptions import ValidationFailed

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | HTML_EXTENSIONS | {".pdf"}

_DROPPED_TAGS = ["script", "style", "nav", "noscript", "template", "iframe", "svg", "head"]
_BLOCK_TAGS = [
    "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "table", "ul", "ol", "dl",
    "figure", "figcaption", "details", "summary", "form", "fieldset", "address", "hr",
]  # fmt: skip
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ExtractedText:
    title: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def extract_text(filename: str, data: bytes) -> ExtractedText:
    """Extract the title, text and metadata of an uploaded file, chosen by its extension."""
    extension = PurePath(filename).suffix.lower()
    if extension in {".md", ".markdown"}:
        return _markdown(decode_text(data))
    if extension == ".rst":
        return _restructured_text(decode_text(data))
    if extension == ".txt":
        text = normalise_text(decode_text(data))
        return ExtractedText(title=parse_structure(text).title, text=text)
    if extension in HTML_EXTENSIONS:
        return _html(decode_text(data))
    if extension == ".pdf":
        return _pdf(data)
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    raise ValidationFailed(
        f"Files of type {extension or '(none)'} are not supported: use one of {supported}.",
        code="unsupported_file_type",
    )


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252; binary data is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = ("utf-8-sig", "cp1252")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        # Text files do not contain NULs or many control characters; binary files do.
        if "\x00" in text or len(_CONTROL_CHARS.findall(text)) > max(8, len(text) // 100):
            break
        return text
    raise ValidationFailed("The file is not readable text.", code="unreadable_file")


def normalise_text(text: str) -> str:
    """NFKC (ligatures such as "ﬁ", full-width forms), Unix line endings, no trailing spaces, at
    most one blank line between paragraphs."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+$", "", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A leading ``---`` block of ``key: value`` lines (``[a, b]`` lists) and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    metadata: dict[str, Any] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or not key or key.startswith("#") or line[:1].isspace():
            continue
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            metadata[key] = [_unquote(item) for item in value[1:-1].split(",") if item.strip()]
        else:
            metadata[key] = _unquote(value)
    return metadata, text[match.end() :]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _markdown(raw: str) -> ExtractedText:
    metadata, body = parse_front_matter(normalise_text(raw))
    title = str(metadata.get("title") or "").strip() or parse_structure(body).title
    return ExtractedText(title=title, text=body.strip(), metadata=metadata)


def _restructured_text(raw: str) -> ExtractedText:
    text = normalise_text(raw)
    return ExtractedText(title=parse_structure(text).title, text=text)


def _html(raw: str) -> ExtractedText:
    """The page as Markdown-like text: headings, list items, table rows and code keep their shape."""
    soup = BeautifulSoup(raw, "html.parser")
    title_tag, h1 = soup.find("title"), soup.find("h1")
    title = _clean_inline(title_tag.get_text()) if title_tag else ""
    if not title and h1:
        title = _clean_inline(h1.get_text())
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    # Last first: a list item is numbered by the items before it, still unconverted then.
    for tag in reversed(soup.find_all(["pre", *_HEADINGS, "li", "tr"])):
        if isinstance(tag, Tag) and tag.parent is not None and not tag.find_parent("pre"):
            tag.replace_with(NavigableString(_html_block(tag)))
    for tag in soup.find_all(_BLOCK_TAGS):
        if isinstance(tag, Tag):
            # Paragraph breaks around block elements; inline elements stay within their sentence.
            tag.insert_before(NavigableString("\n\n"))
            tag.insert_after(NavigableString("\n\n"))
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    paragraphs = (_html_paragraph(part) for part in re.split(r"\n[ \t\u00a0]*\n", soup.get_text()))
    text = "\n\n".join(p for p in paragraphs if p)
    return ExtractedText(title=title or None, text=normalise_text(text))


_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_CODE_FENCE = "\u0060\u0060\u0060"


def _html_block(tag: Tag) -> str:
    """One structural element as its Markdown line(s), set apart from the text around it."""
    if tag.name == "pre":
        # Blank lines inside the code would read as paragraph breaks of the page: dropped.
        code = "\n".join(line for line in tag.get_text().split("\n") if line.strip())
        return f"\n\n{_CODE_FENCE}\n{code}\n{_CODE_FENCE}\n\n"
    if tag.name in _HEADINGS:
        return f"\n\n{'#' * int(tag.name[1])} {_clean_inline(tag.get_text())}\n\n"
    if tag.name == "tr":
        cells = [_clean_inline(cell.get_text()).replace("|", "/") for cell in tag.find_all(["td", "th"])]
        return f"\n| {' | '.join(cells)} |"
    ordered = tag.parent is not None and tag.parent.name == "ol"
    marker = f"{len(tag.find_previous_siblings('li')) + 1}." if ordered else "-"
    return f"\n{marker} {_clean_inline(tag.get_text(' '))}"


def _html_paragraph(part: str) -> str:
    """A paragraph of the page's text: prose on one line; code, list and table lines as they are."""
    lines = [line for line in part.split("\n") if line.strip()]
    if lines and lines[0].strip() == _CODE_FENCE:
        return "\n".join(line.rstrip() for line in lines)
    if any(re.match(r"\s*(?:[-|#]|\d+\.)\s", line) for line in lines):
        return "\n".join(_clean_inline(line) for line in lines)
    return _clean_inline(part)


def _clean_inline(text: str) -> str:
    return " ".join(text.split())


def _pdf(data: bytes) -> ExtractedText:
    # In a child process with page, text, time and memory limits (rag/ingestion/limits.py).
    parsed = pdf_parse(data)
    pages, info_title = parsed.pages, parsed.title
    text = "\n\n".join(normalise_text(page) for page in pages if page.strip())
    title = _clean_inline(str(info_title)) if info_title else None
    return ExtractedText(title=title or None, text=normalise_text(text), metadata={"page_count": parsed.page_count})
