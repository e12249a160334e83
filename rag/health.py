"""Health checks for the knowledge base: the vector store answers; the providers are built."""

from __future__ import annotations

from typing import Any

from rag.providers.factory import get_embedder, get_generator, get_vector_store


def check_vector_store() -> dict[str, Any]:
    store = get_vector_store()
    return {"backend": store.name, "vectors": store.count()}


def check_embedder() -> dict[str, Any]:
    embedder = get_embedder()
    return {"backend": embedder.name, "dimension": embedder.dimension}


def check_generator() -> dict[str, Any]:
    generator = get_generator()
    return {"backend": generator.name, "model": generator.model}
