"""Reads of the knowledge base, scoped to the caller (DESIGN §8): the shared base (documents with
no workspace) and the documents of the workspaces the caller is a member of. Anything else is
simply not found, so a guessed id reads exactly like an id that does not exist."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Q, QuerySet

from rag.models import Document
from users.models import User
from workspaces.models import Membership


def documents_readable(*, user: User, only_workspace_id: int | None = None) -> QuerySet[Document]:
    """The shared base and the caller's workspaces' documents; ``only_workspace_id`` (a request
    made with an API key) narrows the workspaces to that one."""
    memberships = Membership.objects.filter(user=user)
    if only_workspace_id is not None:
        memberships = memberships.filter(workspace_id=only_workspace_id)
    return Document.objects.filter(Q(workspace__isnull=True) | Q(workspace_id__in=memberships.values("workspace_id")))


def document_list(
    *,
    user: User,
    workspace_id: int | None,
    category: str | None = None,
    search: str | None = None,
) -> QuerySet[Document]:
    """The documents of one workspace (``None``: the shared base), if the caller may read it."""
    queryset = documents_readable(user=user).filter(workspace=workspace_id)
    queryset = queryset.annotate(chunk_count=Count("chunks")).order_by("title", "id")
    if category:
        queryset = queryset.filter(category=category)
    if search:
        queryset = queryset.filter(title__icontains=search)
    return queryset


def document_get(*, user: User, document_id: int, only_workspace_id: int | None = None) -> Document | None:
    readable = documents_readable(user=user, only_workspace_id=only_workspace_id)
    return readable.annotate(chunk_count=Count("chunks")).filter(pk=document_id).first()


def category_list(*, user: User, only_workspace_id: int | None = None) -> QuerySet[Any, Any]:
    """The categories in use among the documents the caller can read, by name, with their counts."""
    readable = documents_readable(user=user, only_workspace_id=only_workspace_id)
    return readable.values(name=F("category")).annotate(document_count=Count("id")).order_by("name")
