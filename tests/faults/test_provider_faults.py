"""Provider faults through the chat API, with every remote provider on (Mistral embeddings and chat,
Pinecone) against the fake servers, and one of them misbehaving at a time.

Every fault kind of the fakes (429 with ``Retry-After``, 500, a hang past the timeout, a closed
connection, invalid JSON) at each provider: a transient fault is retried inside the time budget
(after the ``Retry-After`` asked for) and answered normally; a persistent one (or a 429 asking to
wait past the budget) makes the generator fall back to the extractive answer (201, ``degraded``)
and makes retrieval a 503 ``answer_unavailable``. In every case the user's
message is stored exactly once, and a retry with the same ``Idempotency-Key`` after the provider
recovers answers it without storing it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rag.providers.factory import reset_providers
from rag.services.ingestion import DocumentInput, document_ingest
from tests.conftest import KB_DOCUMENTS
from tests.fakes import FakeMistral, FakePinecone, FakeServer
from tests.faults.conftest import SESSIONS, parse_sse, send, stored, stored_ids

pytestmark = pytest.mark.django_db

# Small enough to keep the matrix fast, large enough for a few retries: one attempt may take
# REQUEST_TIMEOUT_S, and the Mistral SDK's backoff sleeps are capped at that too.
BUDGET_S = 0.8
REQUEST_TIMEOUT_S = 0.25
RETRY_AFTER_S = 0.3  # inside the budget, so it is waited for
RETRY_AFTER_BEYOND_BUDGET_S = 30  # not waited for: the call gives up at once
QUESTION = "How do I reset my password?"
KINDS = ["429", "500", "hang", "close", "invalid_json"]
RETRIED = ["429", "500", "hang", "close"]  # a 200 with a broken body is not worth asking again


@dataclass(frozen=True)
class Target:
    name: str
    server: str  # which fake: "mistral" or "pinecone"
    path: str  # the requests to fail
    retrieval: bool  # without it there are no documents, so no answer at all

    def fake(self, fakes: dict[str, FakeServer]) -> FakeServer:
        return fakes[self.server]


GENERATOR = Target("generator", "mistral", "/v1/chat/completions", retrieval=False)
EMBEDDER = Target("embedder", "mistral", "/v1/embeddings", retrieval=True)
VECTOR_STORE = Target("vector_store", "pinecone", "/query", retrieval=True)
TARGETS = [GENERATOR, EMBEDDER, VECTOR_STORE]


@pytest.fixture
def fakes(settings: Any, fake_mistral: FakeMistral, fake_pinecone: FakePinecone) -> dict[str, FakeServer]:
    """The production providers on the fakes, with a small knowledge base ingested through them."""
    settings.RAG_EMBEDDER, settings.RAG_VECTOR_STORE, settings.RAG_GENERATOR = "mistral", "pinecone", "mistral"
    settings.MISTRAL_API_KEY, settings.MISTRAL_SERVER_URL = "test-key", fake_mistral.url
    settings.PINECONE_API_KEY, settings.PINECONE_HOST, settings.PINECONE_NAMESPACE = "pc-key", fake_pinecone.url, "kb"
    settings.RAG_MIN_SCORE = 0.0  # the fake's embeddings are word hashes: let every match ground the answer
    reset_providers()
    for title, category, source, content in KB_DOCUMENTS[:2]:  # two are enough, and quick to ingest
        document_ingest(item=DocumentInput(title=title, category=category, source=source, content=content))
    # The tight budgets are for the faults under test, not for setting up (a loaded machine may be slow).
    settings.RAG_TIMEOUT_S, settings.RAG_REQUEST_TIMEOUT_S = BUDGET_S, REQUEST_TIMEOUT_S
    reset_providers()
    fake_mistral.reset()
    fake_pinecone.reset()
    return {"mistral": fake_mistral, "pinecone": fake_pinecone}


@pytest.fixture
def session_id(api_client: Any) -> int:
    return int(api_client.post(SESSIONS, {}, format="json").json()["id"])


def _ids(target: Target) -> str:
    return target.name


def by_namespace(attempts: list[Any]) -> list[list[Any]]:
    """The attempts per Pinecone namespace (one list for Mistral): a search in a workspace asks its
    namespace and the shared base's in parallel, and each shows the fault it met."""
    grouped: dict[Any, list[Any]] = {}
    for attempt in attempts:
        namespace = attempt.body.get("namespace") if isinstance(attempt.body, dict) else None
        grouped.setdefault(namespace, []).append(attempt)
    return list(grouped.values())


def assert_answered_by_the_providers(reply: dict[str, Any]) -> None:
    bot = reply["bot_message"]
    assert bot["degraded"] is False and bot["provider"] == "mistral"
    assert bot["sources"] and "[1]" in bot["content"]


# A connection the server closes without answering (httpx.RemoteProtocolError, e.g. a keep-alive
# connection dropped by a proxy) is retried too: nothing was answered, so the retry policy
# (rag/providers/http.py) counts it with timeouts and network errors.


