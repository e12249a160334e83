"""A server worker loads the local model and indexes before its first request, and calls no
remote provider to do so."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from rag.providers.factory import reset_providers
from rag.services import retrieval
from rag.services.retrieval import lexical_index, warm_up


def test_warm_up_loads_the_model_and_both_indexes(knowledge_base):
    reset_providers()
    lexical_index.reset()
    warm_up()
    # Nothing is left to load: the first search reads only the winning chunks from the database,
    # besides the knowledge base's version (read on every search inside a test's transaction).
    with CaptureQueriesContext(connection) as queries:
        found = retrieval.retrieve(query="how do I reset my password", use_cache=False)
    assert found.documents
    tables = [re.findall(r'FROM "(\w+)"', query["sql"]) for query in queries.captured_queries]
    assert [t for t in tables if t != ["rag_knowledgebasestate"]] == [["rag_chunk"]], tables


def test_warm_up_calls_no_remote_provider(settings, fake_mistral, fake_pinecone, db):
    settings.RAG_EMBEDDER, settings.RAG_VECTOR_STORE, settings.RAG_GENERATOR = "mistral", "pinecone", "mistral"
    settings.MISTRAL_API_KEY, settings.MISTRAL_SERVER_URL = "test-key", fake_mistral.url
    settings.PINECONE_API_KEY, settings.PINECONE_HOST = "pc-test-key", fake_pinecone.url
    reset_providers()
    warm_up()
    assert fake_mistral.requests == [] and fake_pinecone.requests == []
