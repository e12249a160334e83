"""Reads of the knowledge base. Documents are shared by every user: reads need a login, writes staff."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, QuerySet

from rag.models import Document


def document_list(*, category: str | None = None, search: str | None = None) -> QuerySet[Document]:
    queryset = Document.objects.annotate(chunk_count=Count("chunks")).order_by("title", "id")
    if category:
        queryset = queryset.filter(category=category)
    if search:
        queryset = queryset.filter(title__icontains=search)
    return queryset


def document_get(*, document_id: int) -> Document | None:
    return document_list().filter(pk=document_id).first()


def category_list() -> QuerySet[Any, Any]:
    """The categories in use, by name, each with its number of documents."""
    return Document.objects.values(name=F("category")).annotate(document_count=Count("id")).order_by("name")