def _transient_cases() -> list[Any]:
    cases = []
    for kind in RETRIED:
        for target in TARGETS:
            cases.append(pytest.param(target, kind, id=f"{kind}-{target.name}"))
    return cases


@pytest.mark.parametrize(("target", "kind"), _transient_cases())
def test_a_transient_fault_is_retried_within_the_budget(fakes, api_client, session_id, target, kind):
    fake = target.fake(fakes)
    fake.fail_next(kind, count=1, retry_after=RETRY_AFTER_S if kind == "429" else 0, path=target.path)

    response = send(api_client, session_id, QUESTION)

    assert response.status_code == 201, response.content
    assert_answered_by_the_providers(response.json())
    groups = by_namespace(fake.requests_to(target.path))
    [attempts] = [group for group in groups if group[0].fault is not None]
    assert [a.fault for a in attempts] == [kind, None]
    assert all(a.fault is None for group in groups if group is not attempts for a in group)
    if kind == "429":  # Retry-After is honoured: the second attempt did not come sooner
        assert attempts[1].received_at - attempts[0].received_at >= RETRY_AFTER_S
    assert stored("user", QUESTION) == 1 and stored("bot") == 1


@pytest.mark.parametrize("target", TARGETS, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_a_persistent_fault_degrades_or_is_503_and_a_retry_after_recovery_answers_once(
    fakes, api_client, session_id, target, kind
):
    fake = target.fake(fakes)
    fake.fail_next(kind, count=1000, retry_after=RETRY_AFTER_BEYOND_BUDGET_S, path=target.path)
    key = {"HTTP_IDEMPOTENCY_KEY": f"fault-{target.name}-{kind}"}

    response = send(api_client, session_id, QUESTION, **key)

    attempts = fake.requests_to(target.path)
    assert attempts and all(a.fault == kind for a in attempts), "the fault was never reached"
    if kind == "429":  # asked to wait past the budget: no point waiting, no second attempt
        assert all(len(group) == 1 for group in by_namespace(attempts))
    if target.retrieval:
        assert response.status_code == 503, response.content
        body = response.json()
        assert set(body) == {"detail", "code"} and body["code"] == "answer_unavailable"
        assert "saved" in body["detail"]
        assert stored("user", QUESTION) == 1 and stored("bot") == 0
    else:
        assert response.status_code == 201, response.content
        bot = response.json()["bot_message"]
        assert bot["degraded"] is True and bot["provider"] == "extractive"
        assert bot["sources"] and "[1]" in bot["content"]
        assert stored("user", QUESTION) == 1 and stored("bot") == 1

    fake.clear_faults()
    retry = send(api_client, session_id, QUESTION, **key)

    assert retry.status_code == 201, retry.content
    assert [retry.json()["user_message"]["id"]] == stored_ids("user")
    if target.retrieval:
        assert_answered_by_the_providers(retry.json())
    else:
        assert retry.json() == response.json()  # the first reply, replayed: nothing answered twice
    assert stored("user", QUESTION) == 1 and stored("bot") == 1


@pytest.mark.parametrize(
    ("target", "kind"),
    [(GENERATOR, "hang"), (GENERATOR, "invalid_json"), (EMBEDDER, "500"), (VECTOR_STORE, "close")],
    ids=["generator-hang", "generator-invalid_json-mid-stream", "embedder-500", "vector_store-close"],
)
def test_streamed_answers_under_a_persistent_fault(fakes, api_client, session_id, target, kind):
    fake = target.fake(fakes)
    fake.fail_next(kind, count=1000, retry_after=0, path=target.path)
    headers = {"HTTP_ACCEPT": "text/event-stream", "HTTP_IDEMPOTENCY_KEY": f"sse-{target.name}-{kind}"}

    response = send(api_client, session_id, QUESTION, **headers)

    if target.retrieval:  # found before the stream starts: an ordinary JSON error
        assert response.status_code == 503 and response["Content-Type"] == "application/json"
        assert response.json()["code"] == "answer_unavailable"
        assert stored("user", QUESTION) == 1 and stored("bot") == 0
    else:
        assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
        events = parse_sse(b"".join(response.streaming_content))
        kinds = [name for name, _ in events]
        assert kinds[0] == "user_message" and kinds[1] == "sources" and kinds[-1] == "done", kinds
        assert "error" not in kinds
        done = events[-1][1]
        assert done["degraded"] is True and done["provider"] == "extractive" and "[1]" in done["content"]
        assert stored("user", QUESTION) == 1 and stored("bot") == 1

    fake.clear_faults()
    retry = send(api_client, session_id, QUESTION, **headers)

    assert retry.status_code == 200, retry.content
    events = parse_sse(b"".join(retry.streaming_content))
    assert events[0][0] == "user_message" and events[0][1]["id"] == stored_ids("user")[0]
    assert events[-1][0] == "done"
    assert events[-1][1]["degraded"] is (not target.retrieval)
    assert stored("user", QUESTION) == 1 and stored("bot") == 1
