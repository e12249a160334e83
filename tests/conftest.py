"""Shared fixtures: users, an authenticated API client, fast hashing, a clean cache per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from rag.providers.factory import reset_providers
from rag.services.retrieval import lexical_index
from tests.factories import UserFactory
from tests.fakes.fixtures import fake_mistral, fake_pinecone  # noqa: F401 (fixtures)
from users.models import User
from users.services import tokens_for


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: Any) -> Iterator[None]:
    # PBKDF2 at Django's default cost would dominate the suite's run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # throttles and caches start empty, on fakeredis and on a real Redis alike
    yield
    cache.clear()


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def staff_user(db: None) -> User:
    return UserFactory.create(is_staff=True)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user).access}")
        return client

    return make


@pytest.fixture
def api_client(user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(user)


@pytest.fixture
def staff_client(staff_user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(staff_user)


# --- knowledge base ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _offline_providers(settings: Any, tmp_path: Any) -> Iterator[None]:
    """Every test starts on the embedded providers with an empty FAISS index of its own."""
    settings.VECTOR_INDEX_DIR = tmp_path / "index"
    settings.RAG_EMBEDDER, settings.RAG_VECTOR_STORE, settings.RAG_GENERATOR = "local", "faiss", "extractive"
    reset_providers()
    lexical_index.reset()
    yield
    reset_providers()
    lexical_index.reset()


KB_DOCUMENTS = [
    (
        "Reset a forgotten password",
        "Guide",
        "guides/reset.md",
        "If you forgot your password, ask for a reset email at POST /api/auth/password/reset/ with your "
        "email address. The email carries a single-use token. The reset link is valid for one hour. "
        "Send the token with your new password to /api/auth/password/reset/confirm/ to finish.",
    ),
    (
        "Verify your email address",
        "Guide",
        "guides/verify.md",
        "After registering you receive a verification email. Open the link it contains to verify your "
        "address. The verification link expires after 24 hours and works only once. You can ask for a "
        "new link at /api/auth/resend-verification/.",
    ),
    (
        "What is an AI chatbot?",
        "FAQ",
        "faq/chatbot.md",
        "An AI chatbot is a program that answers questions in natural language. This chatbot uses "
        "retrieval-augmented generation: it searches the help centre for relevant documents and writes "
        "an answer that cites them.",
    ),
    (
        "Data retention",
        "Policy",
        "policies/retention.md",
        "Chat messages are kept for 30 days and then deleted by a nightly job. Sessions left empty are "
        "removed too. Backups are taken every Sunday and the newest eight are kept.",
    ),
    (
        "Rate limits",
        "Policy",
        "policies/limits.md",
        "Login is limited to five attempts per minute for each client. Sending chat messages is limited "
        "to thirty per minute per user, and each user may send 500 messages per day. Limited requests "
        "get HTTP 429 with a Retry-After header.",
    ),
]


@pytest.fixture
def knowledge_base(db: None) -> list[Any]:
    """A small knowledge base, ingested through the real pipeline (local embedder, FAISS)."""
    from rag.services.ingestion import DocumentInput, document_ingest

    return [
        document_ingest(item=DocumentInput(title=t, category=c, source=s, content=body)).document
        for t, c, s, body in KB_DOCUMENTS
    ]


@pytest.fixture(autouse=True)
def _account_mail_inline(settings: Any) -> None:
    """Account mail is sent inline so tests can read ``mail.outbox`` at once; the background
    outbox (production's default) has tests of its own in security/test_account_mail_timing.py."""
    settings.EMAIL_SEND_IN_BACKGROUND = False
