"""Chunking by structure: sections and heading paths, lists with their lead sentence, table rows
with their header, code kept whole, no chunk over the embedder's window, markup removed."""

from __future__ import annotations

import random

import pytest

from rag.ingestion.chunking import (
    MAX_TOKENS,
    chunk_body,
    chunk_heading,
    content_hash,
    split_into_chunks,
    split_sentences,
)
from rag.providers.local_embedder import count_tokens

MARKDOWN = """# Export your data

You can export **every** session as _JSON_ or [Markdown](https://example.com/md).

## Formats

Two formats are available:

- JSON, for programs
- Markdown, for people

## Limits

| plan | exports per day |
|---|---|
| Free | 3 |
| Pro | 50 |
"""

RST = """Deployment
==========

Run the server with gunicorn.

Options
-------

The command takes these options::

    gunicorn app:wsgi --workers 3

.. note::
   Use ``--threads`` for **slow** clients.

Read :func:`~flask.Flask.run` and `the guide <https://x>`_ first.
"""


def chunks(text: str, title: str, max_tokens: int = MAX_TOKENS) -> list[str]:
    return split_into_chunks(title=title, text=text, max_tokens=max_tokens, count_tokens=count_tokens)


def test_markdown_sections_carry_their_heading_path_and_lose_their_markup():
    result = chunks(MARKDOWN, "Export your data")
    assert [chunk_heading(c) for c in result] == [
        "Export your data",
        "Export your data \u203a Formats",
        "Export your data \u203a Limits",
    ]
    assert chunk_body(result[0]) == "You can export every session as JSON or Markdown."
    assert "**" not in "".join(result) and "](" not in "".join(result)


def test_a_list_stays_with_the_sentence_that_introduces_it():
    formats = chunks(MARKDOWN, "Export your data")[1]
    assert chunk_body(formats) == "Two formats are available:\n- JSON, for programs\n- Markdown, for people"


def test_a_long_list_is_cut_between_items_and_each_piece_repeats_the_lead():
    items = "\n".join(f"- Item number {i} describes one more accepted document format in detail." for i in range(60))
    result = chunks(f"# Formats\n\nWe accept the following formats:\n\n{items}\n", "Formats")
    assert len(result) > 2
    for chunk in result:
        assert chunk_body(chunk).startswith("We accept the following formats:\n- Item number")
    seen = [line for chunk in result for line in chunk_body(chunk).split("\n")[1:]]
    assert seen == items.split("\n")  # every item once, in order, none cut in half


def test_table_rows_keep_their_header_in_every_piece():
    rows = "\n".join(f"| Plan {i} | {i * 3} exports per day and {i} seats |" for i in range(80))
    result = chunks(f"# Plans\n\n| plan | limits |\n|---|---|\n{rows}\n", "Plans")
    assert len(result) > 2
    for chunk in result:
        assert chunk_body(chunk).startswith("| plan | limits |\n| Plan ")


def test_no_chunk_exceeds_the_embedders_window():
    prose = " ".join(f"Sentence {i} explains one more subtle detail about refunds and deliveries." for i in range(400))
    text = f"# Policy\n\n{prose}\n\n## Huge\n\n{'word ' * 900}\n\n```\n" + "x = 1\n" * 400 + "```\n"
    result = chunks(text, "Policy")
    assert len(result) > 10
    assert max(count_tokens(c) + 2 for c in result) <= MAX_TOKENS


def test_a_lead_paragraph_too_long_to_repeat_keeps_only_its_last_sentence_before_each_piece():
    # SQLAlchemy's docs: a long paragraph ending "E.g.:" before a long code block. Repeated whole
    # before each piece of the code, it left no room under the window (1.6% of that corpus's chunks).
    paragraph = " ".join(f"Sentence {i} explains one more subtle detail about decimal conversion." for i in range(18))
    code = "\n".join(f"    column_{i} = Column(Numeric(precision=10, scale={i}))" for i in range(40))
    heading = "Changes in this release › New features › Floating point precision is configurable now"
    result = chunks(f"# {heading}\n\n{paragraph} E.g.:\n\n```\n{code}\n```\n", heading)
    assert max(count_tokens(c) + 2 for c in result) <= MAX_TOKENS
    bodies = [chunk_body(c) for c in result]
    code_pieces = [b for b in bodies if "```" in b]
    assert len(code_pieces) > 1 and all(b.count("E.g.:\n```\ncolumn_") == 1 for b in code_pieces)
    assert "Sentence 0 explains" in bodies[0] and "Sentence 17 explains" in "".join(bodies)
    seen = [line for b in code_pieces for line in b.split("\n") if line.startswith("column_")]
    assert seen == [line.strip() for line in code.split("\n")]  # every line of code once, in order


