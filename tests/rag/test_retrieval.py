"""Retrieval over a small knowledge base with the local embedder, FAISS and BM25 fusion."""

from __future__ import annotations

import pytest

from rag.models import Chunk
from rag.providers.base import Turn, Vectors
from rag.providers.factory import get_embedder
from rag.services.retrieval import retrieve

pytestmark = pytest.mark.django_db


def sources(result) -> list[str]:
    return [d.source for d in result.documents]


@pytest.mark.parametrize("fusion", ["dense", "hybrid"])
def test_reset_question_finds_the_reset_guide_first(knowledge_base, fusion):
    result = retrieve(query="how do I reset my password", fusion=fusion)
    assert sources(result)[0] == "guides/reset.md"
    top = result.documents[0]
    assert top.title == "Reset a forgotten password" and top.category == "Guide"
    assert 0 < top.score <= 1 and "reset" in top.snippet.lower()
    assert len(result.documents) <= 3


def test_top_k_and_minimum_score(knowledge_base, settings):
    assert len(retrieve(query="password reset email link", top_k=1).documents) == 1
    settings.RAG_MIN_SCORE = 0.99
    assert retrieve(query="how do I reset my password").documents == []


def test_unrelated_question_finds_nothing(knowledge_base):
    assert retrieve(query="best temperature for baking sourdough bread").documents == []


def test_follow_up_uses_the_previous_question(knowledge_base):
    history = [
        Turn(role="user", content="I forgot my password, how do I get back in?"),
        Turn(role="assistant", content="Ask for a reset email [1]."),
    ]
    result = retrieve(query="how long is the link valid?", history=history)
    assert sources(result)[0] == "guides/reset.md"


def test_query_embedding_is_cached(knowledge_base, monkeypatch):
    retrieve(query="how do I reset my password")
    embedder = get_embedder()
    monkeypatch.setattr(embedder, "embed_query", lambda text: pytest.fail("embedded a cached query"))
    assert sources(retrieve(query="how do I reset my password"))[0] == "guides/reset.md"


def test_vectors_of_chunks_missing_from_the_database_are_ignored(knowledge_base):
    reset_doc = knowledge_base[0]
    Chunk.objects.filter(document=reset_doc).delete()  # the vectors stay behind
    assert "guides/reset.md" not in sources(retrieve(query="how do I reset my password"))


def test_a_new_topic_in_the_same_session_is_not_dragged_back(knowledge_base):
    history = [Turn(role="user", content="I forgot my password, how do I get back in?")]
    result = retrieve(query="What is an AI chatbot and how does retrieval-augmented generation work?", history=history)
    assert sources(result)[0] == "faq/chatbot.md"


def test_a_follow_up_costs_one_model_run_and_reuses_the_previous_question(knowledge_base, monkeypatch):
    embedder = get_embedder()
    calls: list[list[str]] = []
    batch, single = embedder.embed_documents, embedder.embed_query

    def recording_batch(texts: list[str]) -> Vectors:
        calls.append(list(texts))
        return batch(texts)

    def recording_single(text: str) -> Vectors:
        calls.append([text])
        return single(text)

    monkeypatch.setattr(embedder, "embed_documents", recording_batch)
    monkeypatch.setattr(embedder, "embed_query", recording_single)
    history = [Turn(role="user", content="I forgot my password, how do I get back in?")]
    retrieve(query="how long is the link valid?", history=history)
    # Nothing cached yet: the question and the previous one share a single model run.
    assert calls == [["how long is the link valid?", "I forgot my password, how do I get back in?"]]
    calls.clear()
    retrieve(query="and can I ask for another one?", history=history)
    # The previous question's vector comes from the cache: only the new question is embedded.
    assert calls == [["and can I ask for another one?"]]
