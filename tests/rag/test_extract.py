"""Text extraction: each supported type, front matter, encodings, and typed errors for the rest."""

from __future__ import annotations

import pytest

from rag.ingestion.extract import SUPPORTED_EXTENSIONS, extract_text, parse_front_matter
from utils.exceptions import ValidationFailed


def minimal_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A small valid PDF with one line of Helvetica text per page, xref offsets computed."""
    count = len(pages)
    page_ids = [4 + 2 * i for i in range(count)]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {count} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, pages, strict=True):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects[page_id] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    info_id = 4 + 2 * count
    if title:
        objects[info_id] = f"<< /Title ({title}) >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    trailer_info = f" /Info {info_id} 0 R" if title else ""
    out += f"trailer\n<< /Size {size} /Root 1 0 R{trailer_info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_pdf_text_per_page_and_title():
    data = minimal_pdf(["Refunds are issued within 14 days.", "Shipping is free above 50 euros."], title="Policies")
    extracted = extract_text("policies.PDF", data)
    assert extracted.title == "Policies"
    assert extracted.metadata == {"page_count": 2}
    first, second = extracted.text.split("\n\n")
    assert "Refunds are issued within 14 days." in first and "Shipping is free above 50 euros." in second


def test_corrupt_pdf_is_unreadable_not_a_crash():
    data = minimal_pdf(["Hello"])
    for broken in (b"%PDF-1.4\n garbage", data[: len(data) // 3], b"not a pdf at all"):
        with pytest.raises(ValidationFailed) as caught:
            extract_text("broken.pdf", broken)
        assert caught.value.code == "unreadable_file"


def test_html_drops_scripts_and_navigation_and_keeps_paragraphs():
    page = b"""<!doctype html><html><head><title>Refund  policy</title><style>p{color:red}</style></head>
    <body><nav>Home | Pricing | Login</nav><h1>Refunds</h1>
    <p>We refund <b>within 14 days</b>.<br>Call us any time.</p>
    <script>var secret = "do not index";</script>
    <ul><li>Unused items</li><li>Original packaging</li></ul></body></html>"""
    extracted = extract_text("refunds.html", page)
    assert extracted.title == "Refund policy"
    assert extracted.text.split("\n\n") == [
        "# Refunds",
        "We refund within 14 days. Call us any time.",
        "- Unused items\n- Original packaging",
    ]
    assert "secret" not in extracted.text and "Pricing" not in extracted.text and "color" not in extracted.text


def test_html_title_falls_back_to_the_first_h1():
    extracted = extract_text("page.htm", b"<body><h1>Warranty terms</h1><p>Two years.</p></body>")
    assert extracted.title == "Warranty terms"


def test_markdown_front_matter_becomes_metadata():
    data = b'---\ntitle: "Reset your password"\ncategory: account\ntags: [security, login]\n---\n# Ignored\n\nBody.'
    extracted = extract_text("reset.md", data)
    assert extracted.title == "Reset your password"
    assert extracted.metadata == {"title": "Reset your password", "category": "account", "tags": ["security", "login"]}
    assert extracted.text == "# Ignored\n\nBody."


def test_markdown_without_front_matter_takes_the_first_heading():
    extracted = extract_text("guide.md", b"Intro line\n\n## Shipping times\n\nFast.")
    assert extracted.title == "Shipping times" and extracted.metadata == {}


def test_front_matter_needs_a_closing_line():
    assert parse_front_matter("---\ntitle: x\nno end") == ({}, "---\ntitle: x\nno end")


def test_rst_title_from_underline():
    extracted = extract_text("faq.rst", b"=========\nFAQ Title\n=========\n\nIntro.\n\nSection\n-------\n\nText.")
    assert extracted.title == "FAQ Title"
    assert "Intro." in extracted.text


def test_text_decoding_fallbacks_and_normalisation():
    assert extract_text("a.txt", "Caf\u00e9\r\nline two".encode("cp1252")).text == "Caf\u00e9\nline two"
    assert extract_text("a.txt", "\ufeffBOM text".encode()).text == "BOM text"
    assert extract_text("a.txt", "UTF-16 text".encode("utf-16")).text == "UTF-16 text"
    assert extract_text("a.txt", b"one\n\n\n\n\ntwo   \n").text == "one\n\ntwo"


def test_binary_data_in_a_text_file_is_unreadable():
    with pytest.raises(ValidationFailed) as caught:
        extract_text("notes.txt", bytes(range(256)) * 4)
    assert caught.value.code == "unreadable_file"


@pytest.mark.parametrize("name", ["report.docx", "image.png", "noextension", "archive.tar.gz"])
def test_unsupported_types_are_refused(name):
    with pytest.raises(ValidationFailed) as caught:
        extract_text(name, b"whatever")
    assert caught.value.code == "unsupported_file_type"


def test_supported_extensions_are_dotted_lowercase():
    assert {".txt", ".md", ".rst", ".html", ".htm", ".pdf"} <= SUPPORTED_EXTENSIONS


def test_html_tables_and_code_keep_their_shape():
    page = b"""<h2>Plans</h2><table><tr><th>plan</th><th>price</th></tr><tr><td>Pro</td><td>9 EUR</td></tr></table>
    <ol><li>Open settings</li><li>Pick a plan</li></ol><pre>pip install x

run x</pre>"""
    text = extract_text("plans.html", page).text
    assert "## Plans" in text
    assert "| plan | price |\n| Pro | 9 EUR |" in text
    assert "1. Open settings\n2. Pick a plan" in text
    assert "```\npip install x\nrun x\n```" in text


def test_titles_come_from_the_first_heading_and_text_is_nfkc():
    assert extract_text("notes.txt", b"Getting started\n===============\n\nHello.").title == "Getting started"
    assert extract_text("guide.rst", b"=====\nGuide\n=====\n\nBody.").title == "Guide"
    assert extract_text("a.md", b"Intro text.\n\n# Real title\n").title == "Real title"
    assert "file" in extract_text("lig.txt", "The \ufb01le is here.".encode()).text
