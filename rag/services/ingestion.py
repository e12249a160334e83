"""Ingestion: text in, chunks in the database, vectors in the active store.

Unchanged content (same hash) is skipped; changed content replaces its chunks and vectors; a
deleted document leaves no vector behind. Documents are written in batches: one embedding call,
one transaction and one vector-store write per batch. Embedding happens before the database
transaction so that a slow provider never holds a write lock; the vector write happens inside it
so that a failed upsert rolls the database back too.

Workspaces: a document belongs to one workspace (or to the shared base) for its whole life; its
vectors carry that workspace, and a ``source`` names one document per workspace, so the same file
ingested into two workspaces makes two documents that never meet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from rag.ingestion.chunking import content_hash, split_into_chunks
from rag.ingestion.limits import chunk_count_check, text_size_check
from rag.ingestion.sanitize import strip_markup, strip_markup_line
from rag.ingestion.units import chunk_units
from rag.models import Chunk, Document
from rag.providers.factory import get_embedder, get_passage_embedder, get_vector_store
from rag.providers.local_embedder import Span, count_tokens
from rag.services.retrieval import knowledge_base_changed
from utils.exceptions import NotFound, ServiceError

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of chunks just processed


@dataclass(frozen=True)
class DocumentInput:
    title: str
    content: str
    category: str = Document.Category.OTHER
    source: str = ""
    metadata: dict[str, Any] | None = None
    # The owning workspace of a new document (None: the shared base). An existing document keeps
    # its own: documents never move between workspaces (their vectors would have to follow).
    workspace_id: int | None = None


@dataclass(frozen=True)
class IngestResult:
    document: Document
    status: str  # "created", "updated" or "unchanged"
    chunks: int


# Chunks embedded and written to the vector store together: one model batch, one database
# transaction and one index save per batch, so ingestion costs grow linearly with the corpus.
BATCH_CHUNKS = 512


@dataclass
class _Planned:
    """A document to (re)write: its input, the row it replaces, and its chunk texts."""

    item: DocumentInput
    existing: Document | None
    digest: str
    texts: list[str]


def _vector_metadata(document: Document, chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    return [
        {
            "document_id": document.pk,
            "chunk_index": c.index,
            "category": document.category,
            "workspace_id": document.workspace_id,
        }
        for c in chunks
    ]


def _find_existing(item: DocumentInput, document: Document | None) -> Document | None:
    if document is not None:
        return document
    if item.source:
        # Sources are unique per workspace: another workspace's file of that name is not this one.
        same_place = Q(workspace_id=item.workspace_id) if item.workspace_id is not None else Q(workspace__isnull=True)
        return Document.objects.filter(same_place, source=item.source).first()
    return None


def _delete_vectors(store: Any, ids_by_workspace: dict[int | None, list[int]]) -> None:
    """Remove chunk vectors, each from its own workspace's part of the store."""
    for workspace_id, ids in ids_by_workspace.items():
        if ids:
            store.delete(ids, workspace_id=workspace_id)


def _lock_still_there(document: Document) -> None:
    """Lock the document's row for this transaction, or raise ``NotFound`` if it was deleted meanwhile."""
    if not Document.objects.select_for_update().filter(pk=document.pk).exists():
        raise NotFound("Document not found.")


def chunk_document(*, title: str, content: str) -> list[str]:
    """The chunk texts of a document, sized for the local embedder's window whichever is used."""
    return split_into_chunks(title=title, text=content, count_tokens=count_tokens)


def _plan(item: DocumentInput, document: Document | None, *, force: bool = False) -> _Planned | IngestResult:
    """What writing ``item`` takes, or the result at once if its text and category are unchanged
    (unless ``force``: split and embed again all the same)."""
    item = replace(item, title=strip_markup_line(item.title), content=strip_markup(item.content))  # no markup kept
    existing = _find_existing(item, document)
    digest = content_hash(item.title, item.content)
    unchanged = existing is not None and existing.content_hash == digest and existing.category == item.category
    if unchanged and existing is not None and not force:
        # Same text, same category: nothing to re-embed (the vectors' metadata is unchanged).
        with transaction.atomic():
            _lock_still_there(existing)
            existing.metadata = item.metadata if item.metadata is not None else existing.metadata
            existing.source = item.source or existing.source
            existing.save(update_fields=["metadata", "source", "updated_at"])
        return IngestResult(existing, "unchanged", existing.chunks.count())
    text_size_check(item.content)  # before chunking and embedding: both grow with the text
    texts = chunk_document(title=item.title, content=item.content)
    chunk_count_check(len(texts))
    return _Planned(item, existing, digest, texts)


