"""Admin for the knowledge base. Saves and deletes go through the ingestion services so the
vector store never drifts from the database."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from rag.models import Chunk, Document
from rag.services.ingestion import DocumentInput, document_delete, document_ingest


class ChunkInline(admin.TabularInline[Chunk, Document]):
    model = Chunk
    fields = ("index", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin[Document]):
    list_display = ("title", "category", "source", "chunk_count", "updated_at")
    list_filter = ("category",)
    search_fields = ("title", "source", "content")
    readonly_fields = ("content_hash", "created_at", "updated_at")
    inlines = [ChunkInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        return super().get_queryset(request).annotate(_chunk_count=Count("chunks"))

    @admin.display(description="chunks", ordering="_chunk_count")
    def chunk_count(self, obj: Any) -> int:
        return int(obj._chunk_count)

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        item = DocumentInput(
            title=obj.title, content=obj.content, category=obj.category, source=obj.source, metadata=obj.metadata
        )
        result = document_ingest(item=item, document=obj if change else None)
        obj.pk = result.document.pk

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_delete(document=document)
