"""Issue 13 item 5: unbounded extraction.

A 3.5 KB PDF produced 1,226 chunks in a 58 s request; a 20 KB one ran more than 12 minutes at
600 MB and gunicorn's timeout did not stop it. PDFs are now parsed in a child process with time and
memory limits that is killed when they run out, and pages, characters and chunks are bounded per
document. The hostile files are written by hand (``hostile_pdf.py``): forms nested so that a
line of text is drawn thousands of times, a content stream that inflates 1,000-fold, many pages.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from rag.ingestion import limits
from rag.ingestion.extract import extract_text
from rag.ingestion.limits import DocumentTooComplex, DocumentTooLarge
from rag.models import Document
from tests.security.hostile_pdf import inflating_stream, many_pages, nested_forms

DOCUMENTS = "/api/rag/documents/"


def upload(client: Any, name: str, data: bytes) -> Any:
    return client.post(DOCUMENTS, {"file": SimpleUploadedFile(name, data, "application/pdf")}, format="multipart")


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Every parser process started, to check that a stopped parse really ended."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(limits.subprocess, "Popen", recording)
    return started


def test_a_small_pdf_that_expands_its_text_is_a_413_and_stores_nothing(settings, staff_client, db):
    settings.INGEST_MAX_CHARS = 50_000
    data = nested_forms(depth=2, fanout=10, lines=40)  # 100 x 40 lines: 224,000 characters
    assert len(data) < 2_000
    response = upload(staff_client, "expanding.pdf", data)
    assert response.status_code == 413
    assert response.json()["code"] == "document_too_large" and "INGEST_MAX_CHARS" in response.json()["detail"]
    assert not Document.objects.exists()


def test_a_pdf_that_parses_too_long_is_stopped_and_its_process_killed(settings, processes):
    settings.PDF_PARSE_TIMEOUT_S = 1
    settings.INGEST_MAX_CHARS = 10**9  # only the time limit can stop this one
    data = nested_forms(depth=3, fanout=10, lines=400)  # 22 million characters from 1.5 KB
    with pytest.raises(DocumentTooComplex, match="PDF_PARSE_TIMEOUT_S"):
        extract_text("slow.pdf", data)
    [process] = processes
    assert process.returncode is not None and process.returncode < 0  # killed by a signal, and reaped


def test_a_pdf_that_needs_too_much_memory_is_a_422(settings, staff_client, db, processes):
    settings.PDF_PARSE_MEMORY_MB = 96
    data = inflating_stream(60)  # 60 KB that inflate to 60 MB
    response = upload(staff_client, "inflating.pdf", data)
    assert response.status_code == 422
    assert response.json()["code"] == "document_too_complex"
    assert [p.returncode for p in processes] == [0]  # it reported the limit and ended
    settings.PDF_PARSE_MEMORY_MB = 0  # the control: without the limit the same file parses
    assert extract_text("inflating.pdf", data).metadata == {"page_count": 1}


def test_a_pdf_over_the_page_limit_is_a_413(settings, staff_client, db):
    settings.INGEST_MAX_PAGES = 5
    response = upload(staff_client, "pages.pdf", many_pages(6))
    assert response.status_code == 413
    assert response.json()["code"] == "document_too_large" and "INGEST_MAX_PAGES" in response.json()["detail"]
    assert extract_text("five.pdf", many_pages(5)).metadata == {"page_count": 5}


def test_text_and_chunk_limits_hold_for_every_kind_of_document(settings, staff_client, db):
    settings.INGEST_MAX_CHARS = 2_000
    body = {"title": "Long", "content": "A sentence about refunds. " * 100, "category": "FAQ"}
    response = staff_client.post(DOCUMENTS, body, format="json")
    assert response.status_code == 413 and response.json()["code"] == "document_too_large"
    settings.INGEST_MAX_CHARS, settings.INGEST_MAX_CHUNKS = 1_000_000, 2
    response = staff_client.post(DOCUMENTS, body, format="json")
    assert response.status_code == 413 and "INGEST_MAX_CHUNKS" in response.json()["detail"]
    settings.INGEST_MAX_CHUNKS = 800
    assert staff_client.post(DOCUMENTS, body, format="json").status_code == 201


def test_damaged_and_encrypted_pdfs_are_still_unreadable_files(staff_client, db):
    response = upload(staff_client, "broken.pdf", b"%PDF-1.7\nnot really")
    assert response.status_code == 400 and response.json()["code"] == "unreadable_file"
    with pytest.raises(DocumentTooLarge):
        limits.text_size_check("x" * (limits.settings.INGEST_MAX_CHARS + 1))
