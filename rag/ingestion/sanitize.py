"""Markup taken out of ingested text, so that no document can carry it into an answer or an export.

Two kinds of markup are removed from a document's title and text before anything is stored:

- tags that would forge the prompt's fences (``<document …>``, ``</document>``, ``<turn …>``),
  look-alike brackets (fullwidth ``＜``, angle quotes) and zero-width characters included;
- HTML: comments, ``<!doctype>``, processing instructions, ``<script>``/``<style>`` with their
  content (outside code; an opener that never closes goes alone), and the tags of HTML elements
  (``<img src=x onerror=…>``, ``<a href=…>``, ``<b>``), keeping the text between them; and any
  tag, whatever its name, that carries an ``on…=`` handler or a ``javascript:`` URL.

Angle brackets that are not HTML stay: documentation writes placeholders such as ``<token>``,
``<PUBLIC_BASE_URL>`` or ``Ann <ann@example.com>``. Inside Markdown code (a `` `span` `` or a
fenced block) an element's tag is shown, not rendered, so a bare one such as `` `<title>` `` is
kept there; a tag that can run or fetch something (``script``, ``img``, ``iframe`` …) is removed
everywhere.

The input is hostile by assumption, so every pattern here runs in linear time (possessive
quantifiers, no nested ambiguity) and the code regions are found by a single scan. Pure
functions, no Django.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

_INVISIBLE = r"[\s\u200b-\u200f\u2060\ufeff]*+"
_OPEN = r"[<\uff1c\ufe64\u2039\u2329\u27e8\u3008]"
_CLOSE = r"[>\uff1e\ufe65\u203a\u232a\u27e9\u3009]"
_NOT_IN_NAME = r"""\s=<>"'\uff1c\uff1e"""
# Attributes as a browser (or a model) would read them; a quote left open runs to the end of the line.
_ATTRIBUTES = (
    rf"""(?:\s++[^{_NOT_IN_NAME}]++(?:\s*+=\s*+(?:"[^"\n]*+"?|'[^'\n]*+'?|[^{_NOT_IN_NAME}]*+))?+)*+\s*+/?\s*+"""
)
_FENCE_NAMES = r"(?:documents?|turns?)\b"
# The prompt's fence tags (rag.providers.prompt), opening or closing, with or without a closing bracket.
_FENCE = re.compile(rf"{_OPEN}{_INVISIBLE}/?{_INVISIBLE}{_FENCE_NAMES}{_ATTRIBUTES}{_CLOSE}?", re.IGNORECASE)

# Elements whose tag can run code, load a resource or take over the page when rendered.
_ACTIVE_ELEMENTS = frozenset(
    [
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "img", "image", "svg",
        "math", "video", "audio", "source", "track", "picture", "link", "meta", "base", "form", "input",
        "button", "textarea", "select", "option", "template", "noscript", "portal",
    ]
)  # fmt: skip
_OTHER_ELEMENTS = frozenset(
    [
        "a", "abbr", "address", "area", "article", "aside", "b", "bdi", "bdo", "blockquote", "body", "br",
        "caption", "center", "cite", "code", "col", "colgroup", "data", "datalist", "dd", "del", "details",
        "dfn", "dialog", "div", "dl", "dt", "em", "fieldset", "figcaption", "figure", "font", "footer", "h1",
        "h2", "h3", "h4", "h5", "h6", "head", "header", "hgroup", "hr", "html", "i", "ins", "kbd", "label",
        "legend", "li", "main", "map", "mark", "marquee", "menu", "meter", "nav", "ol", "optgroup", "output",
        "p", "param", "pre", "progress", "q", "rp", "rt", "ruby", "s", "samp", "search", "section", "slot",
        "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "time", "title", "tr", "tt", "u", "ul", "var", "wbr",
    ]
)  # fmt: skip
# A complete tag: name, then attributes (quoted values may hold ">"), then ">".
_TAG = re.compile(r"""<(/?)([A-Za-z][\w:.-]*+)((?:"[^"]*+"|'[^']*+'|[^<>"']++)*+)>""")
_HANDLER = re.compile(r"""(?:^|[\s/"'])on[a-z]++\s*+=|(?:java|vb)script\s*+:""", re.IGNORECASE)
_SCRIPT_OPEN = re.compile(r"<(script|style)\b[^<>]*+>", re.IGNORECASE)
_DECLARATIONS = re.compile(
    r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<![A-Za-z][^<>]*+>|<\?[^<>]*+(?:>|\Z)", re.DOTALL
)
# What is left of an active element's tag that never closed: its "<" goes.
_DANGLING = re.compile(rf"<(?=/?(?:{'|'.join(sorted(_ACTIVE_ELEMENTS))})(?:[\s/]|\Z))", re.IGNORECASE)
# Last resort, for markup nested to defeat removal: every tag opener left is defused, in one pass
# that removes nothing (so it cannot join anything either). Only such documents lose "<token>".
_ANY_OPENER = re.compile(rf"<(?=/?[A-Za-z])|{_OPEN}(?={_INVISIBLE}/?{_INVISIBLE}{_FENCE_NAMES})", re.IGNORECASE)
_CODE_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_BACKTICKS = re.compile(r"`++")
_MAX_PASSES = 4