def test_a_table_header_too_wide_to_repeat_is_read_once_as_the_first_row():
    cell = "the {} of this option in every supported release and in each dialect the library knows"
    header = "| " + " | ".join(cell.format(word) for word in "abcdefghijkl") + " |"  # about 210 tokens
    rows = "\n".join(f"| row {i} | " + " | ".join(["yes"] * 11) + " |" for i in range(40))
    result = chunks(f"# Options\n\nEvery option:\n\n{header}\n|{'---|' * 12}\n{rows}\n", "Options")
    assert max(count_tokens(c) + 2 for c in result) <= MAX_TOKENS
    body = "\n".join(chunk_body(c) for c in result)
    assert body.count("the a of this option") == 1 and body.count("| row ") == 40
    assert all(chunk_body(c).startswith("Every option:\n| ") for c in result)  # the short lead still leads


_WORDS = ("the", "session", "engine", "query", "column", "mapper", "cascade", "transaction", "identifier", "pool_size")


def _random_document(rng: random.Random) -> str:
    """Headings, paragraphs, lead paragraphs ending in ":" before lists, tables and code, of every size."""

    def words(n: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append("#" * rng.randint(1, 3) + " " + words(rng.randint(1, 40)))
        for _ in range(rng.randint(1, 4)):
            lead = " ".join(words(rng.randint(3, 40)).capitalize() + "." for _ in range(rng.randint(0, 12)))
            kind = rng.choice(["paragraph", "list", "table", "code"])
            if kind == "paragraph":
                parts.append(lead or words(10))
                continue
            parts.append(f"{lead} {words(rng.randint(1, 60))}:")
            if kind == "list":
                parts.append("\n".join("- " + words(rng.randint(1, 120)) for _ in range(rng.randint(1, 30))))
            elif kind == "table":
                cols = rng.randint(1, 6)
                lines = ["| " + " | ".join(words(rng.randint(1, 30)) for _ in range(cols)) + " |", "|" + "---|" * cols]
                lines += ["| " + " | ".join(words(rng.randint(1, 20)) for _ in range(cols)) + " |" for _ in range(30)]
                parts.append("\n".join(lines))
            else:
                code = "\n".join(words(rng.randint(1, 60)) for _ in range(rng.randint(1, 60)))
                parts.append(f"```\n{code}\n```")
    return "\n\n".join(parts)


def test_no_chunk_of_any_shape_of_document_exceeds_the_window():
    # Random documents: long headings, long lead paragraphs, wide table headers, long rows and
    # lines. A chunk over the window is one the embedder reads only in part.
    for seed in range(20):
        rng = random.Random(seed)
        result = chunks(_random_document(rng), " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 30))))
        assert result and max(count_tokens(c) + 2 for c in result) <= MAX_TOKENS, seed


def test_rest_headings_literal_blocks_directives_and_roles():
    result = chunks(RST, "Deployment")
    assert chunk_heading(result[0]) == "Deployment"
    options = "\n\n".join(chunk_body(c) for c in result if chunk_heading(c) == "Deployment \u203a Options")
    assert "The command takes these options:\n```\ngunicorn app:wsgi --workers 3\n```" in options
    assert "Note: Use --threads for slow clients." in options
    assert "Read run and the guide first." in options
    prose = options.replace("```\ngunicorn app:wsgi --workers 3\n```", "")
    assert "::" not in prose and "`" not in prose


def test_faq_questions_lead_their_answers():
    text = "# Help\n\n## FAQ\n\n### Can I export one session?\n\nYes, from its menu.\n\n### Is it free?\n\nYes.\n"
    result = chunks(text, "Help")
    assert chunk_heading(result[0]) == "Help \u203a FAQ \u203a Can I export one session?"
    assert chunk_body(result[0]) == "Yes, from its menu."


def test_text_without_structure_is_paragraphs_and_empty_text_has_no_chunks():
    assert chunks("", "T") == [] and chunks("  \n\n ", "T") == []
    assert chunks("Refunds take 14 days.", "  Refund   policy ") == ["Refund policy\n\nRefunds take 14 days."]


def test_without_a_tokenizer_an_approximate_count_still_bounds_chunks():
    prose = " ".join("Refunds are paid within fourteen days of the request." for _ in range(200))
    result = split_into_chunks(title="Refunds", text=prose)
    assert len(result) > 3
    assert max(count_tokens(c) for c in result) <= MAX_TOKENS


def test_deterministic():
    assert chunks(MARKDOWN, "Export") == chunks(MARKDOWN, "Export")


def test_sentence_splitter_keeps_abbreviations_and_numbers():
    text = "Prices are approx. 9.99 EUR, e.g. for Pro. Call Dr. Smith at 10 a.m. today! Is it free? Yes."
    assert split_sentences(text) == [
        "Prices are approx. 9.99 EUR, e.g. for Pro.",
        "Call Dr. Smith at 10 a.m. today!",
        "Is it free?",
        "Yes.",
    ]


@pytest.mark.parametrize(
    ("a", "b"),
    [("Refunds\r\ntake  14 days.", "Refunds\ntake 14 days."), ("A\n\n\n\nB", "A\n\nB")],
)
def test_content_hash_ignores_only_cosmetic_whitespace(a: str, b: str):
    assert content_hash("T", a) == content_hash("T", b)
    assert content_hash("T", "Refunds take 14 days.") != content_hash("T", "Refunds take 15 days.")


def test_a_cross_reference_target_leaves_nothing_behind():
    """``.. setting:: NAME`` (Sphinx's add_crossref_type: Scrapy, Celery) renders nothing; read as a
    line, it ended each setting's section with the next setting's name. Object descriptions still
    show their signature without a body, and so does an unknown directive followed by prose (it
    may be an object type that shows its argument)."""
    text = (
        "Settings\n========\n\n.. setting:: FIRST\n\nFIRST\n-----\n\nDefault: 1.\n\n"
        ".. setting:: SECOND\n\nSECOND\n------\n\nDefault: 2.\n\n.. signal:: started\n"
        ".. function:: run(spider)\n\n.. cli-flag:: --dry-run\n\nPrints what would change.\n"
    )
    result = chunks(text, "Settings")
    assert result[0] == "Settings \u203a FIRST\n\nDefault: 1."
    assert chunk_body(result[1]) == "Default: 2.\n\nrun(spider)\n\n--dry-run\n\nPrints what would change."


def test_a_domain_directive_describing_a_role_keeps_its_text_but_context_setters_go():
    """``.. rst:role:: abbr`` (Sphinx's own pages: 57 roles) describes a role, unlike ``.. role::``,
    which defines one and renders nothing; its description was dropped with it. "py:module" and
    "cpp:namespace" only set context, in any domain."""
    text = (
        "Roles\n=====\n\n.. rst:role:: abbr\n\n   An abbreviation, with its explanation in parentheses.\n\n"
        ".. role:: code-py(code)\n   :language: Python\n\n.. py:module:: app.jobs\n\n"
        ".. cpp:namespace:: app\n\nSee above.\n"
    )
    described = "abbr\n\nAn abbreviation, with its explanation in parentheses."
    assert chunks(text, "Roles") == [f"Roles\n\n{described}\n\nSee above."]


MYST = """# Caching

```{versionadded} 6.0

```

(wheel-caching)=

## Where is it stored

```{caution}
The exact layout may change between versions.
```

See {ref}`Installing from local packages <local>` and {pep}`517`; the URL is
`https://example.com/issues/{num}` and `--log-disable={name}` is literal.

````{tab} Linux
```
~/.cache/pip
```
````

```{pip-cli}
$ pip cache dir
```

```{toctree}
:hidden:

caching
```

[PyPI]: https://pypi.org/
"""


def test_myst_directives_roles_and_targets_read_as_their_rest_twins():
    """MyST Markdown (pip's docs, most Sphinx projects written in Markdown): a ```` ```{name} ````
    fence is a directive, not code; ``{role}`text``` is a role; ``(label)=`` and a link
    reference definition render nothing. A tab keeps its name before its content."""
    result = chunks(MYST, "Caching")
    assert result[0] == "Caching\n\nNew in version 6.0:"
    body = chunk_body(result[1])
    assert chunk_heading(result[1]) == "Caching \u203a Where is it stored"
    assert body.startswith("Caution: The exact layout may change between versions.\n\n")
    assert "See Installing from local packages and 517; the URL is" in body
    assert "https://example.com/issues/{num} and --log-disable={name} is literal." in body
    assert "Linux\n\n```\n~/.cache/pip\n```" in body  # the tab's name, then its code
    assert "```\n$ pip cache dir\n```" in body  # a project's console directive shows a transcript
    assert "wheel-caching" not in body and "toctree" not in body and "hidden" not in body
    assert "pypi.org" not in body and "{ref}" not in body and "{pep}" not in body


def test_a_markdown_code_fence_under_a_short_line_is_not_a_rest_underline():
    """reST may underline a heading with backticks (Flask's docs do), but only as long as the title:
    "Linux" over a three-backtick fence is a line before code, not a heading."""
    text = "Paths\n=====\n\nLinux\n```\n~/.cache\n```\n\nURL Building\n````````````\n\nUse url_for.\n"
    result = chunks(text, "Paths")
    assert result[0] == "Paths\n\nLinux\n\n```\n~/.cache\n```"
    assert result[1] == "Paths \u203a URL Building\n\nUse url_for."


def test_a_projects_own_example_directive_is_code_in_rest_too():
    """``.. console::`` (a project's own directive for shell sessions) and ``.. click:example::``
    (Click's, for Python) have a body of commands or code: read as prose, its lines ran together
    into one sentence. An unknown directive whose body starts as prose stays prose."""
    text = (
        "Install\n=======\n\n.. console::\n\n    $ python -m pip install flask\n    $ flask --version\n\n"
        ".. click:example::\n\n    @click.command()\n    def cli():\n        click.echo('hi')\n\n"
        ".. tab:: Debian\n\n    Install it with apt.\n"
    )
    assert chunks(text, "Install") == [
        "Install\n\n```\n$ python -m pip install flask\n$ flask --version\n```\n\n"
        "```\n@click.command()\ndef cli():\n    click.echo('hi')\n```\n\nDebian\n\nInstall it with apt."
    ]


def test_docusaurus_vitepress_and_mkdocs_admonitions_read_as_labelled_text():
    """Docusaurus (``:::tip``, ``:::note[Title]``), VitePress (``::: warning Title``) and MkDocs
    Material (``!!! note "Title"`` with an indented body) admonitions: their markers are not text."""
    text = (
        "# Refunds\n\n:::tip\nAsk within 14 days.\n:::\n\n:::note[Card payments]\nThey take 5 days.\n:::\n\n"
        "::: warning Vouchers\nVouchers are not refunded.\n:::\n\n"
        '!!! info "Bank transfers"\n    They take a week.\n\n    Fees are ours.\n\nThat is all.\n'
    )
    assert chunks(text, "Refunds") == [
        "Refunds\n\nTip: Ask within 14 days.\n\nNote: Card payments They take 5 days.\n\n"
        "Warning: Vouchers Vouchers are not refunded.\n\nInfo: Bank transfers They take a week.\n\n"
        "Fees are ours.\n\nThat is all."
    ]


def test_an_executable_cell_is_code_and_a_bracketed_sentence_is_not_a_link_definition():
    """Quarto and R Markdown name a code cell's language in braces (```` ```{python} ````); its
    comment lines are not headings. "[Note]: ..." followed by words is a sentence, kept."""
    text = "# Plot\n\n```{python}\n#| label: fig\n# the data\nx = 1\n```\n\n[Note]: closed.\n"
    assert chunks(text, "Plot") == ["Plot\n\n```\n#| label: fig\n# the data\nx = 1\n```\n\n[Note]: closed."]


def test_a_directive_or_literal_block_inside_a_list_item_is_read_as_one():
    """reST nests directives and literal blocks in list items (Alembic's and SQLAlchemy's docs):
    joined to the item as text, ".. versionchanged:: 1.2" and the code reached the chunk."""
    text = (
        "Options\n=======\n\n- timezone - applied to the date.\n\n  .. versionchanged:: 1.2\n     Uses zoneinfo.\n\n"
        "- file_template - names the file, for example::\n\n      %%(rev)s_%%(slug)s\n\n- other - nothing.\n"
    )
    assert chunks(text, "Options") == [
        "Options\n\n- timezone - applied to the date.\n\nChanged in version 1.2: Uses zoneinfo.\n\n"
        "- file_template - names the file, for example:\n\n```\n%%(rev)s_%%(slug)s\n```\n\n- other - nothing."
    ]


def test_a_fenced_code_block_inside_a_markdown_list_item_stays_code():
    """A step of a numbered procedure with its command in a fence: read into the item, it became
    "Run the restore command: bash python manage.py restore_backup" (the help centre's own page)."""
    text = (
        "# Restore\n\n1. Stop the server.\n2. Run the restore command:\n\n"
        "   ```bash\n   python manage.py restore\n   ```\n\n3. Start it again.\n"
    )
    assert chunks(text, "Restore") == [
        "Restore\n\n1. Stop the server.\n2. Run the restore command:\n\n"
        "```\npython manage.py restore\n```\n\n3. Start it again."
    ]
    # A fence at the margin right after an item ends the list (CommonMark), as one indented does.
    assert chunks("# Run\n\n- Start it:\n```\nmake run\n```\n", "Run") == ["Run\n\n- Start it:\n\n```\nmake run\n```"]
