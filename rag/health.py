"""Health checks for the knowledge base: the vector store answers and holds one vector per chunk,
every document has its centroid; the providers are built. Counts are global, all workspaces
together: health is public to operators and names no workspace (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from rag.models import Chunk, Document
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
    # Documents without a centroid of this embedder (ingested before centroids existed): until
    # they have one, retrieval ranks every document by its chunks alone (rag.services.retrieval).
    uncentred = (
        Document.objects.filter(chunks__isnull=False).exclude(centroid_model=get_embedder().name).distinct().count()
    )
    details["documents_without_centroid"] = uncentred
    hints = []
    if vectors != chunks:
        hints.append(
            f"The vector store holds {vectors} vectors for {chunks} chunks: run `manage.py reindex` to rebuild "
            "it from the database (right after a write to Pinecone, whose counts lag by a few seconds, wait first)."
        )
    if uncentred:
        hints.append(
            f"{uncentred} documents have no centroid, so documents are ranked by their chunks alone: run "
            "`manage.py reindex` to compute them."
        )
    if hints:
        details[DEGRADED] = " ".join(hints)
    return details


def check_embedder() -> dict[str, Any]:
    embedder = get_embedder()
    return {"backend": embedder.name, "dimension": embedder.dimension}


def check_generator() -> dict[str, Any]:
    generator = get_generator()
    return {"backend": generator.name, "model": generator.model}
