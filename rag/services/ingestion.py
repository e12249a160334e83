"""Ingestion: text in, chunks in the database, vectors in the active store.

Unchanged content (same hash) is skipped; changed content replaces its chunks and vectors; a
deleted document leaves no vector behind. Embedding happens before the database transaction so
that a slow provider never holds a write lock; the vector write happens inside it so that a
failed upsert rolls the database back too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from rag.ingestion.chunking import content_hash, split_into_chunks
from rag.ingestion.limits import chunk_count_check, text_size_check
from rag.models import Chunk, Document
from rag.providers.factory import get_embedder, get_vector_store
from rag.services.retrieval import knowledge_base_changed
from utils.exceptions import NotFound

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of chunks just processed


@dataclass(frozen=True)
class DocumentInput:
    title: str
    content: str
    category: str = Document.Category.OTHER
    source: str = ""
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class IngestResult:
    document: Document
    status: str  # "created", "updated" or "unchanged"
    chunks: int


def _vector_metadata(document: Document, chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    return [{"document_id": document.pk, "chunk_index": c.index, "category": document.category} for c in chunks]


def _find_existing(item: DocumentInput, document: Document | None) -> Document | None:
    if document is not None:
        return document
    if item.source:
        return Document.objects.filter(source=item.source).first()
    return None


def _lock_still_there(document: Document) -> None:
    """Lock the document's row for this transaction, or raise ``NotFound`` if it was deleted meanwhile."""
    if not Document.objects.select_for_update().filter(pk=document.pk).exists():
        raise NotFound("Document not found.")


def document_ingest(*, item: DocumentInput, document: Document | None = None) -> IngestResult:
    """Create or update one document (matched by ``document`` or by ``source``) and index it."""
    existing = _find_existing(item, document)
    digest = content_hash(item.title, item.content)
    if existing is not None and existing.content_hash == digest and existing.category == item.category:
        # Same text, same category: nothing to re-embed (the vectors' metadata is unchanged).
        with transaction.atomic():
            _lock_still_there(existing)
            existing.metadata = item.metadata if item.metadata is not None else existing.metadata
            existing.source = item.source or existing.source
            existing.save(update_fields=["metadata", "source", "updated_at"])
        return IngestResult(existing, "unchanged", existing.chunks.count())
    text_size_check(item.content)  # before chunking and embedding: both grow with the text
    texts = split_into_chunks(title=item.title, text=item.content)
    chunk_count_check(len(texts))
    embedder = get_embedder()
    vectors = embedder.embed_documents(texts) if texts else None
    store = get_vector_store()
    store.ensure_compatible(embedder_name=embedder.name, dimension=embedder.dimension)
    with transaction.atomic():
        if existing is not None:
            _lock_still_there(existing)  # a delete that won the race is not undone by this update
        doc = existing or Document()
        old_ids = list(doc.chunks.values_list("id", flat=True)) if doc.pk else []
        doc.title, doc.content, doc.category = item.title, item.content, item.category
        doc.source, doc.metadata, doc.content_hash = item.source, item.metadata or {}, digest
        doc.save()
        if old_ids:
            Chunk.objects.filter(id__in=old_ids).delete()
            store.delete(old_ids)
        chunks = Chunk.objects.bulk_create([Chunk(document=doc, index=i, text=t) for i, t in enumerate(texts)])
        if vectors is not None:
            store.upsert([c.pk for c in chunks], vectors, _vector_metadata(doc, chunks))
        knowledge_base_changed()
    status = "updated" if existing is not None else "created"
    logger.debug("Document %s %s: %d chunks", doc.pk, status, len(chunks))
    return IngestResult(doc, status, len(chunks))


def documents_ingest(*, items: Iterable[DocumentInput], progress: Progress | None = None) -> list[IngestResult]:
    results = []
    for item in items:
        result = document_ingest(item=item)
        results.append(result)
        if progress is not None:
            progress(result.chunks)
    return results


def document_delete(*, document: Document) -> None:
    """Remove the document and its vectors; if the vector store refuses, nothing is deleted."""
    store = get_vector_store()
    with transaction.atomic():
        ids = list(document.chunks.values_list("id", flat=True))
        document.delete()
        if ids:
            store.delete(ids)
        knowledge_base_changed()
    logger.info("Document deleted with %d chunks", len(ids))


def index_rebuild(*, batch_size: int = 256, progress: Progress | None = None) -> int:
    """Rebuild the active vector store from the database (``manage.py reindex``)."""
    embedder = get_embedder()
    store = get_vector_store()
    store.reset(embedder_name=embedder.name, dimension=embedder.dimension)
    total = 0
    queryset = Chunk.objects.select_related("document").order_by("id")
    batch: list[Chunk] = []
    for chunk in queryset.iterator(chunk_size=batch_size):
        batch.append(chunk)
        if len(batch) >= batch_size:
            total += _index_batch(batch, embedder, store, progress)
            batch = []
    if batch:
        total += _index_batch(batch, embedder, store, progress)
    knowledge_base_changed()
    return total


def _index_batch(batch: list[Chunk], embedder: Any, store: Any, progress: Progress | None) -> int:
    vectors = embedder.embed_documents([c.text for c in batch])
    metadata = [{"document_id": c.document_id, "chunk_index": c.index, "category": c.document.category} for c in batch]
    store.upsert([c.pk for c in batch], vectors, metadata)
    if progress is not None:
        progress(len(batch))
    return len(batch)
