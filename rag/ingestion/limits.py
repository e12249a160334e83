"""Bounds on what one document may cost: pages, characters, chunks, and the PDF parser's time and memory.

A 3.5 KB PDF whose page draws a form that draws a form … (each with a line of text) produced
1,226 chunks in a 58 s request; a 20 KB one ran more than 12 minutes at 600 MB, and gunicorn's
timeout did not stop it (a thread of a gthread worker is not killed). Now:

- PDFs are parsed in a child process (``pdf_worker.py``) that limits its own CPU time and address
  space with ``setrlimit`` and is killed after ``PDF_PARSE_TIMEOUT_S`` of wall-clock time. A parse
  that is stopped is a 422 ``document_too_complex``; the work really ends with the process.
- A PDF of more than ``INGEST_MAX_PAGES`` pages, or text of more than ``INGEST_MAX_CHARS``
  characters (any format), or more than ``INGEST_MAX_CHUNKS`` chunks is a 413 ``document_too_large``.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from utils.exceptions import ServiceError, ValidationFailed

logger = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("pdf_worker.py")


class DocumentTooLarge(ServiceError):
    status_code = 413
    code = "document_too_large"
    default_detail = "The document is larger than the knowledge base accepts."


class DocumentTooComplex(ServiceError):
    status_code = 422
    code = "document_too_complex"
    default_detail = "The PDF could not be read within the time and memory allowed for one document."


@dataclass(frozen=True)
class ParsedPdf:
    pages: list[str]
    title: str | None
    page_count: int


def text_size_check(text: str) -> None:
    limit = settings.INGEST_MAX_CHARS
    if len(text) > limit:
        raise DocumentTooLarge(
            f"The document has {len(text):,} characters of text; at most {limit:,} are accepted (INGEST_MAX_CHARS)."
        )


def chunk_count_check(count: int) -> None:
    limit = settings.INGEST_MAX_CHUNKS
    if count > limit:
        raise DocumentTooLarge(
            f"The document makes {count:,} chunks; at most {limit:,} are accepted (INGEST_MAX_CHUNKS)."
        )


def pdf_parse(data: bytes) -> ParsedPdf:
    """Pages of text, title and page count of a PDF, parsed in a limited child process."""
    timeout = settings.PDF_PARSE_TIMEOUT_S
    command = [
        sys.executable,
        "-I",  # no PYTHON* variables, no user site, no current directory on the path
        str(WORKER),
        str(settings.INGEST_MAX_PAGES),
        str(settings.INGEST_MAX_CHARS),
        str(max(1, math.ceil(timeout))),
        str(settings.PDF_PARSE_MEMORY_MB * 1024 * 1024),
    ]
    process = subprocess.Popen(  # our own script with fixed arguments
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={"LC_ALL": "C.UTF-8"},
        close_fds=True,
    )
    try:
        output, _ = process.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        logger.warning("PDF parse stopped after %.0f s (PDF_PARSE_TIMEOUT_S)", timeout)
        raise _too_slow(timeout) from exc
    finally:
        if process.returncode is None:
            process.kill()
            process.communicate()
    if process.returncode == -signal.SIGXCPU:
        # The CPU-time limit (the same seconds) can fire a moment before the wall-clock one: the
        # same stop, so the same answer.
        logger.warning("PDF parse stopped by its CPU limit of %.0f s (PDF_PARSE_TIMEOUT_S)", timeout)
        raise _too_slow(timeout)
    return _result(process.returncode, output)


def _too_slow(timeout: float) -> DocumentTooComplex:
    return DocumentTooComplex(f"Reading the PDF took longer than {timeout:g} s (PDF_PARSE_TIMEOUT_S); it was stopped.")


def _result(returncode: int, output: bytes) -> ParsedPdf:
    try:
        result = json.loads(output) if returncode == 0 else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        # Killed by the kernel (CPU limit), or out of memory before it could report.
        logger.warning("PDF parse process ended with status %s", returncode)
        raise DocumentTooComplex()
    error = result.get("error")
    if error == "too_many_pages":
        raise DocumentTooLarge(
            f"The PDF has {result['detail']} pages; at most {settings.INGEST_MAX_PAGES:,} are accepted "
            "(INGEST_MAX_PAGES)."
        )
    if error == "too_much_text":
        raise DocumentTooLarge(
            f"The PDF has more than {settings.INGEST_MAX_CHARS:,} characters of text (INGEST_MAX_CHARS)."
        )
    if error == "too_complex":
        logger.warning("PDF parse hit a limit: %s", result.get("detail"))
        raise DocumentTooComplex()
    if error == "encrypted":
        raise ValidationFailed("The PDF is password-protected.", code="unreadable_file")
    if error:
        logger.info("Unreadable PDF upload: %s", result.get("detail"))
        raise ValidationFailed("The PDF file is damaged or not a PDF.", code="unreadable_file")
    pages = [str(page) for page in result.get("pages", [])]
    title = result.get("title")
    return ParsedPdf(pages=pages, title=str(title) if title else None, page_count=int(result.get("page_count", 0)))
