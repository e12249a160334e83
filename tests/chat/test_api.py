"""The chat API: sessions, grounded messages, streaming, idempotency, history, feedback, export."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from chat.models import ChatMessage, ChatSession
from rag.providers.factory import get_vector_store
from tests.factories import UserFactory
from utils.exceptions import ProviderUnavailable
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db

SESSIONS = "/api/chat/sessions/"


def messages_url(session_id: int) -> str:
    return f"{SESSIONS}{session_id}/messages/"


@pytest.fixture
def session(api_client) -> dict:
    return api_client.post(SESSIONS, {}, format="json").json()


def send(client, session_id: int, content: str, **headers):
    return client.post(messages_url(session_id), {"content": content}, format="json", **headers)


def parse_sse(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# --- sessions ---------------------------------------------------------------------------------


def test_session_crud_and_first_question_title(api_client, knowledge_base):
    created = api_client.post(SESSIONS, {}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["title"] == "" and body["message_count"] == 0
    send(api_client, body["id"], "How do I reset my password when I cannot log in at all anymore today?")
    detail = api_client.get(f"{SESSIONS}{body['id']}/").json()
    assert detail["title"].startswith("How do I reset my password") and len(detail["title"]) <= 61
    assert detail["message_count"] == 2
    renamed = api_client.patch(f"{SESSIONS}{body['id']}/", {"title": "Reset"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["title"] == "Reset"
    assert api_client.patch(f"{SESSIONS}{body['id']}/", {"title": "x" * 201}, format="json").status_code == 400
    assert api_client.delete(f"{SESSIONS}{body['id']}/").status_code == 204
    assert not ChatMessage.objects.exists()


def test_session_list_is_newest_activity_first(api_client, knowledge_base):
    first = api_client.post(SESSIONS, {"title": "first"}, format="json").json()
    api_client.post(SESSIONS, {"title": "second"}, format="json")
    send(api_client, first["id"], "what is an AI chatbot?")
    body = api_client.get(SESSIONS).json()
    assert [s["title"] for s in body["results"]] == ["first", "second"]
    assert body["results"][0]["message_count"] == 2 and body["count"] == 2


def test_another_users_objects_are_404_everywhere(api_client, client_for, knowledge_base):
    other = client_for(UserFactory.create())
    theirs = other.post(SESSIONS, {"title": "private"}, format="json").json()
    reply = send(other, theirs["id"], "how do I reset my password").json()
    sid, bot_id = theirs["id"], reply["bot_message"]["id"]
    assert api_client.get(f"{SESSIONS}{sid}/").status_code == 404
    assert api_client.patch(f"{SESSIONS}{sid}/", {"title": "mine"}, format="json").status_code == 404
    assert api_client.get(messages_url(sid)).status_code == 404
    assert send(api_client, sid, "hello").status_code == 404
    assert api_client.get(f"{SESSIONS}{sid}/export/").status_code == 404
    assert api_client.post(f"/api/chat/messages/{bot_id}/feedback/", {"rating": 1}, format="json").status_code == 404
    assert api_client.delete(f"{SESSIONS}{sid}/").status_code == 404
    assert api_client.get(SESSIONS).json()["count"] == 0
    assert api_client.get("/api/chat/history/").json()["total_messages"] == 0
    assert ChatSession.objects.get(pk=sid).title == "private"


def test_chat_needs_login(anon_client):
    for method, url in [
        ("get", SESSIONS),
        ("post", SESSIONS),
        ("get", "/api/chat/history/"),
        ("post", messages_url(1)),
        ("get", f"{SESSIONS}1/export/"),
    ]:
        assert getattr(anon_client, method)(url).status_code == 401


# --- sending ----------------------------------------------------------------------------------


def test_send_returns_a_grounded_answer_with_sources(api_client, session, knowledge_base):
    response = send(api_client, session["id"], "  How do I reset my password?  ")
    assert response.status_code == 201, response.content
    body = response.json()
    user, bot = body["user_message"], body["bot_message"]
    assert user["sender"] == "user" and user["content"] == "How do I reset my password?"
    assert bot["sender"] == "bot" and "[1]" in bot["content"] and bot["degraded"] is False
    assert 1 <= len(bot["sources"]) <= 3
    assert bot["sources"][0]["source"] == "guides/reset.md"
    assert set(bot["sources"][0]) == {"document_id", "title", "category", "source", "score", "snippet"}
    assert bot["latency_ms"] >= 0 and bot["provider"] == "extractive"


@pytest.mark.parametrize("content", ["", "   ", "x" * 4001])
def test_send_validation(api_client, session, content):
    response = send(api_client, session["id"], content)
    assert response.status_code == 400 and "content" in response.json()["errors"]
    assert not ChatMessage.objects.exists()


def test_send_accepts_exactly_4000_characters(api_client, session, knowledge_base):
    assert send(api_client, session["id"], "password " * 444 + "rese").status_code == 201


def test_user_message_survives_a_failing_retrieval(api_client, session, knowledge_base, monkeypatch):
    def refuse(*args, **kwargs):
        raise ProviderUnavailable("vector store unreachable", provider="faiss")

    monkeypatch.setattr(get_vector_store(), "query", refuse)
    response = send(api_client, session["id"], "how do I reset my password", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 503
    assert response.json()["code"] == "answer_unavailable" and "saved" in response.json()["detail"]
    stored = ChatMessage.objects.get()
    assert stored.sender == "user" and stored.content == "how do I reset my password"
    monkeypatch.undo()
    retry = send(api_client, session["id"], "how do I reset my password", HTTP_IDEMPOTENCY_KEY="k-1")
    assert retry.status_code == 201 and retry.json()["user_message"]["id"] == stored.pk
    assert ChatMessage.objects.filter(sender="user").count() == 1


def test_follow_up_question_retrieves_the_reset_document(api_client, session, knowledge_base):
    send(api_client, session["id"], "I forgot my password, what should I do?")
    bot = send(api_client, session["id"], "how long is the link valid?").json()["bot_message"]
    assert bot["sources"][0]["source"] == "guides/reset.md"


# --- idempotency ------------------------------------------------------------------------------


def test_idempotent_replay_returns_the_first_reply(api_client, session, knowledge_base):
    first = send(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="abc")
    again = send(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert ChatMessage.objects.count() == 2


def test_same_key_with_other_content_is_409(api_client, session, knowledge_base):
    send(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="abc")
    response = send(api_client, session["id"], "something else", HTTP_IDEMPOTENCY_KEY="abc")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_key_reused"
    assert ChatMessage.objects.count() == 2


def test_keys_belong_to_one_user(api_client, client_for, session, knowledge_base):
    other = client_for(UserFactory.create())
    theirs = other.post(SESSIONS, {}, format="json").json()
    send(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="shared")
    assert send(other, theirs["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    assert ChatMessage.objects.count() == 4


# --- streaming --------------------------------------------------------------------------------


def stream(client, session_id: int, content: str, **headers):
    return client.post(
        messages_url(session_id), {"content": content}, format="json", HTTP_ACCEPT="text/event-stream", **headers
    )


def test_stream_events_in_order_and_sources_identical_everywhere(api_client, session, knowledge_base):
    response = stream(api_client, session["id"], "how do I reset my password")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    events = parse_sse(b"".join(response.streaming_content))
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["user_message", "sources"] and kinds[-1] == "done" and "delta" in kinds
    done = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "delta") == done["content"]
    assert events[1][1] == done["sources"]
    history = api_client.get(messages_url(session["id"])).json()["results"]
    assert history[-1]["id"] == done["id"] and history[-1]["sources"] == done["sources"]
    recent = api_client.get("/api/chat/history/").json()["recent_messages"]
    assert recent[0]["sources"] == done["sources"]
    posted = send(api_client, session["id"], "how do I reset my password").json()["bot_message"]
    assert posted["sources"] == done["sources"]


def test_stream_completes_and_stores_the_answer_when_the_client_leaves(
    api_client, session, knowledge_base, monkeypatch
):
    response = stream(api_client, session["id"], "how do I reset my password")
    assert b"event: user_message" in next(iter(response.streaming_content))
    # What the WSGI server does when the client disconnects. Closing a response ends the request,
    # which would close the test's transaction-bound database connection: keep it for the checks.
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    response.close()
    bot = ChatMessage.objects.get(sender="bot")
    assert "[1]" in bot.content and bot.metadata["sources"][0]["source"] == "guides/reset.md"


def test_stream_validation_errors_are_json(api_client, session):
    response = stream(api_client, session["id"], "")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"


def test_stream_replay_with_idempotency_key(api_client, session, knowledge_base):
    first = send(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="s1").json()
    events = parse_sse(
        b"".join(
            stream(api_client, session["id"], "what is an AI chatbot?", HTTP_IDEMPOTENCY_KEY="s1").streaming_content
        )
    )
    assert events[-1][1]["id"] == first["bot_message"]["id"]
    assert ChatMessage.objects.count() == 2


# --- history and pagination -------------------------------------------------------------------


def test_history_shape(api_client, knowledge_base):
    for title in ("a", "b"):
        sid = api_client.post(SESSIONS, {"title": title}, format="json").json()["id"]
        send(api_client, sid, f"what is an AI chatbot? ({title})")
    body = api_client.get("/api/chat/history/").json()
    assert set(body) == {"sessions", "recent_messages", "total_sessions", "total_messages"}
    assert body["total_sessions"] == 2 and body["total_messages"] == 4
    assert [s["title"] for s in body["sessions"]] == ["b", "a"]
    assert [m["sender"] for m in body["recent_messages"]] == ["bot", "user", "bot", "user"]


def test_message_pagination_with_cursors(api_client, session):
    chat_session = ChatSession.objects.get(pk=session["id"])
    ids = [ChatMessage.objects.create(session=chat_session, sender="user", content=f"m{n}").pk for n in range(7)]
    url = messages_url(session["id"])
    page = api_client.get(url, {"page_size": 3}).json()
    assert page["count"] == 7 and [m["id"] for m in page["results"]] == ids[:3] and page["previous"] is None
    page2 = api_client.get(page["next"]).json()
    assert [m["id"] for m in page2["results"]] == ids[3:6]
    older = api_client.get(url, {"before": ids[6], "page_size": 2}).json()
    assert [m["id"] for m in older["results"]] == ids[4:6] and older["previous"] and older["next"]
    last = api_client.get(url, {"after": ids[5]}).json()
    assert [m["id"] for m in last["results"]] == ids[6:] and last["next"] is None
    window = api_client.get(url, {"after": ids[1], "before": ids[5], "page_size": 2}).json()
    assert [m["id"] for m in window["results"]] == ids[3:5] and window["previous"] and window["next"]
    for bad in ({"after": "x"}, {"after": "1.0"}, {"before": -1}, {"page_size": 0}, {"page_size": "ten"}):
        assert api_client.get(url, bad).status_code == 400, bad


# --- limits -----------------------------------------------------------------------------------


def test_send_throttle(api_client, session, knowledge_base, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "chat": "2/min"}}
    assert [send(api_client, session["id"], "what is an AI chatbot?").status_code for _ in range(2)] == [201, 201]
    response = send(api_client, session["id"], "what is an AI chatbot?")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert api_client.get(messages_url(session["id"])).status_code == 200  # reads are not throttled


def test_daily_quota(api_client, session, knowledge_base, settings):
    settings.CHAT_DAILY_QUOTA = 2
    for _ in range(2):
        assert send(api_client, session["id"], "what is an AI chatbot?").status_code == 201
    response = send(api_client, session["id"], "what is an AI chatbot?")
    assert response.status_code == 429 and response.json()["code"] == "daily_quota_exceeded"
    assert 0 < int(response["Retry-After"]) <= 86400
    assert ChatMessage.objects.filter(sender="user").count() == 2


def test_token_usage_and_model_are_recorded(api_client, session, knowledge_base):
    bot = send(api_client, session["id"], "what is an AI chatbot?").json()["bot_message"]
    stored = ChatMessage.objects.get(pk=bot["id"])
    assert {"sources", "provider", "model", "usage", "degraded", "latency_ms"} <= set(stored.metadata)


# --- feedback and export ----------------------------------------------------------------------


def test_feedback_on_answers_only_and_overwrites(api_client, session, knowledge_base):
    reply = send(api_client, session["id"], "what is an AI chatbot?").json()
    url = f"/api/chat/messages/{reply['bot_message']['id']}/feedback/"
    assert api_client.post(url, {"rating": 1, "comment": "good"}, format="json").json()["feedback"]["rating"] == 1
    body = api_client.post(url, {"rating": -1}, format="json").json()
    assert body["feedback"]["rating"] == -1 and body["feedback"]["comment"] == ""
    assert api_client.post(url, {"rating": 5}, format="json").status_code == 400
    user_url = f"/api/chat/messages/{reply['user_message']['id']}/feedback/"
    response = api_client.post(user_url, {"rating": 1}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "not_an_answer"


def test_export_json_and_markdown(api_client, session, knowledge_base):
    send(api_client, session["id"], "how do I reset my password")
    url = f"{SESSIONS}{session['id']}/export/"
    as_json = api_client.get(url, {"format": "json"})
    assert as_json.status_code == 200 and "attachment" in as_json["Content-Disposition"]
    body = as_json.json()
    assert body["session"]["id"] == session["id"] and len(body["messages"]) == 2
    assert body["messages"][1]["sources"][0]["source"] == "guides/reset.md"
    as_md = api_client.get(url, {"format": "md"})
    assert as_md.status_code == 200 and as_md["Content-Type"].startswith("text/markdown")
    assert f"session-{session['id']}.md" in as_md["Content-Disposition"]
    text = as_md.content.decode()
    assert "how do I reset my password" in text and "Reset a forgotten password" in text
    assert api_client.get(url, {"format": "pdf"}).status_code == 404


def test_two_overlapping_retries_keep_one_answer(user, knowledge_base):
    """Without the Redis answer lock two retries of one key may both compute an answer: one is kept."""
    from chat.models import ChatSession
    from chat.services import _store_answer, message_receive
    from rag.services.answering import Answer

    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    first_try = message_receive(user=user, session=session, content="reset my password", idempotency_key="k")
    second_try = message_receive(user=user, session=session, content="reset my password", idempotency_key="k")
    assert second_try.user_message.pk == first_try.user_message.pk and second_try.bot_message is None
    kept = _store_answer(first_try, Answer(text="first", sources=[], provider="extractive", model="x"))
    again = _store_answer(second_try, Answer(text="second", sources=[], provider="extractive", model="x"))
    assert again.pk == kept.pk and again.content == "first"
    assert ChatMessage.objects.filter(sender="bot").count() == 1
