"""Knowledge-base endpoints (DESIGN §8): each request is about one knowledge base, the shared one
(everyone reads, staff write) or a workspace's (members read, owners and admins write), named by
``workspace`` (default: the API key's workspace, else the caller's personal one). Another
workspace's document is not found, exactly like a document that does not exist."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rag import categories, selectors
from rag.ingestion.extract import extract_text
from rag.models import Document
from rag.serializers import (
    SHARED,
    CategorySerializer,
    DocumentCreateSerializer,
    DocumentDetailSerializer,
    DocumentListQuerySerializer,
    DocumentSerializer,
    DocumentUpdateSerializer,
    DocumentUploadSerializer,
    FileTooLarge,
    IndexDocumentsSerializer,
    IndexResultSerializer,
    SearchQuerySerializer,
    SearchResultSerializer,
)
from rag.services.ingestion import DocumentInput, document_delete
from rag.services.retrieval import retrieve
from rag.types import RetrievalScope, Turn
from users.selectors import request_user
from utils.exceptions import NotFound, PermissionDeniedError, ValidationFailed
from utils.pagination import StandardPagination
from utils.parsers import JSONParser
from utils.schema import error_responses, response_example
from utils.throttling import ScopedThrottle
from workspaces.access import api_key_of, membership_require, retrieval_scope, workspace_resolve
from workspaces.models import Workspace
from workspaces.quotas import document_ingest_within_quota, documents_ingest_within_quota

TAG = ["knowledge base"]
_SOURCE = {
    "document_id": 12,
    "title": "Reset a forgotten password",
    "category": "Guide",
    "source": "guides/reset-a-forgotten-password.md",
    "score": 0.7312,
    "snippet": "Ask for a reset email at POST /api/auth/password/reset/ …",
}
_DOCUMENT = {
    "id": 12,
    "title": "Reset a forgotten password",
    "category": "Guide",
    "source": "guides/reset-a-forgotten-password.md",
    "metadata": {},
    "workspace": None,
    "chunk_count": 4,
    "created_at": "2026-11-21T09:30:00Z",
    "updated_at": "2026-11-21T09:30:00Z",
}
_NEW_DOCUMENT = {"title": "Office hours", "content": "Support answers weekdays 9–17 UTC.", "category": "FAQ"}


def _knowledge_base(request: Request, ref: int | str | None, *, manage: bool = False) -> Workspace | None:
    """The workspace a request names, checked for the caller (``None``: the shared base).

    A workspace the caller (or the API key) cannot reach is a 404; ``manage`` needs an owner or
    admin of the workspace, or staff for the shared base, which an API key never writes.
    """
    api_key = api_key_of(request)
    user = request_user(request)
    if ref == SHARED:
        if manage and (api_key is not None or not user.is_staff):
            raise PermissionDeniedError("Only staff can change the shared knowledge base.")
        return None
    workspace_id = ref if isinstance(ref, int) else None
    return workspace_resolve(user=user, workspace_id=workspace_id, manage=manage, api_key=api_key)


def _knowledge_base_id(request: Request, ref: int | str | None, *, manage: bool = False) -> int | None:
    workspace = _knowledge_base(request, ref, manage=manage)
    return workspace.pk if workspace is not None else None


def _write_allowed(request: Request, document: Document) -> None:
    """Raise unless the caller may change ``document`` (which they can already read)."""
    if document.workspace_id is None:
        _knowledge_base(request, SHARED, manage=True)
    else:
        membership_require(
            user=request_user(request), workspace_id=document.workspace_id, manage=True, api_key=api_key_of(request)
        )


def _key_workspace(request: Request) -> int | None:
    api_key = api_key_of(request)
    return api_key.workspace_id if api_key is not None else None


class SearchApi(APIView):
    # Per user: each search embeds a query (a model run, or a Mistral call) and caches it in Redis.
    throttle_classes = [ScopedThrottle]
    throttle_scope = "search"

    @extend_schema(
        tags=TAG,
        summary="Search the knowledge base",
        description="Searches one workspace's documents and the shared knowledge base (unless the workspace "
        "turned it off), or with `workspace=shared` the shared base alone. A workspace you are not a member of "
        "is a 404. For a follow-up, pass the previous question as `previous`.",
        parameters=[SearchQuerySerializer],
        responses={200: SearchResultSerializer, **error_responses(400, 401, 404, 429, 503)},
        examples=[
            response_example("Results", {"query": "how do I reset my password", "results": [_SOURCE], "took_ms": 9.4})
        ],
    )
    def get(self, request: Request) -> Response:
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        workspace = _knowledge_base(request, query.validated_data.get("workspace"))
        scope = RetrievalScope() if workspace is None else retrieval_scope(workspace)
        previous = query.validated_data.get("previous", "").strip()
        history = [Turn(role="user", content=previous)] if previous else []
        result = retrieve(
            query=query.validated_data["q"], history=history, top_k=query.validated_data["top_k"], scope=scope
        )
        body = {"query": result.query, "results": [d.as_source() for d in result.documents], "took_ms": result.took_ms}
        return Response(body)


def _document_or_404(request: Request, document_id: int) -> Document:
    document = selectors.document_get(
        user=request_user(request), document_id=document_id, only_workspace_id=_key_workspace(request)
    )
    if document is None:
        raise NotFound()
    return document


def _upload_to_input(data: dict[str, Any], workspace_id: int | None) -> DocumentInput:
    upload = data["file"]
    extracted = extract_text(upload.name, upload.read())
    if not extracted.text.strip():
        raise ValidationFailed("No text could be extracted from the file.", code="empty_document")
    meta = extracted.metadata or {}
    title = data.get("title") or extracted.title or PurePath(upload.name).stem.replace("-", " ").capitalize()
    category = data.get("category") or meta.get("category") or categories.DEFAULT
    try:
        categories.check_category(category)
    except categories.InvalidCategory as exc:  # from the front matter: refused, never replaced
        raise ValidationFailed("Invalid input.", code="invalid", errors={"category": [str(exc)]}) from exc
    return DocumentInput(
        title=title,
        content=extracted.text,
        category=category,
        source=upload.name,
        metadata={"filename": upload.name},
        workspace_id=workspace_id,
    )


class CategoryListApi(APIView):
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAG,
        summary="Categories in use",
        description=f"Each category that at least one document you can read has (the shared base and your "
        f"workspaces'; with an API key, its workspace's), with its number of documents, by name. "
        f"A category is any name of {categories.RULE}; it comes into use with its first document.",
        responses={200: CategorySerializer(many=True), **error_responses(400, 401, 404)},
        examples=[response_example("Page", {"name": "Guide", "document_count": 19})],
    )
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        categories_in_use = selectors.category_list(
            user=request_user(request), only_workspace_id=_key_workspace(request)
        )
        page = paginator.paginate_queryset(categories_in_use, request, view=self)
        return paginator.get_paginated_response(CategorySerializer(page, many=True).data)


class DocumentListApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    pagination_class = StandardPagination  # read by the schema generator (page parameters, envelope)

    @extend_schema(
        tags=TAG,
        summary="List documents",
        description="The documents of one knowledge base: a workspace's (members read it) or, with "
        "`workspace=shared`, the shared base. A workspace you are not a member of is a 404.",
        parameters=[DocumentListQuerySerializer],
        responses={200: DocumentSerializer(many=True), **error_responses(400, 401, 404)},
        examples=[response_example("Page", _DOCUMENT)],  # the generator wraps it in the page envelope
    )
    def get(self, request: Request) -> Response:
        query = DocumentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        queryset = selectors.document_list(
            user=request_user(request),
            workspace_id=_knowledge_base_id(request, query.validated_data.get("workspace")),
            category=query.validated_data.get("category"),
            search=query.validated_data.get("search"),
        )
        paginator = StandardPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        summary="Add a document (workspace owners and admins; staff for the shared base)",
        description="Into `workspace` (default: your personal workspace, or the API key's): its owners and "
        "admins write (a member gets a 403, a workspace you are not in a 404); `workspace=shared` is for staff. "
        "A workspace's plan limits its documents (403 `document_quota_exceeded`) and the bytes of their text "
        "(403 `storage_quota_exceeded`). "
        "JSON with title and content, or a multipart upload of a .txt, .md, .rst, .html or .pdf "
        "file (up to 10 MB). The document is chunked, embedded and indexed before the reply. Text over "
        "INGEST_MAX_CHARS, a PDF over INGEST_MAX_PAGES or over INGEST_MAX_CHUNKS chunks is a 413 "
        "`document_too_large`; a PDF that cannot be parsed within PDF_PARSE_TIMEOUT_S or PDF_PARSE_MEMORY_MB "
        "is a 422 `document_too_complex`.",
        request={"application/json": DocumentCreateSerializer, "multipart/form-data": DocumentUploadSerializer},
        responses={201: DocumentDetailSerializer, **error_responses(400, 401, 403, 404, 413, 415, 422, 503)},
        examples=[
            OpenApiExample("JSON document", value=_NEW_DOCUMENT, request_only=True),
            response_example("Created", _DOCUMENT | {"content": "…"}, 201),
        ],
    )
    def post(self, request: Request) -> Response:
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.MAX_UPLOAD_BYTES + 64 * 1024:
            raise FileTooLarge()  # refuse before reading the body
        if "file" in request.FILES:
            upload = DocumentUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            workspace_id = _knowledge_base_id(request, upload.validated_data.get("workspace"), manage=True)
            item = _upload_to_input(upload.validated_data, workspace_id)  # checked before the file is parsed
        else:
            serializer = DocumentCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            workspace_id = _knowledge_base_id(request, data.pop("workspace", None), manage=True)
            item = DocumentInput(**data, workspace_id=workspace_id)
        result = document_ingest_within_quota(item=item)
        document = _document_or_404(request, result.document.pk)
        return Response(DocumentDetailSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="One document with its content",
        description="A document of the shared base or of a workspace you are a member of; any other is a 404.",
        responses={200: DocumentDetailSerializer, **error_responses(401, 404)},
        examples=[response_example("Document", _DOCUMENT | {"content": "…"})],
    )
    def get(self, request: Request, document_id: int) -> Response:
        return Response(DocumentDetailSerializer(_document_or_404(request, document_id)).data)

    @extend_schema(
        tags=TAG,
        summary="Change a document (its workspace's owners and admins; staff for the shared base)",
        description="Changed content is re-indexed, within the workspace's storage quota (403 "
        "`storage_quota_exceeded`). A document stays in its workspace.",
        request=DocumentUpdateSerializer,
        responses={200: DocumentDetailSerializer, **error_responses(400, 401, 403, 404, 413, 503)},
        examples=[
            OpenApiExample("Recategorise", value={"category": "Policy"}, request_only=True),
            response_example("Updated", _DOCUMENT | {"category": "Policy", "content": "…"}),
        ],
    )
    def patch(self, request: Request, document_id: int) -> Response:
        document = _document_or_404(request, document_id)
        serializer = DocumentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _write_allowed(request, document)
        data = serializer.validated_data
        if "workspace" in data and data["workspace"] != (document.workspace_id or SHARED):
            raise ValidationFailed(
                "Invalid input.", errors={"workspace": ["A document stays in its workspace; add it to the other one."]}
            )
        item = DocumentInput(
            title=data.get("title", document.title),
            content=data.get("content", document.content),
            category=data.get("category", document.category),
            source=document.source,
            metadata=data.get("metadata", document.metadata),
            workspace_id=document.workspace_id,
        )
        document_ingest_within_quota(item=item, document=document)
        return Response(DocumentDetailSerializer(_document_or_404(request, document_id)).data)

    @extend_schema(
        tags=TAG,
        summary="Delete a document and its vectors (its workspace's owners and admins; staff for the shared base)",
        responses={204: None, **error_responses(401, 403, 404, 503)},
    )
    def delete(self, request: Request, document_id: int) -> Response:
        document = _document_or_404(request, document_id)
        _write_allowed(request, document)
        document_delete(document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IndexDocumentsApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="Index several documents at once (workspace owners and admins; staff for the shared base)",
        description="All into `workspace` (default: your personal workspace, or the API key's), all or none "
        "within its quotas (403 `document_quota_exceeded`, `storage_quota_exceeded`).",
        request=IndexDocumentsSerializer,
        responses={201: IndexResultSerializer, **error_responses(400, 401, 403, 404, 413, 503)},
        examples=[
            OpenApiExample("Two documents", value={"documents": [_NEW_DOCUMENT, _NEW_DOCUMENT]}, request_only=True),
            response_example("Indexed", {"indexed_count": 2, "ids": [41, 42]}, 201),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = IndexDocumentsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace_id = _knowledge_base_id(request, serializer.validated_data.get("workspace"), manage=True)
        items = [DocumentInput(**d, workspace_id=workspace_id) for d in serializer.validated_data["documents"]]
        results = documents_ingest_within_quota(items=items)
        ids = [r.document.pk for r in results]
        return Response({"indexed_count": len(ids), "ids": ids}, status=status.HTTP_201_CREATED)
