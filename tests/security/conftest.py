"""Fixtures of the security suite: a hostile corpus beside the normal knowledge base, and a
Mistral generator pointed at the fake server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.models import Document
from rag.providers.factory import reset_providers
from tests.fakes import FakeMistral

HOSTILE_DIR = Path(__file__).resolve().parent / "hostile_docs"
CANARY = "CANARY-7f3a9"
MISTRAL_TEST_KEY = "sk-mistral-test-5e1d0c9b7a"


@pytest.fixture
def hostile_corpus(knowledge_base: list[Document]) -> dict[str, Document]:
    """The hostile documents, ingested through the real file pipeline beside the normal ones."""
    from rag.files import file_to_input
    from rag.services.ingestion import document_ingest

    return {
        path.stem: document_ingest(item=file_to_input(path, HOSTILE_DIR)).document
        for path in sorted(HOSTILE_DIR.glob("*.md"))
    }


@pytest.fixture
def mistral_generator(settings: Any, fake_mistral: FakeMistral) -> FakeMistral:
    """Answers come from Mistral chat (the fake); embeddings and search stay local."""
    settings.RAG_GENERATOR = "mistral"
    settings.MISTRAL_API_KEY = MISTRAL_TEST_KEY
    settings.MISTRAL_SERVER_URL = fake_mistral.url
    # Generous: nothing waits on purpose, and a loaded machine must not turn a test into a degraded answer.
    settings.RAG_TIMEOUT_S, settings.RAG_REQUEST_TIMEOUT_S = 10.0, 10.0
    reset_providers()
    return fake_mistral
