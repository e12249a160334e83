"""Ingestion through the real pipeline: chunks in the database, vectors in FAISS, kept in step."""

from __future__ import annotations

import pytest

from rag.models import Chunk, Document
from rag.providers.factory import get_embedder, get_vector_store
from rag.services.ingestion import DocumentInput, document_delete, document_ingest, index_rebuild
from utils.exceptions import IndexMismatch, NotFound, ProviderUnavailable

pytestmark = pytest.mark.django_db

LONG = " ".join(
    f"Paragraph {n} explains how sessions, tokens and history fit together in this product." for n in range(60)
)


def vector_ids() -> set[int]:
    store = get_vector_store()
    query = get_embedder().embed_query("sessions tokens history")
    return {m.id for m in store.query(query, top_k=1000)}


def test_ingest_stores_titled_chunks_and_their_vectors():
    result = document_ingest(item=DocumentInput(title="Sessions", content=LONG, category="Guide", source="s.md"))
    assert result.status == "created" and result.chunks > 1
    chunks = list(Chunk.objects.filter(document=result.document))
    assert all(c.text.startswith("Sessions\n\n") for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert vector_ids() == {c.pk for c in chunks}
    assert get_vector_store().count() == len(chunks)


def test_unchanged_content_is_skipped(monkeypatch):
    item = DocumentInput(title="Sessions", content=LONG, category="Guide", source="s.md")
    first = document_ingest(item=item)
    ids = set(Chunk.objects.values_list("id", flat=True))
    embedder = get_embedder()
    monkeypatch.setattr(embedder, "embed_documents", lambda texts: pytest.fail("re-embedded unchanged content"))
    again = document_ingest(item=item)
    assert again.status == "unchanged" and again.document.pk == first.document.pk
    assert set(Chunk.objects.values_list("id", flat=True)) == ids
    assert Document.objects.count() == 1


def test_changed_content_replaces_chunks_and_vectors():
    first = document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md"))
    old = set(first.document.chunks.values_list("id", flat=True))
    second = document_ingest(
        item=DocumentInput(title="Sessions", content="Short replacement text about tokens.", source="s.md")
    )
    assert second.status == "updated" and second.document.pk == first.document.pk
    new = set(second.document.chunks.values_list("id", flat=True))
    assert new and not (new & old)
    assert vector_ids() == new


def test_category_change_updates_vector_metadata():
    document_ingest(item=DocumentInput(title="Sessions", content=LONG, category="Guide", source="s.md"))
    result = document_ingest(item=DocumentInput(title="Sessions", content=LONG, category="Policy", source="s.md"))
    assert result.status == "updated"
    query = get_embedder().embed_query("sessions")
    matches = get_vector_store().query(query, top_k=5, filter={"category": "Policy"})
    assert matches and all(m.metadata["category"] == "Policy" for m in matches)


def test_delete_leaves_no_vector_behind():
    keep = document_ingest(item=DocumentInput(title="Keep", content="Tokens expire after seven days.", source="k.md"))
    gone = document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md"))
    document_delete(document=gone.document)
    assert not Chunk.objects.filter(document_id=gone.document.pk).exists()
    assert vector_ids() == set(keep.document.chunks.values_list("id", flat=True))


def test_erasing_documents_removes_their_rows_and_every_vector_in_batches():
    from rag.services.ingestion import documents_delete

    keep = document_ingest(item=DocumentInput(title="Keep", content="Tokens expire after seven days.", source="k.md"))
    for n in range(3):
        document_ingest(item=DocumentInput(title=f"Gone {n}", content=LONG, source=f"g{n}.md"))
    gone = Document.objects.exclude(pk=keep.document.pk)
    chunks = Chunk.objects.filter(document__in=gone).count()
    erased = documents_delete(documents=gone, batch_size=2)
    assert (erased.documents, erased.chunks, erased.vectors) == (3, chunks, chunks)
    assert list(Document.objects.values_list("pk", flat=True)) == [keep.document.pk]
    assert vector_ids() == set(keep.document.chunks.values_list("id", flat=True))


def test_failed_vector_write_rolls_the_database_back(monkeypatch):
    store = get_vector_store()

    def refuse(*args, **kwargs):
        raise ProviderUnavailable("vector store down", provider="faiss")

    monkeypatch.setattr(store, "upsert", refuse)
    with pytest.raises(ProviderUnavailable):
        document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md"))
    assert not Document.objects.exists() and not Chunk.objects.exists()


def test_index_built_by_another_embedder_is_refused_naming_reindex():
    get_vector_store().reset(embedder_name="mistral:mistral-embed", dimension=1024)
    with pytest.raises(IndexMismatch) as excinfo:
        document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md"))
    assert "manage.py reindex" in str(excinfo.value)


def test_index_rebuild_restores_every_vector():
    document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md"))
    expected = set(Chunk.objects.values_list("id", flat=True))
    embedder = get_embedder()
    get_vector_store().reset(embedder_name=embedder.name, dimension=embedder.dimension)
    assert get_vector_store().count() == 0
    assert index_rebuild(batch_size=3) == len(expected)
    assert vector_ids() == expected


@pytest.mark.parametrize("content", ["Unchanged body text.", "A changed body text."])
def test_an_update_that_loses_a_race_with_a_delete_is_not_found(content):
    """A PATCH holding a document deleted meanwhile neither fails with a 500 nor re-creates it."""
    item = DocumentInput(title="Raced", content="Unchanged body text.", source="raced.md")
    stale = document_ingest(item=item).document
    Document.objects.filter(pk=stale.pk).delete()  # the concurrent DELETE commits first
    with pytest.raises(NotFound):
        document_ingest(item=DocumentInput(title="Raced", content=content, source="raced.md"), document=stale)
    assert not Document.objects.exists()


def test_a_document_another_writer_created_after_planning_is_written_over(monkeypatch):
    """Two ingests of one folder at once: the one that plans a document as new and then finds its
    source taken (the unique constraint) updates that document instead of failing the batch."""
    from rag.services import ingestion

    theirs = document_ingest(item=DocumentInput(title="Raced", content=LONG, source="raced.md")).document
    find = ingestion._find_existing
    calls = iter([None])  # at planning the other writer has not committed yet
    monkeypatch.setattr(ingestion, "_find_existing", lambda item, document: next(calls, find(item, document)))
    mine = DocumentInput(title="Raced", content="Our own, newer text about sessions and tokens.", source="raced.md")
    result = document_ingest(item=mine)
    assert result.status == "updated" and result.document.pk == theirs.pk
    assert list(Document.objects.values_list("source", "content")) == [("raced.md", mine.content)]
    chunks = set(Chunk.objects.values_list("id", flat=True))
    assert vector_ids() == chunks and get_vector_store().count() == len(chunks)  # the other's vectors are gone


def test_a_unique_violation_that_is_not_a_raced_source_still_raises(monkeypatch):
    from django.db import IntegrityError

    from rag.services import ingestion

    def clash(*args, **kwargs):
        raise IntegrityError("some other constraint")

    monkeypatch.setattr(ingestion.Chunk.objects, "bulk_create", clash)
    with pytest.raises(IntegrityError):
        document_ingest(item=DocumentInput(title="New", content="Fresh text.", source="new.md"))
    assert not Document.objects.exists()


def test_many_documents_are_written_once_per_batch(monkeypatch):
    from rag.providers.faiss_store import FaissVectorStore
    from rag.services.ingestion import documents_ingest

    document_ingest(item=DocumentInput(title="First", content="The store exists before the count.", source="0.md"))
    saves: list[int] = []
    original = FaissVectorStore._save

    def counting_save(self: FaissVectorStore) -> None:
        saves.append(1)
        original(self)

    monkeypatch.setattr(FaissVectorStore, "_save", counting_save)
    items = [
        DocumentInput(title=f"Topic {i}", content=f"Paragraph about topic {i}. " * 20, source=f"{i}.md")
        for i in range(1, 13)
    ]
    results = documents_ingest(items=items, batch_chunks=6)
    assert [(r.status, r.chunks) for r in results] == [("created", 1)] * 12
    # Twelve documents of one chunk each, in batches of six chunks: two index saves, not twelve.
    assert len(saves) == 2
    assert get_vector_store().count() == Chunk.objects.count()
    assert all(c.unit_vectors is not None for c in Chunk.objects.all())


def test_reindex_rechunk_splits_stored_documents_again_with_the_current_chunker():
    from django.core.management import call_command

    from rag.services.ingestion import chunk_document

    content = (
        "# Refunds\n\nRefunds take **14 days**.\n\n## Exceptions\n\nCustom items:\n\n- engraved rings\n- gift cards\n"
    )
    document = document_ingest(item=DocumentInput(title="Refunds", content=content, source="r.md")).document
    expected = chunk_document(title="Refunds", content=content)
    # As an older chunker left it: one chunk with the markup in it, no unit vectors.
    Chunk.objects.filter(document=document).delete()
    Chunk.objects.create(document=document, index=0, text=f"Refunds\n\n{content}")
    call_command("reindex", "--rechunk")
    chunks = list(Chunk.objects.filter(document=document).order_by("index"))
    assert [c.text for c in chunks] == expected and len(expected) == 2
    assert all(c.unit_vectors for c in chunks)
    assert get_vector_store().count() == len(chunks)


def test_one_batch_with_a_source_in_two_workspaces_makes_two_documents():
    from rag.services.ingestion import documents_ingest
    from rag.types import RetrievalScope
    from tests.factories import UserFactory
    from workspaces.services import workspace_create

    first, second = (workspace_create(name=n, owner=UserFactory.create()) for n in ("First", "Second"))
    items = [
        DocumentInput(title="Sessions", content=LONG, source="s.md", workspace_id=first.pk),
        DocumentInput(title="Sessions", content=LONG, source="s.md", workspace_id=second.pk),
        DocumentInput(title="Sessions", content=LONG, source="s.md"),
    ]
    results = documents_ingest(items=items)

    assert [r.status for r in results] == ["created"] * 3
    assert [r.document.workspace_id for r in results] == [first.pk, second.pk, None]
    vector = get_embedder().embed_query("sessions tokens history")
    for result in results:
        scope = RetrievalScope(result.document.workspace_id, include_shared=result.document.workspace_id is None)
        matches = get_vector_store().query(vector, top_k=1000, scope=scope)
        assert {m.metadata["document_id"] for m in matches} == {result.document.pk}
    # Ingested again, each finds its own: nothing is created, nothing crosses.
    assert [r.status for r in documents_ingest(items=items)] == ["unchanged"] * 3


def test_a_rechunk_keeps_each_document_in_its_workspace():
    from rag.services.ingestion import documents_rechunk
    from rag.types import RetrievalScope
    from tests.factories import UserFactory
    from workspaces.services import workspace_create

    workspace = workspace_create(name="Own", owner=UserFactory.create())
    own = document_ingest(item=DocumentInput(title="Sessions", content=LONG, workspace_id=workspace.pk)).document
    documents_rechunk()

    own.refresh_from_db()
    assert own.workspace_id == workspace.pk
    vector = get_embedder().embed_query("sessions tokens history")
    assert get_vector_store().query(vector, top_k=1000) == []  # nothing of it in the shared base
    scoped = get_vector_store().query(vector, top_k=1000, scope=RetrievalScope(workspace.pk))
    assert {m.id for m in scoped} == set(own.chunks.values_list("id", flat=True))


def stored_centroid(document: Document):
    import numpy as np

    document.refresh_from_db()
    assert document.centroid is not None
    return np.frombuffer(bytes(document.centroid), dtype=np.float32)


def test_each_document_keeps_the_unit_mean_of_its_chunk_vectors():
    import numpy as np

    document = document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md")).document
    texts = list(document.chunks.order_by("index").values_list("text", flat=True))
    assert len(texts) > 1
    mean = np.asarray(get_embedder().embed_documents(texts)).mean(axis=0)
    assert np.allclose(stored_centroid(document), mean / np.linalg.norm(mean), atol=1e-5)
    assert document.centroid_model == get_embedder().name


def test_reindex_gives_documents_from_before_centroids_existed_theirs():
    import numpy as np

    document = document_ingest(item=DocumentInput(title="Sessions", content=LONG, source="s.md")).document
    expected = stored_centroid(document)
    Document.objects.update(centroid=None, centroid_model="")  # as the migration leaves older documents
    index_rebuild(batch_size=3)  # a document's chunks fall in several batches
    assert np.allclose(stored_centroid(document), expected, atol=1e-5)
    assert document.centroid_model == get_embedder().name
