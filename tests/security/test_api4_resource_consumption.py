"""OWASP API4:2023 Unrestricted Resource Consumption: every list, body, upload and batch is bounded,
and going over a bound is a clean 4xx in the error envelope, never a 500 and never partial work.

Already covered: message length 4,000 (tests/chat/test_api.py::test_send_validation,
::test_send_accepts_exactly_4000_characters), the daily message quota (::test_daily_quota), the
chat throttle (::test_send_throttle), search top_k 1..10 and q up to 1,000 characters
(tests/rag/test_api.py::test_search_validation), session title 200
(tests/chat/test_api.py::test_session_crud_and_first_question_title). Provider answers are bounded
in test_api10_unsafe_consumption.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import ChatMessage, ChatSession
from rag.models import Document
from users.models import User
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db

MAX_PAGE = 100


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and (code is None or body["code"] == code), body
    return body


# --- page sizes -----------------------------------------------------------------------------------


def test_every_list_caps_its_page_size(api_client, user, staff_client):
    personal = workspace_personal_get(user=user)
    ChatSession.objects.bulk_create(
        [ChatSession(user=user, workspace=personal, title=f"s{n}") for n in range(MAX_PAGE + 5)]
    )
    session = ChatSession.objects.filter(user=user).first()
    assert session is not None
    ChatMessage.objects.bulk_create(
        [ChatMessage(session=session, sender="user", content=f"m{n}") for n in range(MAX_PAGE + 5)]
    )
    Document.objects.bulk_create(
        [Document(title=f"d{n}", content="text", content_hash=f"{n:064d}") for n in range(MAX_PAGE + 5)]
    )
    shared: dict[str, Any] = {"workspace": "shared"}  # the documents above are in the shared base
    for client, url, params in [
        (api_client, "/api/chat/sessions/", {}),
        (api_client, f"/api/chat/sessions/{session.pk}/messages/", {}),
        (api_client, "/api/rag/documents/", shared),
        (staff_client, "/api/rag/documents/", shared),
    ]:
        for size in (MAX_PAGE + 1, 1_000_000):
            response = client.get(url, {"page_size": size, **params})
            assert response.status_code == 200, (url, response.content)
            assert len(response.json()["results"]) == MAX_PAGE, url


def test_history_is_bounded_however_much_there_is(api_client, user):
    personal = workspace_personal_get(user=user)
    sessions = ChatSession.objects.bulk_create(
        [ChatSession(user=user, workspace=personal, title=f"s{n}") for n in range(60)]
    )
    ChatMessage.objects.bulk_create([ChatMessage(session=sessions[0], sender="user", content="m") for _ in range(150)])
    body = api_client.get("/api/chat/history/", {"page_size": 10_000, "limit": 10_000}).json()
    assert body["total_sessions"] == 60 and body["total_messages"] == 150
    assert len(body["sessions"]) <= MAX_PAGE and len(body["recent_messages"]) <= MAX_PAGE


# --- request bodies ----------------------------------------------------------------------------------


def big_json(**fields: Any) -> str:
    """A JSON body just over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    return json.dumps({**fields, "padding": padding})


def test_a_json_body_over_the_limit_is_a_clean_413(anon_client, api_client, staff_client, user):
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    attempts = [
        (anon_client, "/api/auth/login/", big_json(username="a", password="b")),
        (anon_client, "/api/auth/register/", big_json(username="big", email="big@example.com", password="p")),
        (api_client, "/api/chat/sessions/", big_json(title="t")),
        (api_client, f"/api/chat/sessions/{session.pk}/messages/", big_json(content="hello")),
        (staff_client, "/api/rag/documents/", big_json(title="t", content="c")),
        (staff_client, "/api/rag/index/", big_json(documents=[])),
    ]
    for client, url, body in attempts:
        response = client.post(url, data=body, content_type="application/json")
        assert_error(response, 413, "request_too_large")
        assert "Traceback" not in response.content.decode()
    assert not User.objects.filter(username="big").exists()
    assert ChatSession.objects.count() == 1 and not ChatMessage.objects.exists() and not Document.objects.exists()


def test_a_body_just_under_the_limit_is_read(api_client):
    body = json.dumps({"title": "t", "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100)})
    assert api_client.post("/api/chat/sessions/", data=body, content_type="application/json").status_code == 201


def test_too_many_form_fields_is_a_clean_400(staff_client):
    fields = {f"f{n}": "x" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = staff_client.post("/api/rag/documents/", {**fields, "title": "t", "content": "c"})
    assert_error(response, 400)
    assert not Document.objects.exists()


# --- uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10 * 1024 * 1024 + 1, 12 * 1024 * 1024])
def test_an_upload_over_10_mb_is_a_clean_413(staff_client, size):
    assert settings.MAX_UPLOAD_BYTES == 10 * 1024 * 1024  # the documented default
    upload = SimpleUploadedFile("big.txt", b"a " * (size // 2) + b"a" * (size % 2), content_type="text/plain")
    response = staff_client.post("/api/rag/documents/", {"file": upload, "title": "Big"})
    assert_error(response, 413, "file_too_large")
    assert not Document.objects.exists()


def test_an_upload_of_exactly_the_limit_is_not_refused_for_its_size(staff_client, settings):
    settings.MAX_UPLOAD_BYTES = 4096  # the same rule at a size that is quick to ingest
    upload = SimpleUploadedFile("ok.txt", b"Plain words. " * 315 + b"x", content_type="text/plain")
    assert upload.size == 4096
    response = staff_client.post("/api/rag/documents/", {"file": upload, "title": "Fits"})
    assert response.status_code == 201, response.content


# --- batches and other inputs ----------------------------------------------------------------------


def test_bulk_index_takes_at_most_100_documents(staff_client):
    documents = [{"title": f"Doc {n}", "content": "text", "category": "Other"} for n in range(101)]
    body = assert_error(staff_client.post("/api/rag/index/", {"documents": documents}, format="json"), 400, "invalid")
    assert "documents" in body["errors"]
    assert not Document.objects.exists()


def test_other_client_supplied_strings_are_bounded(api_client, user):
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    bot = ChatMessage.objects.create(session=session, sender="bot", content="answer")
    key = assert_error(
        api_client.post(
            f"/api/chat/sessions/{session.pk}/messages/",
            {"content": "hi"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k" * 256,
        ),
        400,
    )
    assert "Idempotency-Key" in key["errors"]
    comment = {"rating": 1, "comment": "c" * 1001}
    assert_error(api_client.post(f"/api/chat/messages/{bot.pk}/feedback/", comment, format="json"), 400, "invalid")
    assert_error(api_client.post("/api/chat/sessions/", {"title": "t" * 201}, format="json"), 400, "invalid")
    assert ChatMessage.objects.count() == 1 and ChatSession.objects.count() == 1
