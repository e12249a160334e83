"""Document structure: the headings, paragraphs, lists, tables and code blocks of a text.

One parser reads Markdown, reStructuredText and plain text (HTML arrives here converted to
Markdown by extraction): ``#`` headings and underlined (reST, setext) headings, fenced and
``::`` literal code, list items, pipe, grid and simple tables, and the common reST directives
(and their MyST Markdown spelling, ```` ```{note} ````, ``{ref}`text```, ``(label)=``), and the
admonitions of Docusaurus, VitePress and MkDocs (``:::tip``, ``!!! note "Title"``).
Inline markup (emphasis, links, roles, literals) is reduced to its text, so that neither the
embedder, nor BM25, nor a quote in an answer sees ``**`` or ``:class:`~a.B```. Pure: no Django.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PARAGRAPH, LIST, TABLE, CODE = "paragraph", "list", "table", "code"


@dataclass(frozen=True)
class Block:
    """A unit of the text under its section path (the headings above it, outermost first)."""

    kind: str
    lines: tuple[str, ...]  # paragraph: one line; list: its items; table: its rows; code: its lines
    path: tuple[str, ...]


@dataclass(frozen=True)
class Structure:
    title: str | None  # the first heading
    blocks: list[Block]


_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)")
# A MyST directive: a fence (or a ``:::`` colon fence) whose info string is ``{name} argument``.
_MYST_DIRECTIVE = re.compile(r"^[ \t]*(```+|~~~+|:::+)[ \t]*\{([\w:.-]+)\}[ \t]*(.*)$")
# A Markdown link reference definition, "[PyPI]: https://pypi.org/": renders nothing.
# (A destination that is a URL, a path or an anchor: "[Note]: closed." is a sentence.)
_LINK_DEFINITION = re.compile(
    r"^ {0,3}\[[^\]]+\]:[ \t]*<?(?:[a-z][\w+.-]*:|[\w.~-]*[/#])\S*>?(?:[ \t]+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?[ \t]*$"
)
# Docusaurus, VitePress and MyST colon fences without braces: ":::tip", "::: warning Title",
# ":::note[Title]"; and MkDocs (Material) admonitions: '!!! note "Title"', "??? tip", with an
# indented body.
_COLON_DIRECTIVE = re.compile(r"^[ \t]*(:{3,})[ \t]*([A-Za-z][\w-]*)(?:\[([^\]]*)\])?[ \t]*(.*)$")
_MKDOCS_ADMONITION = re.compile(r'^(?:!!!|\?\?\?\+?)[ \t]+([A-Za-z][\w-]*)(?:[ \t]+"([^"]*)")?[ \t]*$')
_OPTION_LINE = re.compile(r"^\s*:[\w -]+:")  # a directive's option line, ":caption: Example"
_MYST_TARGET = re.compile(r"^\([\w.:+-]+\)=$")  # "(wheel-caching)=": a link target, renders nothing
# The first line of a directive body that is code, not prose: a console transcript ("$ ", ">>> "),
# a shebang or Quarto's "#| option", or a statement ("@decorator", "def f(", "import x", "NAME =
# ...", "call(...)").
_CODE_START = re.compile(
    r"^\s*(?:(?:\$|>>>|C:\\>|PS>)\s|#[!|]|@[\w.]+|(?:async\s+)?def\s+\w+\(|class\s+\w+[(:]|import\s+\w|from\s+[\w.]+\s+import\s"
    r"|[A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*=\s*\S|[A-Za-z_][\w.]*\(.*\)\s*$)"
)
_LIST_ITEM = re.compile(r"^([ \t]*)([-*+\u2022]|\d{1,3}[.)]|#\.|[a-zA-Z][.)])[ \t]+(\S.*)$")
_DIRECTIVE = re.compile(r"^([ \t]*)\.\.[ \t]+(?:([\w:.-]+)::(?:[ \t]+(.*))?|(.*))$")
_GRID_BORDER = re.compile(r"^[ \t]*\+(?:[-=]+\+)+[ \t]*$")
_SIMPLE_BORDER = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?$")
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)

# Directives whose body is not prose a user asks about, dropped with their content.
_DROPPED = {
    "toctree", "image", "include", "literalinclude", "raw", "contents", "highlight", "index", "only",
    "currentmodule", "module", "automodule", "autosummary", "sectionauthor", "moduleauthor", "meta",
    "tabularcolumns", "graphviz", "figure", "program", "default-role", "role", "testsetup",
    "testcleanup", "ifconfig", "py:currentmodule", "py:module", "codeauthor", "rubric", "csv-table",
}  # fmt: skip
# In a domain ("py:module", "cpp:namespace"), the names above that set context rather than
# describe something: "rst:role" describes a role (Sphinx's own pages), unlike ``.. role::``.
_IN_ANY_DOMAIN = {"module", "currentmodule", "namespace", "namespace-push", "namespace-pop"}
# Object descriptions, which show their argument (a signature) even without a body.
_SIGNATURES = {
    "function", "class", "method", "classmethod", "staticmethod", "attribute", "property", "data",
    "exception", "decorator", "decoratormethod", "describe", "object", "option", "cmdoption", "envvar",
    "confval", "type", "member", "macro", "var",
}  # fmt: skip
# A fence named by its language in braces is an executable cell (Quarto, R Markdown, MyST-NB):
# ```` ```{python} ````, not a directive.
_LANGUAGES = {
    "python", "r", "julia", "bash", "sh", "shell", "sql", "js", "javascript", "ojs", "mermaid", "dot",
    "code-cell", "ipython", "ipython3",
}  # fmt: skip
_CODE = {"code-block", "code", "sourcecode", "doctest", "testcode", "testoutput", "prompt", "parsed-literal"}
# Directives that label their content; the label reads as a lead-in.
_LABELS = {
    "note": "Note:", "warning": "Warning:", "tip": "Tip:", "important": "Important:", "hint": "Hint:",
    "caution": "Caution:", "danger": "Danger:", "attention": "Attention:", "error": "Error:",
    "seealso": "See also:", "admonition": "", "topic": "", "sidebar": "", "info": "Info:",
}  # fmt: skip
_VERSIONS = {"versionadded": "New in version", "versionchanged": "Changed in version", "deprecated": "Deprecated since"}

_INLINE = [
    # A MyST role, {ref}`text`, read as reST's :ref:`text` (after a space or an opening bracket
    # or quote: "issues/{num}", "={name}" and LaTeX's "\\a{b}{c}" are not roles).
    (re.compile(r"(?<![^\s(\[\"'])\{([A-Za-z][\w:.+-]*)\}(?=`[^`])"), r":\1:"),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # Markdown image: its alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # Markdown link
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # Markdown reference link
    (re.compile(r"`([^`<]+?)\s*<[^>`]+>`__?"), r"\1"),  # reST hyperlink with a target
    (re.compile(r":[\w:.+-]+:`!?~[^`]*?([\w]+)`"), r"\1"),  # :role:`~a.b.C` shows C
    (re.compile(r":[\w:.+-]+:`!?([^`<]+?)\s*<[^>`]+>`"), r"\1"),  # :role:`text <target>`
    (re.compile(r":[\w:.+-]+:`!?([^`]+)`"), r"\1"),  # :role:`target`
    (re.compile(r"``([^`]+)``"), r"\1"),  # reST literal
    (re.compile(r"`([^`]+)`__?"), r"\1"),  # reST reference
    (re.compile(r"`([^`]+)`"), r"\1"),  # Markdown code span, reST default role
    (re.compile(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])"), r"\1"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"\1"),
    (re.compile(r"\|(\w[\w -]*)\|(?:__?)?"), r"\1"),  # reST substitution
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])"), r"\1"),  # backslash escapes
]


def clean_inline(text: str) -> str:
    """``text`` with inline markup reduced to what a reader sees, whitespace collapsed."""
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if text.endswith("::"):  # reST: "Example::" introduces a literal block and reads "Example:"
        text = text[:-2].rstrip()
        text = f"{text}:" if text else ""
    return text


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width forms), Unix line endings, tabs as spaces, no HTML comments."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _FRONT_MATTER.sub("", _HTML_COMMENT.sub("", text), count=1).expandtabs(4)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_underline(line: str, above: str) -> bool:
    """``line`` underlines ``above`` (reST, or Markdown setext for = and -)."""
    if not _UNDERLINE.match(line) or not above.strip() or _indent(above) > 3:
        return False
    if _UNDERLINE.match(above) or _LIST_ITEM.match(above) or above.lstrip().startswith(("|", "..", "+")):
        return False
    if line.strip()[0] in "`~":  # or a Markdown code fence, shorter than the line it follows
        return len(line.strip()) >= len(above.strip())
    return len(line.strip()) >= min(len(above.strip()), 3) or line.strip()[0] in "=-"


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = normalise(text).split("\n")
        self.i = 0
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []  # (level, text) of the open sections
        self.styles: dict[tuple[str, bool], int] = {}  # underline style -> level, by first use
        self.title: str | None = None
        self.paragraph: list[str] = []
        self.literal_next = False  # the paragraph just closed ended in "::"

    # -- output ----------------------------------------------------------------------------

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.headings)

    def emit(self, kind: str, lines: list[str]) -> None:
        kept = tuple(line for line in lines if line.strip())
        if kept:
            self.blocks.append(Block(kind, kept, self.path))

    def flush(self) -> None:
        if self.paragraph:
            raw = " ".join(line.strip() for line in self.paragraph)
            self.literal_next = raw.rstrip().endswith("::")
            self.emit(PARAGRAPH, [clean_inline(raw)])
            self.paragraph = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        text = clean_inline(text)
        if not text:
            return
        if self.title is None:
            self.title = text
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, text))

    # -- reading -----------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        index = self.i + offset
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def take_indented(self, base: int) -> list[str]:
        """The lines after the current one indented deeper than ``base`` (blank lines included)."""
        taken: list[str] = []
        while self.i + 1 < len(self.lines):
            line = self.lines[self.i + 1]
            if line.strip() and _indent(line) <= base:
                break
            taken.append(line)
            self.i += 1
        while taken and not taken[-1].strip():
            taken.pop()
        return taken

    def parse(self) -> Structure:
        while self.i < len(self.lines):
            self.step(self.lines[self.i])
            self.i += 1
        self.flush()
        return Structure(self.title, self.blocks)

    def step(self, line: str) -> None:
        stripped = line.strip()
        if not stripped:
            self.flush()
            return
        if self.literal_next and not self.paragraph and _indent(line) > 0:
            self.literal_next = False
            self.i -= 1
            self.code(self.take_indented(_indent(line) - 1))
            return
        self.literal_next = False
        if match := _MYST_DIRECTIVE.match(line):
            self.myst_directive(match.group(1), match.group(2), match.group(3))
        elif match := _COLON_DIRECTIVE.match(line):
            self.myst_directive(match.group(1), match.group(2), match.group(3) or match.group(4))
        elif match := _MKDOCS_ADMONITION.match(line):
            self.flush()
            self.apply_directive(match.group(1).lower(), clean_inline(match.group(2) or ""), self.take_indented(0))
        elif _MYST_TARGET.match(stripped) or (_LINK_DEFINITION.match(line) and not self.paragraph):
            self.flush()
        elif _FENCE.match(line):
            self.fenced(line)
        elif match := _ATX.match(line):
            self.heading(len(match.group(1)), match.group(2))
        elif _UNDERLINE.match(line) and _is_underline(self.peek(2), self.peek(1)) and self.peek(2).strip() == stripped:
            self.i += 2  # overlined heading
            self.styled_heading((stripped[0], True), self.peek(-1))
        elif _is_underline(self.peek(1), line) and not self.paragraph[1:]:
            self.i += 1
            self.styled_heading((self.peek().strip()[0], False), line)
        elif _is_underline(self.peek(1), line):
            self.flush()
            self.i += 1
            self.styled_heading((self.peek().strip()[0], False), line)
        elif match := _DIRECTIVE.match(line):
            self.flush()
            self.directive(line, match)
        elif _GRID_BORDER.match(line) or _SIMPLE_BORDER.match(line):
            self.flush()
            self.rst_table(line)
        elif stripped.startswith("|") and stripped.count("|") >= 2:
            self.flush()
            self.pipe_table()
        elif _RULE.match(line) and not self.paragraph:
            return
        elif match := _LIST_ITEM.match(line):
            self.flush()
            self.list_block()
        else:
            self.paragraph.append(line)

    def styled_heading(self, style: tuple[str, bool], text: str) -> None:
        if style not in self.styles:
            self.styles[style] = len(self.styles) + 1
        self.heading(self.styles[style], text.strip())

    def fenced(self, line: str) -> None:
        self.flush()
        fence = _FENCE.match(line)
        marker = fence.group(1) if fence else "```"
        body: list[str] = []
        while self.i + 1 < len(self.lines):
            self.i += 1
            if self.lines[self.i].strip().startswith(marker):
                break
            body.append(self.lines[self.i])
        self.code(body)

    def code(self, lines: list[str]) -> None:
        if not any(line.strip() for line in lines):
            return
        margin = min(_indent(line) for line in lines if line.strip())
        self.emit(CODE, [line[margin:].rstrip() for line in lines])

    def directive(self, line: str, match: re.Match[str]) -> None:
        base = len(match.group(1))
        name = (match.group(2) or "").lower()
        argument = clean_inline(match.group(3) or "")
        self.apply_directive(name, argument, _without_options(self.take_indented(base)))

    def myst_directive(self, marker: str, name: str, argument: str) -> None:
        """A fenced directive (```` ```{note} ````, ``:::tip``): its body up to the closing fence,
        read as reST's."""
        self.flush()
        body: list[str] = []
        while self.i + 1 < len(self.lines):
            self.i += 1
            line = self.lines[self.i].strip()
            if line.startswith(marker[0] * len(marker)) and not line.lstrip(marker[0]).strip():
                break
            body.append(self.lines[self.i])
        if body and body[0].strip() == "---":  # options as a YAML block
            end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), 0)
            body = body[end + 1 :] if end else body
        # The body was read past: continue from its end, with the body spliced in after it.
        self.apply_directive(name.lower(), clean_inline(argument), _without_options(body))

    def apply_directive(self, name: str, argument: str, body: list[str]) -> None:
        """Emit a directive's content as reST and MyST mean it: dropped, code, or labelled text."""
        while body and not body[-1].strip():
            body = body[:-1]
        short = name.rsplit(":", 1)[-1]
        if not name or name in _DROPPED or short in (_IN_ANY_DOMAIN if ":" in name else _DROPPED):
            return  # a comment, a link target, or a directive with no prose
        known = short in _SIGNATURES or short.startswith("auto") or short in _LABELS or short in _VERSIONS
        if not body and not known and self.section_follows():
            # A cross-reference target of the project's own (Sphinx ``add_crossref_type``:
            # ``.. setting:: NAME`` before the setting's heading, ``.. signal:: name`` before its
            # description): it renders nothing, and read as a line it would end the section before
            # with the next one's name. One followed by prose may be an object type that shows its
            # argument, and keeps it.
            return
        first = next((line for line in body if line.strip()), "")
        if short in _CODE or short in _LANGUAGES or (not known and _CODE_START.match(first)):
            # A project's own directive for examples (pip's ``pip-cli``, Click's ``click:example``
            # and ``click:run``) shows a transcript or code, not prose.
            self.code(body)
            return
        lead = _LABELS.get(short)
        if short in _VERSIONS:
            lead = f"{_VERSIONS[short]} {argument}:" if argument else f"{_VERSIONS[short]}:"
        elif lead is None or lead == "":
            lead = argument  # an object description ("function:: send(x)") or a titled admonition
        elif argument:
            lead = f"{lead} {argument}"
        self.splice(body, lead)

    def section_follows(self) -> bool:
        """Whether the next non-blank line starts a heading or another directive (or the text ends)."""
        j = self.i + 1
        while j < len(self.lines) and not self.lines[j].strip():
            j += 1
        if j >= len(self.lines):
            return True
        line, after = self.lines[j], self.lines[j + 1] if j + 1 < len(self.lines) else ""
        if _ATX.match(line) or _DIRECTIVE.match(line) or _is_underline(after, line):
            return True
        return bool(_UNDERLINE.match(line)) and j + 2 < len(self.lines) and _is_underline(self.lines[j + 2], after)

    def splice(self, body: list[str], lead: str) -> None:
        """Read the directive's body as ordinary text, led by its label."""
        margin = min((_indent(line) for line in body if line.strip()), default=0)
        inserted = [line[margin:] for line in body]
        if lead:
            inserted = [lead, *inserted] if not inserted or inserted[0].strip() else [lead, "", *inserted]
        self.lines[self.i + 1 : self.i + 1] = [*inserted, ""]

    def list_block(self) -> None:
        items: list[str] = []
        literal = False
        while self.i < len(self.lines):
            line = self.lines[self.i]
            match = _LIST_ITEM.match(line)
            if match:
                marker = match.group(2)
                depth = "  " * min(_indent(line) // 2, 3)
                bullet = marker if marker[0].isdigit() else "-"
                items.append(f"{depth}{bullet} {match.group(3).strip()}")
            elif not line.strip():
                following = self.peek(1)
                if not (_LIST_ITEM.match(following) or (following.strip() and _indent(following) > 1)):
                    break
                if items and items[-1].endswith("::") and not _LIST_ITEM.match(following):
                    literal = True  # the item introduces a literal block ("For example::"): code
                    break
            elif _FENCE.match(line) or (_DIRECTIVE.match(line) and _indent(line) > 0):
                break  # a directive (".. note::") or a code fence inside the item, read as one
            elif _indent(line) > 0 or self.peek(-1).strip():
                items[-1] += " " + line.strip()  # a continuation line (indented, or lazy)
            else:
                break  # a paragraph after the list
            self.i += 1
        self.i -= 1
        cleaned = []
        for item in items:
            depth = item[: len(item) - len(item.lstrip())]
            bullet, _, text = item.strip().partition(" ")
            cleaned.append(f"{depth}{bullet} {clean_inline(text)}")
        self.emit(LIST, cleaned)
        self.literal_next = literal

    def pipe_table(self) -> None:
        rows: list[str] = []
        while self.i < len(self.lines) and self.lines[self.i].strip().startswith("|"):
            row = self.lines[self.i].strip()
            if not _TABLE_SEPARATOR.match(row):
                cells = [clean_inline(cell) for cell in row.strip("|").split("|")]
                rows.append("| " + " | ".join(cells) + " |")
            self.i += 1
        self.i -= 1
        self.emit(TABLE, rows)

    def rst_table(self, first: str) -> None:
        table: list[str] = []
        while self.i < len(self.lines) and self.lines[self.i].strip():
            table.append(self.lines[self.i])
            self.i += 1
        self.i -= 1
        rows = _grid_rows(table) if _GRID_BORDER.match(first) else _simple_rows(table)
        self.emit(TABLE, ["| " + " | ".join(clean_inline(cell) for cell in row) + " |" for row in rows if any(row)])


def _without_options(body: list[str]) -> list[str]:
    """A directive's body without its leading option lines (":linenos:", ":caption: ...")."""
    start = 0
    while start < len(body) and _OPTION_LINE.match(body[start]):
        start += 1
    return body[start:]


def _grid_rows(table: list[str]) -> list[list[str]]:
    """Rows of a reST grid table; a row's cells may span several lines."""
    rows: list[list[str]] = []
    current: list[list[str]] = []
    for line in table:
        if _GRID_BORDER.match(line):
            if current:
                rows.append([" ".join(parts) for parts in current])
            current = []
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not current:
            current = [[] for _ in cells]
        for position, cell in enumerate(cells[: len(current)]):
            if cell:
                current[position].append(cell)
    if current:
        rows.append([" ".join(parts) for parts in current])
    return rows


def _simple_rows(table: list[str]) -> list[list[str]]:
    """Rows of a reST simple table, cut at the columns its border draws."""
    border = table[0]
    starts = [m.start() for m in re.finditer(r"=+", border)]
    rows: list[list[str]] = []
    for line in table[1:]:
        if _SIMPLE_BORDER.match(line) or re.match(r"^[ \t]*-+(?:[ \t]+-+)*[ \t]*$", line):
            continue
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        if rows and not cells[0] and any(cells[1:]):
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def parse_structure(text: str) -> Structure:
    """The first heading and the blocks of ``text`` (Markdown, reST or plain)."""
    return _Parser(text).parse()
