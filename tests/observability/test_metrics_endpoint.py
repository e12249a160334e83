"""``/metrics``: who may read it, what it answers, and that it stays out of the API schema."""

from __future__ import annotations

import pytest
from django.test import Client

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def client() -> Client:
    return Client()


def test_without_a_token_configured_it_does_not_exist_in_production(settings, client):
    settings.METRICS_TOKEN, settings.DEBUG = "", False
    response = client.get("/metrics")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_without_a_token_debug_serves_loopback_clients_only(settings, client):
    settings.METRICS_TOKEN, settings.DEBUG = "", True
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 404


WRONG = [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer", f"Token {TOKEN}"]


@pytest.mark.parametrize("authorization", WRONG)
def test_a_missing_or_wrong_token_is_401(settings, client, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"
    assert TOKEN not in response.content.decode()


def test_the_right_token_gets_the_text_exposition(settings, client):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    for family in (
        "ragchat_http_request_duration_seconds",
        "ragchat_retrieval_duration_seconds",
        "ragchat_generation_duration_seconds",
        "ragchat_provider_errors_total",
        "ragchat_provider_retries_total",
        "ragchat_degraded_answers_total",
        "ragchat_job_runs_total",
        "ragchat_chat_messages_sent_total",
    ):
        assert f"# TYPE {family} " in body, family
    assert "_created" not in body  # same series as under gunicorn, where there are none


def test_openmetrics_when_the_scraper_asks_for_it(settings, client):
    settings.METRICS_TOKEN = TOKEN
    response = client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


def test_only_get_and_head(settings, client):
    settings.METRICS_TOKEN = TOKEN
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


@pytest.mark.django_db
def test_metrics_is_not_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["paths"] and not any("metrics" in path for path in schema["paths"])