def strip_markup(text: str) -> str:
    """``text`` without forged fences and HTML markup (see the module docstring for what stays)."""
    # Repeated: removing one tag must not join the halves of another ("<im<b>g src=x onerror=...>").
    for _ in range(_MAX_PASSES):
        stripped = _strip_once(text)
        if stripped == text:
            return text
        text = stripped
    # Nested deeper than that on purpose: whatever still opens a tag is defused, in one final pass.
    return _ANY_OPENER.sub("&lt;", text)


def strip_markup_line(text: str) -> str:
    """A one-line value (a title): markup stripped and whitespace collapsed."""
    return " ".join(strip_markup(text).split())


def _strip_once(text: str) -> str:
    text = _drop_script_bodies(text)
    parts: list[str] = []
    position = 0
    for start, end in _code_regions(text):
        parts.append(_strip(text[position:start], in_code=False))
        parts.append(_strip(text[start:end], in_code=True))
        position = end
    parts.append(_strip(text[position:], in_code=False))
    return "".join(parts)


def _strip(text: str, *, in_code: bool) -> str:
    if not in_code:
        text = _DECLARATIONS.sub("", text)
    text = _TAG.sub(lambda tag: _tag_replacement(tag, in_code=in_code), text)
    return _DANGLING.sub("", _FENCE.sub("", text))


def _tag_replacement(tag: re.Match[str], *, in_code: bool) -> str:
    name = tag.group(2).lower()
    if name in _ACTIVE_ELEMENTS or _HANDLER.search(tag.group(3)) or re.fullmatch(_FENCE_NAMES, name):
        return ""
    if name in _OTHER_ELEMENTS and not in_code:
        return ""
    return tag.group(0)


def _drop_script_bodies(text: str) -> str:
    """``<script>``/``<style>`` elements with their content, outside code. Inside a code span or
    block such a tag is shown, not run ("used for the ``<script>`` tag's attributes"): the text
    stays (the tag itself goes later, as every active tag does). An opener that never closes loses
    only itself: read as running to the end, one "<script>" in prose cost a page the rest of its
    text (Sphinx's configuration page lost 60% of it)."""
    if not _SCRIPT_OPEN.search(text):
        return text  # most documents: no code regions to find
    closings = {  # (start, end) of each closing tag, by element
        name: [match.span() for match in re.finditer(rf"</{name}\s*+>", text, re.IGNORECASE)]
        for name in ("script", "style")
    }
    regions = list(_code_regions(text))
    region_starts = [start for start, _ in regions]
    parts: list[str] = []
    position = 0
    for opening in _SCRIPT_OPEN.finditer(text):
        if opening.start() < position:
            continue  # inside a body already dropped
        region = bisect.bisect_right(region_starts, opening.start()) - 1
        if region >= 0 and regions[region][1] > opening.start():
            continue  # shown as code
        ends = closings[opening.group(1).lower()]
        following = bisect.bisect_left(ends, (opening.end(), 0))
        parts.append(text[position : opening.start()])
        position = ends[following][1] if following < len(ends) else opening.end()
    parts.append(text[position:])
    return "".join(parts)


def _code_regions(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each Markdown code region, in order: fenced blocks (an unclosed one runs to
    the end, as in CommonMark) and inline spans within a line, found in one scan."""
    offset = 0
    fence: tuple[str, int, int] | None = None  # (character, length, start offset)
    for line in text.splitlines(keepends=True):
        opener = _CODE_FENCE.match(line)
        if fence is not None:
            char, length, start = fence
            if (
                opener
                and opener.group(1)[0] == char
                and len(opener.group(1)) >= length
                and not line[opener.end() :].strip()
            ):
                yield start, offset + len(line)
                fence = None
        elif opener:
            fence = (opener.group(1)[0], len(opener.group(1)), offset)
        else:
            yield from ((offset + start, offset + end) for start, end in _inline_spans(line))
        offset += len(line)
    if fence is not None:
        yield fence[2], len(text)


def _inline_spans(line: str) -> Iterator[tuple[int, int]]:
    """Code spans: a run of backticks closed by the next run of the same length."""
    runs = [(run.start(), run.end()) for run in _BACKTICKS.finditer(line)]
    following: list[int | None] = [None] * len(runs)  # index of the next run of the same length
    last_seen: dict[int, int] = {}
    for index in range(len(runs) - 1, -1, -1):
        length = runs[index][1] - runs[index][0]
        following[index] = last_seen.get(length)
        last_seen[length] = index
    index = 0
    while index < len(runs):
        closing = following[index]
        if closing is None:
            index += 1
            continue
        yield runs[index][0], runs[closing][1]
        index = closing + 1
