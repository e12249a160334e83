"""Structured logs: one JSON object per line, the request id on each, no credentials."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from tests.observability.conftest import messages_url
from users.services import tokens_for
from utils.logging import JsonFormatter, RequestIdFilter, redact, request_id_scope

pytestmark = pytest.mark.django_db


def test_provider_failures_log_the_request_id_as_json_without_credentials(
    user, api_client, session_id, knowledge_base, mistral_generator, json_logs
):
    mistral_generator.fail_next("invalid_json", count=5)
    response = api_client.post(
        messages_url(session_id), {"content": "how do I reset my password"}, format="json", HTTP_X_REQUEST_ID="req-42"
    )
    assert response.status_code == 201 and response.json()["bot_message"]["degraded"] is True
    lines = json_logs.parsed()  # every line is one JSON object
    provider_lines = json_logs.by_logger("rag.providers.mistral")
    assert provider_lines and all(line["request_id"] == "req-42" for line in provider_lines)
    assert provider_lines[0]["level"] == "WARNING" and "mistral: chat completion" in provider_lines[0]["message"]
    access = api_client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert access and access not in json_logs.raw and "test-mistral-key-0123456789" not in json_logs.raw
    assert {"time", "level", "logger", "message", "request_id", "pid"} <= set(lines[0])
    # The provider was told the request id too, so its logs can be matched with ours.
    sent = mistral_generator.requests_to("/v1/chat/completions")
    assert sent and {r.headers.get("x-request-id") for r in sent} == {"req-42"}


def test_djangos_own_error_lines_carry_the_request_id(anon_client, json_logs):
    response = anon_client.get("/api/chat/sessions/", HTTP_X_REQUEST_ID="denied-1")
    assert response.status_code == 401
    lines = json_logs.by_logger("django.request")
    assert lines and lines[-1]["request_id"] == "denied-1" and lines[-1]["status_code"] == 401


def test_a_streamed_answer_logs_with_the_request_id_after_the_view_returned(
    api_client, session_id, knowledge_base, mistral_generator, json_logs
):
    mistral_generator.fail_next("invalid_json", count=5)
    response = api_client.post(
        messages_url(session_id),
        {"content": "how do I reset my password"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
        HTTP_X_REQUEST_ID="stream-9",
    )
    body = b"".join(response.streaming_content).decode()
    assert "event: done" in body and '"degraded":true' in body
    fallback = [line for line in json_logs.by_logger("rag.services.answering") if "mid-stream" in line["message"]]
    assert fallback and fallback[0]["request_id"] == "stream-9"


def test_the_json_formatter_writes_one_parseable_line_with_the_exception_and_plain_extras():
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed\nfor %s", ("ann",), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.job = "backup_data"
    record.request = object()  # Django attaches the request: never serialised
    with request_id_scope("abc"):
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "failed\nfor ann" and data["level"] == "ERROR" and data["logger"] == "app"
    assert "ValueError: boom" in data["exception"] and data["job"] == "backup_data" and "request" not in data
    assert data["request_id"] == "abc"


def test_outside_a_request_the_id_is_null_in_json_and_a_dash_in_plain_text():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "idle", (), None)
    RequestIdFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["request_id"] is None
    assert logging.Formatter("[%(request_id)s] %(message)s").format(record) == "[-] idle"


def test_credentials_that_slip_into_a_message_are_masked(user):
    access = str(tokens_for(user).access)
    text = redact(f"calling with Authorization: Bearer {access} and {{'Api-Key': 'pc-secret-1'}} token={access}")
    assert access not in text and "pc-secret-1" not in text and "[redacted]" in text
