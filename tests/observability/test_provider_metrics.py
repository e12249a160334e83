"""Provider calls through the chat API: timed by provider, failures and retries counted."""

from __future__ import annotations

import pytest

from rag.providers.factory import reset_providers
from tests.observability.conftest import messages_url
from utils.logging import request_id_scope

pytestmark = pytest.mark.django_db

RETRIEVAL = "ragchat_retrieval_duration_seconds_count"
GENERATION = "ragchat_generation_duration_seconds_count"
ERRORS = "ragchat_provider_errors_total"
RETRIES = "ragchat_provider_retries_total"
DEGRADED = "ragchat_degraded_answers_total"
SENT = "ragchat_chat_messages_sent_total"
REQUESTS = "ragchat_http_request_duration_seconds_count"
QUESTION = {"content": "how do I reset my password"}


def test_a_chat_message_times_retrieval_and_generation_and_counts_the_message(
    delta, api_client, session_id, knowledge_base
):
    embed = delta(RETRIEVAL, provider="local", operation="embed_query")
    search = delta(RETRIEVAL, provider="faiss", operation="query")
    generate = delta(GENERATION, provider="extractive", operation="generate")
    sent = delta(SENT)
    view = delta(REQUESTS, view="chat:session-messages", method="POST", status="2xx")
    response = api_client.post(messages_url(session_id), QUESTION, format="json")
    assert response.status_code == 201 and not response.json()["bot_message"]["degraded"]
    assert (embed(), search(), generate(), sent(), view()) == (1, 1, 1, 1, 1)


def test_a_replayed_message_is_not_counted_again(delta, api_client, session_id, knowledge_base):
    sent = delta(SENT)
    for _ in range(2):
        response = api_client.post(messages_url(session_id), QUESTION, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        assert response.status_code == 201
    assert sent() == 1


def test_a_generator_fault_counts_an_error_and_a_degraded_answer(
    delta, api_client, session_id, knowledge_base, mistral_generator
):
    errors = delta(ERRORS, provider="mistral", kind="ProviderBadResponse")
    degraded = delta(DEGRADED, provider="mistral")
    generate = delta(GENERATION, provider="mistral", operation="generate")
    mistral_generator.fail_next("invalid_json", count=5)
    response = api_client.post(messages_url(session_id), QUESTION, format="json")
    assert response.status_code == 201 and response.json()["bot_message"]["degraded"] is True
    assert (errors(), degraded(), generate()) == (1, 1, 1)


def test_a_streamed_answer_that_fails_midway_is_counted_as_degraded(
    delta, api_client, session_id, knowledge_base, mistral_generator
):
    errors = delta(ERRORS, provider="mistral", kind="ProviderBadResponse")
    degraded = delta(DEGRADED, provider="mistral")
    streamed = delta(GENERATION, provider="mistral", operation="stream")
    view = delta(REQUESTS, view="chat:session-messages", method="POST", status="2xx")
    mistral_generator.fail_next("invalid_json", count=5)
    response = api_client.post(messages_url(session_id), QUESTION, format="json", HTTP_ACCEPT="text/event-stream")
    assert view() == 0  # a stream is timed to its last byte, not to the view's return
    assert b"event: done" in b"".join(response.streaming_content)
    assert (errors(), degraded(), streamed(), view()) == (1, 1, 1, 1)


def test_a_retried_rate_limit_counts_a_retry_and_no_error(
    delta, api_client, session_id, knowledge_base, mistral_generator
):
    retries = delta(RETRIES, provider="mistral", kind="http_429")
    errors = delta(ERRORS, provider="mistral", kind="ProviderRateLimited")
    mistral_generator.fail_next("429", count=1)
    response = api_client.post(messages_url(session_id), QUESTION, format="json")
    assert response.status_code == 201 and response.json()["bot_message"]["provider"] == "mistral"
    assert (retries(), errors()) == (1, 0)
    assert len(mistral_generator.requests_to("/v1/chat/completions")) == 2


def test_retries_of_the_openai_compatible_generator_are_counted(delta, settings, fake_mistral, knowledge_base):
    from rag.services.answering import answer_question

    settings.RAG_GENERATOR = "openai"
    settings.OPENAI_BASE_URL = f"{fake_mistral.url}/v1"
    settings.OPENAI_MODEL = "local-model"
    reset_providers()
    retries = delta(RETRIES, provider="openai", kind="http_500")
    fake_mistral.fail_next("500", count=1)
    with request_id_scope("job:x:1"):
        answer = answer_question(question="how do I reset my password")
    assert answer.provider == "openai" and not answer.degraded
    assert retries() == 1
    sent = fake_mistral.requests_to("/v1/chat/completions")
    assert len(sent) == 2 and {r.headers.get("x-request-id") for r in sent} == {"job:x:1"}


def test_an_embedder_fault_counts_an_error_for_the_embedder(delta, settings, fake_mistral, db):
    from rag.providers.factory import get_embedder
    from utils.exceptions import ProviderBadResponse

    settings.RAG_EMBEDDER = "mistral"
    settings.MISTRAL_API_KEY = "test-mistral-key-0123456789"
    settings.MISTRAL_SERVER_URL = fake_mistral.url
    reset_providers()
    errors = delta(ERRORS, provider="mistral", kind="ProviderBadResponse")
    embedded = delta(RETRIEVAL, provider="mistral", operation="embed_query")
    fake_mistral.fail_next("invalid_json")
    with pytest.raises(ProviderBadResponse):
        get_embedder().embed_query("hello")
    assert len(get_embedder().embed_query("hello")) == 1024
    assert (errors(), embedded()) == (1, 2)