def _unit_spans(text: str) -> tuple[list[list[Span]], list[str]]:
    """Where each quotable unit of a chunk stands in its text (its section's name in the heading
    line, then the unit), and the text to embed it from when it lies beyond the model's window."""
    spans: list[list[Span]] = []
    fallbacks: list[str] = []
    heading_end = max(text.find("\n"), 0)
    previous: list[Span] = []
    for unit in chunk_units(text):
        # Units come in reading order, but a table's rows lie inside the table unit before them:
        # search from the previous unit's start, past any unit already placed there.
        start = text.find(unit.quote, previous[0][0] if previous else heading_end)
        while start >= 0 and (start, start + len(unit.quote)) in previous:
            start = text.find(unit.quote, start + 1)
        quote = (start, start + len(unit.quote)) if start >= 0 else (0, 0)  # (0, 0): no tokens, the fallback
        # Its section's name too, as a unit embedded alone reads "{section}: {unit}".
        section = text.rfind(unit.section, 0, heading_end) if unit.section else -1
        pieces = [(section, section + len(unit.section))] if section >= 0 else []
        spans.append([*pieces, quote] if start >= 0 else [quote])
        previous = [quote]
        fallbacks.append(unit.embed_text)
    return spans, fallbacks


def centroid_of(vectors: Any) -> bytes | None:
    """The unit-length mean of a document's chunk vectors, as float32 bytes (``Document.centroid``)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or not len(matrix):
        return None
    mean = matrix.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32).tobytes() if norm else None


def _pack(matrices: Sequence[Any]) -> list[bytes]:
    """Each chunk's unit vectors as float16 bytes (``Chunk.unit_vectors``)."""
    return [np.ascontiguousarray(matrix, dtype=np.float16).tobytes() for matrix in matrices]


def _embed_with_units(embedder: Any, texts: Sequence[str]) -> tuple[Any, list[bytes]]:
    """Chunk vectors and, from the same model run, each chunk's unit vectors (pooled over the unit's
    tokens in the chunk: no second run over the units' text)."""
    located = [_unit_spans(text) for text in texts]
    vectors, units = embedder.embed_with_spans(
        texts, [spans for spans, _ in located], [fallbacks for _, fallbacks in located]
    )
    return vectors, _pack(units)


def unit_vectors(texts: Sequence[str]) -> list[bytes]:
    """For each chunk text, the float16 embeddings of its quotable units (the extractive answerer's)."""
    if not texts:
        return []
    return _embed_with_units(get_passage_embedder(), texts)[1]


def _embed(texts: list[str]) -> tuple[Any, list[bytes]]:
    """Chunk vectors (the retrieval embedder) and unit vectors (the local model) for ``texts``."""
    embedder = get_embedder()
    if not texts:
        return None, []
    if get_passage_embedder() is not embedder:
        return embedder.embed_documents(texts), unit_vectors(texts)
    return _embed_with_units(embedder, texts)


def _write_batch(batch: list[_Planned]) -> list[IngestResult]:
    """Embed every chunk of ``batch`` in one call, then write rows and vectors in one transaction.

    A document another process created with one of the batch's sources after it was planned (two
    ingests of one folder at once, an upload racing the command line) is written over, as if it
    had existed when planned: last writer wins, as for any update, instead of the batch failing on
    the source's unique constraint.
    """
    texts = [text for planned in batch for text in planned.texts]
    embedder = get_embedder()
    vectors, units = _embed(texts)
    store = get_vector_store()
    store.ensure_compatible(embedder_name=embedder.name, dimension=embedder.dimension)
    try:
        return _write_rows(batch, vectors, units, store, embedder.name)
    except IntegrityError:
        raced = [_with_raced_document(planned) for planned in batch]
        if raced == batch:
            raise  # not a source another writer took
        logger.info("A concurrent ingestion created some of these documents first: writing over them")
        return _write_rows(raced, vectors, units, store, embedder.name)


def _with_raced_document(planned: _Planned) -> _Planned:
    """``planned`` as an update of the document another writer created with its source meanwhile."""
    if planned.existing is not None or not planned.item.source:
        return planned
    existing = _find_existing(planned.item, None)
    return planned if existing is None else replace(planned, existing=existing)


