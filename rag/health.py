"""Health checks for the knowledge base: the vector store answers and holds one vector per chunk;
the providers are built. Counts are global, all workspaces together: health is public to
operators and names no workspace (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from rag.models import Chunk
from rag.providers.factory import get_embedder, get_generator, get_vector_store
from rag.versioning import KNOWLEDGE_BASE_VERSION, knowledge_base_state
from utils.health import DEGRADED


def check_vector_store() -> dict[str, Any]:
    """Vectors against chunks: a difference means searches miss documents (or find deleted ones)."""
    # Count what the database says now, not what this process looked at up to a second ago.
    KNOWLEDGE_BASE_VERSION.expire()
    store = get_vector_store()
    vectors = store.count()
    chunks = Chunk.objects.count()
    details: dict[str, Any] = {
        "backend": store.name,
        "vectors": vectors,
        "chunks": chunks,
        "version": knowledge_base_state()["version"],
    }
    if vectors != chunks:
        details[DEGRADED] = (
            f"The vector store holds {vectors} vectors for {chunks} chunks: run `manage.py reindex` to rebuild "
            "it from the database (right after a write to Pinecone, whose counts lag by a few seconds, wait first)."
        )
    return details


def check_embedder() -> dict[str, Any]:
    embedder = get_embedder()
    return {"backend": embedder.name, "dimension": embedder.dimension}


def check_generator() -> dict[str, Any]:
    generator = get_generator()
    return {"backend": generator.name, "model": generator.model}
