"""The one place that knows which providers are configured (``settings.RAG_*``).

Each provider is built once per process on first use, wrapped so that its calls are timed and
its failures counted (``rag.providers.instrumented``). Nothing outside this module asks which
implementation is active. A change of one of their settings (``override_settings``, pytest-django's
``settings``) forgets the built providers, as DRF's ``api_settings`` reloads on ``setting_changed``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed

from rag.providers.base import Embedder, Generator, VectorStore
from rag.providers.instrumented import (
    InstrumentedEmbedder,
    InstrumentedGenerator,
    InstrumentedVectorStore,
    instrumented,
)
from rag.versioning import KNOWLEDGE_BASE_VERSION, database_fingerprint

_lock = threading.Lock()
LOCAL_EMBEDDERS = ("local", "local-fast")


@lru_cache(maxsize=1)
@instrumented(InstrumentedEmbedder)
def _embedder() -> Embedder:
    if settings.RAG_EMBEDDER == "mistral":
        from rag.providers.mistral import MistralEmbedder

        return MistralEmbedder(
            api_key=settings.MISTRAL_API_KEY,
            server_url=settings.MISTRAL_SERVER_URL or None,
            timeout_s=settings.RAG_REQUEST_TIMEOUT_S,
            budget_s=settings.RAG_TIMEOUT_S,
            batch_size=settings.EMBED_BATCH_SIZE,
            model=settings.MISTRAL_EMBED_MODEL,
        )
    from rag.providers.local_embedder import LocalEmbedder

    return LocalEmbedder(threads=settings.LOCAL_EMBEDDER_THREADS or None, fast=settings.RAG_EMBEDDER == "local-fast")


@lru_cache(maxsize=1)
@instrumented(InstrumentedVectorStore)
def _vector_store() -> VectorStore:
    if settings.RAG_VECTOR_STORE == "pinecone":
        from rag.providers.pinecone_store import PineconeVectorStore

        return PineconeVectorStore(
            api_key=settings.PINECONE_API_KEY,
            index_name=settings.PINECONE_INDEX_NAME,
            host=settings.PINECONE_HOST or None,
            namespace=settings.PINECONE_NAMESPACE,
            timeout_s=settings.RAG_REQUEST_TIMEOUT_S,
            budget_s=settings.RAG_TIMEOUT_S,
            database=database_fingerprint,
        )
    from rag.providers.faiss_store import FaissVectorStore

    # One query at a time per request thread: OpenMP's thread team costs more to wake than an
    # exact search over 10k vectors takes (measured 24 ms with 2 threads, 1 ms with 1).
    # The version in the database tells every process when to reload; the index must have been
    # built from this database, by the configured embedder, or it is refused.
    return FaissVectorStore(
        settings.VECTOR_INDEX_DIR,
        version_board=KNOWLEDGE_BASE_VERSION,
        search_threads=settings.FAISS_THREADS,
        database=database_fingerprint,
        embedder=_configured_embedder,
    )


def _configured_embedder() -> tuple[str, int]:
    embedder = get_embedder()
    return embedder.name, embedder.dimension


@lru_cache(maxsize=1)
@instrumented(InstrumentedGenerator)
def _generator() -> Generator:
    if settings.RAG_GENERATOR == "mistral":
        from rag.providers.mistral import MistralGenerator

        return MistralGenerator(
            api_key=settings.MISTRAL_API_KEY,
            model=settings.MISTRAL_CHAT_MODEL,
            server_url=settings.MISTRAL_SERVER_URL or None,
            timeout_s=settings.RAG_REQUEST_TIMEOUT_S,
            budget_s=settings.RAG_TIMEOUT_S,
        )
    if settings.RAG_GENERATOR == "openai":
        from rag.providers.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(
            base_url=settings.OPENAI_BASE_URL,
            model=settings.OPENAI_MODEL,
            api_key=settings.OPENAI_API_KEY or None,
            timeout_s=settings.RAG_REQUEST_TIMEOUT_S,
            budget_s=settings.RAG_TIMEOUT_S,
        )
    from rag.providers.extractive import ExtractiveGenerator

    return ExtractiveGenerator()


def get_embedder() -> Embedder:
    with _lock:  # the local model loads once even when two requests arrive together
        return _embedder()


@lru_cache(maxsize=1)
def _passage_embedder() -> Embedder:
    from rag.providers.local_embedder import LocalEmbedder

    # The offline default's int8 model: the answerer's constants were chosen on its vectors, and it
    # embeds twice the chunks per second of the float32 one. Unit vectors stored by the float32
    # model (before this) stay usable: the two agree to a cosine of 0.996 or more.
    return LocalEmbedder(threads=settings.LOCAL_EMBEDDER_THREADS or None, fast=True)


def get_passage_embedder() -> Embedder:
    """The local model, whichever embedder retrieval uses: the extractive answerer compares the
    question with each quotable passage on it (their vectors are stored at ingestion), offline.
    With a remote embedder (Mistral) it is the offline default, ``local-fast``."""
    if settings.RAG_EMBEDDER in LOCAL_EMBEDDERS:
        return get_embedder()
    with _lock:
        return _passage_embedder()


def get_vector_store() -> VectorStore:
    with _lock:
        return _vector_store()


def get_generator() -> Generator:
    with _lock:
        return _generator()


def warm_up() -> None:
    """Build the providers and load what is local (the embedding model, the FAISS index), without
    calling any remote service: a server worker does this before its first request, so that
    request does not pay a second of loading while others queue behind it."""
    embedder, store = get_embedder(), get_vector_store()
    get_generator()
    if settings.RAG_EMBEDDER in LOCAL_EMBEDDERS:
        vector = embedder.embed_query("warm up")
        if settings.RAG_VECTOR_STORE == "faiss":
            store.query(vector, top_k=1)


def reset_providers() -> None:
    """Forget the built providers (tests and settings changes); the next call rebuilds them."""
    with _lock:
        _embedder.cache_clear()
        _vector_store.cache_clear()
        _generator.cache_clear()
        _passage_embedder.cache_clear()


# The settings the providers are built from: a change to one of them forgets the built providers.
PROVIDER_SETTING_PREFIXES = ("RAG_", "MISTRAL_", "PINECONE_", "OPENAI_")
PROVIDER_SETTINGS = frozenset({"VECTOR_INDEX_DIR", "EMBED_BATCH_SIZE", "LOCAL_EMBEDDER_THREADS", "FAISS_THREADS"})


def reload_providers(*, setting: str, **kwargs: object) -> None:
    """``setting_changed`` receiver (connected below, like DRF's ``reload_api_settings``)."""
    if setting in PROVIDER_SETTINGS or setting.startswith(PROVIDER_SETTING_PREFIXES):
        reset_providers()


setting_changed.connect(reload_providers, dispatch_uid="rag.providers.factory.reload_providers")