def _write_rows(batch: list[_Planned], vectors: Any, units: list[Any], store: Any, model: str) -> list[IngestResult]:
    """Write ``batch``'s rows and vectors (embedded already) in one transaction."""
    results: list[IngestResult] = []
    old_ids: dict[int | None, list[int]] = {}
    new_chunks: list[Chunk] = []
    metadata: list[dict[str, Any]] = []
    with transaction.atomic():
        for planned in batch:
            if planned.existing is not None:
                _lock_still_there(planned.existing)  # a delete that won the race is not undone by this update
            doc = planned.existing or Document(workspace_id=planned.item.workspace_id)
            if doc.pk:
                old_ids.setdefault(doc.workspace_id, []).extend(doc.chunks.values_list("id", flat=True))
            item = planned.item
            doc.title, doc.content, doc.category = item.title, item.content, item.category
            doc.source, doc.metadata, doc.content_hash = item.source, item.metadata or {}, planned.digest
            first = len(new_chunks)
            doc.centroid = centroid_of(vectors[first : first + len(planned.texts)]) if vectors is not None else None
            doc.centroid_model = model if doc.centroid is not None else ""
            doc.save()
            chunks = [
                Chunk(document=doc, index=i, text=t, unit_vectors=units[len(new_chunks) + i])
                for i, t in enumerate(planned.texts)
            ]
            new_chunks.extend(chunks)
            metadata.extend(_vector_metadata(doc, chunks))
            status = "updated" if planned.existing is not None else "created"
            results.append(IngestResult(doc, status, len(chunks)))
        if old_ids:
            Chunk.objects.filter(id__in=[i for ids in old_ids.values() for i in ids]).delete()
            _delete_vectors(store, old_ids)
        created = Chunk.objects.bulk_create(new_chunks)
        if vectors is not None:
            store.upsert([c.pk for c in created], vectors, metadata)
        knowledge_base_changed()
    logger.debug("Wrote %d documents, %d chunks", len(batch), len(created))
    return results


def document_ingest(*, item: DocumentInput, document: Document | None = None) -> IngestResult:
    """Create or update one document (matched by ``document`` or by ``source``) and index it."""
    planned = _plan(item, document)
    if isinstance(planned, IngestResult):
        return planned
    return _write_batch([planned])[0]


def documents_ingest(
    *,
    items: Iterable[DocumentInput],
    progress: Progress | None = None,
    batch_chunks: int = BATCH_CHUNKS,
    on_error: Callable[[DocumentInput, ServiceError], None] | None = None,
) -> list[IngestResult]:
    """Ingest many documents, embedding and writing them in batches of about ``batch_chunks``.

    A document refused before it is embedded (too large, too many chunks) raises its
    ``ServiceError``, or, given ``on_error``, is reported to it and skipped: a folder ingested from
    the command line keeps its other files (the API's bulk upload is all or none).
    """
    results: list[IngestResult] = []
    batch: list[_Planned] = []
    sources: set[tuple[int | None, str]] = set()

    def flush() -> None:
        written = _write_batch(batch)
        results.extend(written)
        if progress is not None:
            progress(sum(r.chunks for r in written))
        batch.clear()
        sources.clear()

    for item in items:
        if item.source and (item.workspace_id, item.source) in sources:
            flush()  # the same file twice: the second sees the first as existing
        try:
            planned = _plan(item, None)
        except ServiceError as exc:
            if on_error is None:
                raise
            on_error(item, exc)
            continue
        if isinstance(planned, IngestResult):
            results.append(planned)
            continue
        batch.append(planned)
        sources.add((item.workspace_id, item.source))
        if sum(len(p.texts) for p in batch) >= batch_chunks:
            flush()
    if batch:
        flush()
    return results


def documents_rechunk(*, progress: Progress | None = None, batch_chunks: int = BATCH_CHUNKS) -> int:
    """Split every stored document again with today's chunker and embed it (``reindex --rechunk``).

    Ingestion skips a document whose text is unchanged, so chunks made by an older chunker stay
    until this runs. Returns the number of chunks written.
    """
    written = 0
    batch: list[_Planned] = []

    def flush() -> None:
        nonlocal written
        chunks = sum(result.chunks for result in _write_batch(batch))
        written += chunks
        if progress is not None:
            progress(chunks)
        batch.clear()

    for pk in list(Document.objects.order_by("id").values_list("id", flat=True)):
        document = Document.objects.filter(pk=pk).first()
        if document is None:
            continue  # deleted meanwhile
        item = DocumentInput(
            title=document.title,
            content=document.content,
            category=document.category,
            source=document.source,
            metadata=document.metadata,
            workspace_id=document.workspace_id,
        )
        planned = _plan(item, document, force=True)
        if isinstance(planned, _Planned):
            batch.append(planned)
        if sum(len(p.texts) for p in batch) >= batch_chunks:
            flush()
    if batch:
        flush()
    return written


