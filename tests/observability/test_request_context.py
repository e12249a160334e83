"""Every request: timed by view name (never the raw path) and carrying a request id."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from utils.logging import current_request_id

HISTOGRAM = "ragchat_http_request_duration_seconds_count"
pytestmark = pytest.mark.django_db


def test_a_request_is_counted_under_its_url_name_method_and_status_class(delta, anon_client):
    listed = delta(HISTOGRAM, view="chat:sessions", method="GET", status="4xx")
    created = delta(HISTOGRAM, view="chat:sessions", method="POST", status="4xx")
    assert anon_client.get("/api/chat/sessions/").status_code == 401
    assert anon_client.get("/api/chat/sessions/").status_code == 401
    assert anon_client.post("/api/chat/sessions/", {}, format="json").status_code == 401
    assert (listed(), created()) == (2, 1)


def test_a_path_with_ids_is_counted_under_its_pattern_not_its_path(delta, api_client):
    detail = delta(HISTOGRAM, view="chat:session-detail", method="GET", status="4xx")
    for session_id in (9001, 9002, 9003):
        assert api_client.get(f"/api/chat/sessions/{session_id}/").status_code == 404
    assert detail() == 3


def test_unmatched_paths_and_unknown_methods_share_one_label_each(settings, delta):
    settings.METRICS_TOKEN = "t"
    unmatched = delta(HISTOGRAM, view="<unmatched>", method="GET", status="4xx")
    other = delta(HISTOGRAM, view="chat:sessions", method="other", status="4xx")
    client = Client()
    for path in ("/nothing-here-1", "/wp-admin/setup.php", "/api/no/such/thing/"):
        assert client.get(path).status_code == 404
    client.generic("PROPFIND", "/api/chat/sessions/")
    assert (unmatched(), other()) == (3, 1)
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    assert "wp-admin" not in body and "nothing-here" not in body and "PROPFIND" not in body


def test_a_sane_request_id_is_echoed(anon_client):
    response = anon_client.get("/api/chat/sessions/", HTTP_X_REQUEST_ID="edge-7f3a.2_b")
    assert response["X-Request-ID"] == "edge-7f3a.2_b"


@pytest.mark.parametrize("given", [None, "", "x" * 65, "has space", "new\nline", "semi;colon", "ünïcode"])
def test_a_missing_or_insane_request_id_is_replaced_by_a_fresh_one(anon_client, given):
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    first = anon_client.get("/api/chat/sessions/", **headers)["X-Request-ID"]
    second = anon_client.get("/api/chat/sessions/", **headers)["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_the_request_id_is_cleared_when_the_request_is_finished(anon_client):
    anon_client.get("/api/chat/sessions/", HTTP_X_REQUEST_ID="finished-1")
    assert current_request_id() == ""
