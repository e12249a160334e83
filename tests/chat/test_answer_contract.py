"""The answer contract: the same answer_status, citations and sources in the POST reply, the SSE
done event, the messages list, the history and both exports; verified quotes; cited sources only;
model markers that cite nothing retrieved removed; a model's refusal stored as abstained."""

from __future__ import annotations

import json
import re

import pytest

from rag.models import Chunk
from rag.providers.factory import reset_providers
from tests.chat.test_api import SESSIONS, messages_url, parse_sse, send, stream

pytestmark = pytest.mark.django_db

CONTRACT = ("answer_status", "abstain_reason", "citations", "sources")


@pytest.fixture
def session(api_client) -> dict:
    return api_client.post(SESSIONS, {}, format="json").json()


@pytest.fixture
def mistral(settings, fake_mistral):
    settings.RAG_GENERATOR = "mistral"
    settings.MISTRAL_API_KEY = "test-mistral-key-0123456789"
    settings.MISTRAL_SERVER_URL = fake_mistral.url
    settings.RAG_TIMEOUT_S, settings.RAG_REQUEST_TIMEOUT_S = 10.0, 10.0
    reset_providers()
    return fake_mistral


def contract(message: dict) -> dict:
    return {key: message[key] for key in CONTRACT}


def everywhere(api_client, session_id: int, message_id: int) -> list[dict]:
    """The stored answer as every read path shows it."""
    listed = next(m for m in api_client.get(messages_url(session_id)).json()["results"] if m["id"] == message_id)
    recent = next(m for m in api_client.get("/api/chat/history/").json()["recent_messages"] if m["id"] == message_id)
    exported = api_client.get(f"{SESSIONS}{session_id}/export/?format=json").json()
    in_export = next(m for m in exported["messages"] if m["id"] == message_id)
    return [contract(listed), contract(recent), contract(in_export)]


def assert_verified(message: dict) -> None:
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", message["content"])}
    assert markers == {c["n"] for c in message["citations"]} == set(range(1, len(message["sources"]) + 1))
    for citation in message["citations"]:
        chunk = Chunk.objects.get(pk=citation["chunk_id"])
        assert citation["quote"] in chunk.text
        assert chunk.document_id == citation["document_id"] == message["sources"][citation["n"] - 1]["document_id"]


def test_reply_stream_list_history_and_exports_show_one_contract(api_client, session, knowledge_base):
    posted = send(api_client, session["id"], "how long is the password reset link valid?").json()["bot_message"]
    assert posted["answer_status"] == "answered" and posted["abstain_reason"] is None
    assert_verified(posted)
    assert all(view == contract(posted) for view in everywhere(api_client, session["id"], posted["id"]))
    events = parse_sse(
        b"".join(stream(api_client, session["id"], "which address verifies my email?").streaming_content)
    )
    done = events[-1][1]
    assert_verified(done)
    assert events[1][1] == done["sources"]  # the extractive answer knows its sources before it streams
    assert all(view == contract(done) for view in everywhere(api_client, session["id"], done["id"]))
    markdown = api_client.get(f"{SESSIONS}{session['id']}/export/?format=md").content.decode()
    for citation in posted["citations"] + done["citations"]:
        assert f'[{citation["n"]}] "{" ".join(citation["quote"].split())}"' in markdown


def test_an_abstained_answer_lists_no_sources_anywhere(api_client, session, knowledge_base):
    posted = send(api_client, session["id"], "what is the best temperature for baking sourdough?").json()
    bot = posted["bot_message"]
    assert bot["answer_status"] == "abstained" and bot["abstain_reason"] in ("no_match", "low_support")
    assert bot["sources"] == [] and bot["citations"] == []
    assert all(view == contract(bot) for view in everywhere(api_client, session["id"], bot["id"]))


def test_a_model_marker_citing_nothing_retrieved_is_removed(api_client, session, knowledge_base, mistral):
    mistral.canned_reply = (
        "Ask for a reset email with your email address [1]. The reset link is valid for one hour [7]."
    )
    bot = send(api_client, session["id"], "how do I reset my password?").json()["bot_message"]
    assert bot["provider"] == "mistral" and bot["answer_status"] == "answered"
    assert "[7]" not in bot["content"] and bot["content"].count("[1]") == 1
    assert_verified(bot)
    assert [s["source"] for s in bot["sources"]] == ["guides/reset.md"]


def test_a_model_refusal_is_abstained_with_no_sources(api_client, session, knowledge_base, mistral):
    mistral.canned_reply = "I don't have specific information about this topic."
    bot = send(api_client, session["id"], "how do I reset my password?").json()["bot_message"]
    assert (bot["answer_status"], bot["abstain_reason"]) == ("abstained", "model_declined")
    assert bot["sources"] == [] and bot["citations"] == []


def test_messages_stored_before_the_contract_still_render(api_client, session, knowledge_base):
    from chat.models import ChatMessage

    sources = [{"document_id": 1, "title": "T", "category": "Guide", "source": "", "score": 0.5, "snippet": "s"}]
    ChatMessage.objects.create(session_id=session["id"], sender="user", content="weather?")
    old = ChatMessage.objects.create(
        session_id=session["id"],
        sender="bot",
        content="I don't have specific information about this topic.",
        metadata={"sources": sources, "provider": "extractive", "model": "extractive-v1"},
    )
    shown = next(m for m in api_client.get(messages_url(session["id"])).json()["results"] if m["id"] == old.pk)
    assert (shown["answer_status"], shown["sources"], shown["citations"]) == ("abstained", [], [])
    assert json.dumps(shown)  # renders