def document_delete(*, document: Document) -> None:
    """Remove the document and its vectors; if the vector store refuses, nothing is deleted."""
    store = get_vector_store()
    with transaction.atomic():
        ids = list(document.chunks.values_list("id", flat=True))
        workspace_id = document.workspace_id
        document.delete()
        _delete_vectors(store, {workspace_id: ids})
        knowledge_base_changed()
    logger.info("Document deleted with %d chunks", len(ids))


@dataclass(frozen=True)
class Erased:
    """What an erasure removed: rows of the knowledge base and vectors in the store."""

    documents: int = 0
    chunks: int = 0
    vectors: int = 0


def documents_delete(*, documents: QuerySet[Document], batch_size: int = 500) -> Erased:
    """Remove ``documents``, their chunks and every vector of those chunks (workspace or account
    erasure). Vectors go first, then the rows, batch by batch: if the store refuses, the batch's
    rows stay and the erasure can be run again; a vector never outlives its row unnoticed."""
    store = get_vector_store()
    document_ids = list(documents.order_by().values_list("id", flat=True))
    erased = Erased()
    for start in range(0, len(document_ids), batch_size):
        batch = document_ids[start : start + batch_size]
        by_workspace: dict[int | None, list[int]] = {}
        for chunk_id, workspace_id in Chunk.objects.filter(document_id__in=batch).values_list(
            "id", "document__workspace_id"
        ):
            by_workspace.setdefault(workspace_id, []).append(chunk_id)
        chunk_ids = [i for ids in by_workspace.values() for i in ids]
        _delete_vectors(store, by_workspace)
        with transaction.atomic():
            Chunk.objects.filter(document_id__in=batch).delete()
            documents_gone = Document.objects.filter(id__in=batch).delete()[1].get(Document._meta.label, 0)
        erased = Erased(
            documents=erased.documents + documents_gone,
            chunks=erased.chunks + len(chunk_ids),
            vectors=erased.vectors + len(chunk_ids),
        )
    if document_ids:
        knowledge_base_changed()
    logger.info("Erased %d document(s) with %d chunk(s)", erased.documents, erased.chunks)
    return erased


def index_rebuild(*, batch_size: int = 256, progress: Progress | None = None) -> int:
    """Rebuild the active vector store from the database (``manage.py reindex``)."""
    embedder = get_embedder()
    store = get_vector_store()
    store.reset(embedder_name=embedder.name, dimension=embedder.dimension)
    total = 0
    sums: dict[int, Any] = {}  # document id: the sum of its chunk vectors (its direction is the centroid's)
    queryset = Chunk.objects.select_related("document").order_by("id")
    batch: list[Chunk] = []
    for chunk in queryset.iterator(chunk_size=batch_size):
        batch.append(chunk)
        if len(batch) >= batch_size:
            total += _index_batch(batch, embedder, store, progress, sums)
            batch = []
    if batch:
        total += _index_batch(batch, embedder, store, progress, sums)
    write_centroids(sums, embedder.name)
    knowledge_base_changed()
    return total


def write_centroids(sums: dict[int, Any], model: str) -> None:
    """Store each document's centroid from the sums of its chunk vectors (``model``'s). Like the
    rest of ``reindex``, this expects no ingestion meanwhile: a document replaced during the rebuild
    would keep the centroid of its old chunks until it is ingested again."""
    documents = []
    for document_id, total in sums.items():
        centroid = centroid_of(np.asarray(total, dtype=np.float32)[None, :])
        documents.append(Document(pk=document_id, centroid=centroid, centroid_model=model if centroid else ""))
    Document.objects.bulk_update(documents, ["centroid", "centroid_model"], batch_size=500)


def _index_batch(batch: list[Chunk], embedder: Any, store: Any, progress: Progress | None, sums: dict[int, Any]) -> int:
    vectors = embedder.embed_documents([c.text for c in batch])
    for chunk, vector in zip(batch, np.asarray(vectors, dtype=np.float32), strict=True):
        sums[chunk.document_id] = sums.get(chunk.document_id, 0.0) + vector
    missing = [c for c in batch if c.unit_vectors is None]
    if missing:  # chunks ingested before unit vectors existed
        for chunk, packed in zip(missing, unit_vectors([c.text for c in missing]), strict=True):
            chunk.unit_vectors = packed
        Chunk.objects.bulk_update(missing, ["unit_vectors"])
    metadata = [
        {
            "document_id": c.document_id,
            "chunk_index": c.index,
            "category": c.document.category,
            "workspace_id": c.document.workspace_id,
        }
        for c in batch
    ]
    store.upsert([c.pk for c in batch], vectors, metadata)
    if progress is not None:
        progress(len(batch))
    return len(batch)
