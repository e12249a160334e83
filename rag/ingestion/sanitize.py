"""Markup taken out of ingested text, so that no document can carry it into an answer or an export.

Two kinds of markup are removed from a document's title and text before anything is stored:

- tags that would forge the prompt's fences (``<document …>``, ``</document>``, ``<turn …>``),
  look-alike brackets (fullwidth ``＜``, angle quotes) and zero-width characters included;
- HTML: comments, ``<!doctype>``, processing instructions, ``<script>``/``<style>`` with their
  content, and the tags of HTML elements (``<img src=x onerror=…>``, ``<a href=…>``, ``<b>``),
  keeping the text between them.

Angle brackets that are not HTML stay: documentation writes placeholders such as ``<token>``,
``<PUBLIC_BASE_URL>`` or ``Ann <ann@example.com>``. Inside Markdown code (a `` `span` `` or a
fenced block) an element's tag is shown, not rendered, so a bare one such as `` `<title>` `` is
kept there; a tag that can run or fetch something (``script``, ``img``, ``iframe`` …, any ``on…=``
handler, a ``javascript:`` URL) is removed everywhere. Pure functions, no Django.
"""

from __future__ import annotations

import re

_INVISIBLE = r"[\s\u200b-\u200f\u2060\ufeff]*"
_OPEN = r"[<\uff1c\ufe64\u2039\u2329\u27e8\u3008]"
_CLOSE = r"[>\uff1e\ufe65\u203a\u232a\u27e9\u3009]"
# Attributes as a browser (or a model) would read them; a quote left open runs to the end of the line.
_ATTRIBUTES = r"""(?:\s+[^\s=<>"'\uff1c\uff1e]+(?:\s*=\s*(?:"[^"\n]*"?|'[^'\n]*'?|[^\s<>"'\uff1c\uff1e]*))?)*\s*/?\s*"""

# The prompt's fence tags (rag.answering.prompt), opening or closing, with or without a closing bracket.
_FENCE = re.compile(rf"{_OPEN}{_INVISIBLE}/?{_INVISIBLE}(?:documents?|turns?)\b{_ATTRIBUTES}{_CLOSE}?", re.IGNORECASE)

# Elements whose tag can run code, load a resource or take over the page when rendered.
_ACTIVE_ELEMENTS = [
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "img", "image", "svg",
    "math", "video", "audio", "source", "track", "picture", "link", "meta", "base", "form", "input", "button",
    "textarea", "select", "option", "template", "noscript", "portal",
]  # fmt: skip
_OTHER_ELEMENTS = [
    "a", "abbr", "address", "area", "article", "aside", "b", "bdi", "bdo", "blockquote", "body", "br",
    "caption", "center", "cite", "code", "col", "colgroup", "data", "datalist", "dd", "del", "details", "dfn",
    "dialog", "div", "dl", "dt", "em", "fieldset", "figcaption", "figure", "font", "footer", "h1", "h2", "h3",
    "h4", "h5", "h6", "head", "header", "hgroup", "hr", "html", "i", "ins", "kbd", "label", "legend", "li",
    "main", "map", "mark", "marquee", "menu", "meter", "nav", "ol", "optgroup", "output", "p", "param", "pre",
    "progress", "q", "rp", "rt", "ruby", "s", "samp", "search", "section", "slot", "small", "span", "strike",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "title", "tr",
    "tt", "u", "ul", "var", "wbr",
]  # fmt: skip


def _tags(names: list[str]) -> str:
    return rf"</?(?:{'|'.join(sorted(names, key=len, reverse=True))})(?=[\s/>]){_ATTRIBUTES}>"


_SCRIPT_BODIES = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_DECLARATIONS = re.compile(r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<![A-Za-z][^>]*>|<\?.*?(?:\?>|\Z)", re.DOTALL)
# Any tag that carries an event handler or a javascript: URL, whatever its name.
_HANDLER_TAG = re.compile(
    r"""</?[A-Za-z][\w:-]*(?:\s+[^<>]*?)?(?:\bon[a-z]+\s*=|javascript\s*:)(?:"[^"]*"|'[^']*'|[^'">])*>""",
    re.IGNORECASE,
)
_ACTIVE_TAG = re.compile(_tags(_ACTIVE_ELEMENTS), re.IGNORECASE)
_ANY_ELEMENT_TAG = re.compile(_tags(_ACTIVE_ELEMENTS + _OTHER_ELEMENTS), re.IGNORECASE)
# Markdown code: a fenced block, or an inline span closed by as many backticks as opened it.
_CODE = re.compile(
    r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[ \t]*$|(`+)[^`\n][^\n]*?\2(?!`)", re.MULTILINE | re.DOTALL
)


def strip_markup(text: str) -> str:
    """``text`` without forged fences and HTML markup (see the module docstring for what stays)."""
    # Repeated until nothing changes: removing one tag must not join the halves of another
    # ("<im<b>g src=x onerror=...>").
    while (stripped := _strip_once(text)) != text:
        text = stripped
    return text


def _strip_once(text: str) -> str:
    text = _SCRIPT_BODIES.sub("", text)
    parts: list[str] = []
    position = 0
    for code in _CODE.finditer(text):
        parts.append(_strip_prose(text[position : code.start()]))
        parts.append(_strip_code(code.group(0)))
        position = code.end()
    parts.append(_strip_prose(text[position:]))
    return "".join(parts)


def strip_markup_line(text: str) -> str:
    """A one-line value (a title): markup stripped and whitespace collapsed."""
    return " ".join(strip_markup(text).split())


def _strip_code(text: str) -> str:
    return _FENCE.sub("", _ACTIVE_TAG.sub("", _HANDLER_TAG.sub("", text)))


def _strip_prose(text: str) -> str:
    return _FENCE.sub("", _ANY_ELEMENT_TAG.sub("", _HANDLER_TAG.sub("", _DECLARATIONS.sub("", text))))
