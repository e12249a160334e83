"""The knowledge base: documents and their chunks. The database is the source of truth; vector
stores hold only vectors keyed by ``Chunk.id`` and are rebuilt from here by ``manage.py reindex``."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from rag import categories
from rag.types import RetrievalScope


def validate_category(value: str) -> None:
    try:
        categories.check_category(value)
    except categories.InvalidCategory as exc:
        raise ValidationError(str(exc), code="invalid_category") from exc


def readable_in(scope: RetrievalScope, *, via: str = "") -> Q:
    """The rows of documents a search in ``scope`` may read; ``via`` is the path from the queried
    model to its document (``"document__"`` for chunks)."""
    readable = Q(pk__in=[])  # nothing, unless a part below grants it
    if scope.workspace_id is not None:
        readable |= Q(**{f"{via}workspace_id": scope.workspace_id})
    if scope.include_shared:
        readable |= Q(**{f"{via}workspace__isnull": True})
    return readable


class Document(models.Model):
    class Category:
        """The shipped help centre's categories; any valid name is allowed (``rag.categories``)."""

        FAQ = "FAQ"
        GUIDE = "Guide"
        POLICY = "Policy"
        OTHER = categories.DEFAULT

    title = models.CharField(max_length=300)
    content = models.TextField()
    category = models.CharField(
        max_length=categories.MAX_LENGTH,
        default=categories.DEFAULT,
        validators=[validate_category],
        help_text=f"Free name: {categories.RULE}.",
    )
    # The workspace that owns the document; none for the shared knowledge base curated by staff.
    workspace = models.ForeignKey(
        "workspaces.Workspace",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="documents",
        help_text="Empty: the shared knowledge base.",
    )
    source = models.CharField(max_length=500, blank=True, default="", help_text="Where the text came from.")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    # The mean of its chunks' vectors (retrieval's embedder, unit length, float32) and that
    # embedder's name: retrieval's document-level ranking (rag.services.retrieval). Written by
    # ingestion and ``manage.py reindex``; empty for documents ingested before it existed.
    centroid = models.BinaryField(null=True, blank=True, editable=False)
    centroid_model = models.CharField(max_length=200, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [
            # A file ingested twice into one workspace (or the shared base) is the same document;
            # two workspaces may hold files of the same name. Documents created by hand have no
            # source. Two constraints, because NULLs never collide in a unique index.
            models.UniqueConstraint(
                fields=["workspace", "source"],
                condition=~Q(source="") & Q(workspace__isnull=False),
                name="rag_document_workspace_source_unique",
            ),
            models.UniqueConstraint(
                fields=["source"],
                condition=~Q(source="") & Q(workspace__isnull=True),
                name="rag_document_shared_source_unique",
            ),
        ]
        indexes = [models.Index(fields=["category"])]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a document, prefixed with the document's title; its id is its vector id."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    text = models.TextField()
    # float16 embeddings (local model) of the chunk's quotable units (rag.ingestion.units), for the
    # extractive answerer; null for chunks ingested before they existed (``manage.py reindex``).
    unit_vectors = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["document_id", "index"]
        constraints = [models.UniqueConstraint(fields=["document", "index"], name="rag_chunk_document_index_unique")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.index}"


class KnowledgeBaseState(models.Model):
    """One row (pk 1): the knowledge base's version and this database's identity.

    ``version`` counts changes and ``token`` names the latest one (a change that was rolled back
    leaves a token no later change reuses); every process compares them to decide when to
    reload its in-memory indexes. ``database_id`` is drawn once, at the first migrate, and
    recorded by every vector index built from this database, so an index from another database
    is refused instead of answered from.
    """

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    version = models.BigIntegerField(default=0)
    token = models.CharField(max_length=32, default="")
    database_id = models.UUIDField(default=uuid.uuid4, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rag_knowledgebasestate_singleton")]

    def __str__(self) -> str:
        return f"knowledge base v{self.version}"
