"""Hand-written hostile PDFs for the extraction limits (issue 13 item 5)."""

from __future__ import annotations

import zlib

LINE = b"(Refunds are issued within thirty days of the purchase.) Tj T* "


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF whose object ``n`` is ``objects[n - 1]``; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(content: bytes, extra: bytes = b"", *, compress: bool = False) -> bytes:
    if compress:
        content, extra = zlib.compress(content, 9), extra + b" /Filter /FlateDecode"
    return b"<< /Length %d %s >>\nstream\n" % (len(content), extra) + content + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def nested_forms(*, depth: int, fanout: int, lines: int) -> bytes:
    """One page that draws a form ``fanout`` times, which draws the next form ``fanout`` times …
    down to ``depth`` levels, the last one showing ``lines`` lines of text (compressed): the text
    is drawn ``fanout ** depth`` times from a file of a few KB."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 4 0 R >> /XObject << /X 6 0 R >> >> >>",
        FONT,
        stream(b"/X Do " * fanout),
    ]
    for level in range(depth):
        number = 6 + level
        form = b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] "
        if level == depth - 1:
            content = b"BT /F1 12 Tf 14 TL 72 700 Td " + LINE * lines + b"ET"
            objects.append(stream(content, form + b"/Resources << /Font << /F1 4 0 R >> >>", compress=True))
        else:
            resources = b"/Resources << /XObject << /X %d 0 R >> >>" % (number + 1)
            objects.append(stream(b"/X Do " * fanout, form + resources))
    return build_pdf(objects)


def many_pages(count: int) -> bytes:
    """``count`` pages sharing one short content stream."""
    kids = b" ".join(b"%d 0 R" % (5 + n) for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
        FONT,
        stream(b"BT /F1 12 Tf 72 700 Td " + LINE + b"ET"),
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 3 0 R >> >> >>"
    )
    objects += [page] * count
    return build_pdf(objects)


def inflating_stream(megabytes: int) -> bytes:
    """One page whose content stream inflates from a few dozen KB to ``megabytes`` MB."""
    content = b"q Q " * (megabytes * 1024 * 256)
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
            b" /Resources << /Font << /F1 4 0 R >> >> >>",
            FONT,
            stream(content, compress=True),
        ]
    )
