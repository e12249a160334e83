"""Input and output shapes of the knowledge-base API."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import Direction, extend_schema_field
from rest_framework import serializers

from rag import categories
from rag.ingestion.extract import SUPPORTED_EXTENSIONS
from rag.models import Document
from utils.exceptions import ServiceError
from utils.serializers import QueryCharField, QueryIntegerField, StrictCharField, _QueryValue

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema

MAX_CONTENT_CHARS = 2_000_000
SHARED = "shared"  # the ``workspace`` value that names the shared knowledge base
_WORKSPACE_HELP = (
    'A workspace id, or "shared" for the shared knowledge base. Default: the API key\'s workspace, '
    "else your personal workspace."
)
_WORKSPACE_DIGITS = re.compile(r"[1-9][0-9]{0,17}")
WORKSPACE_TEXT_PATTERN = r"^([1-9][0-9]{0,17}|shared)$"


class UnsupportedFileType(ServiceError):
    status_code = 415
    code = "unsupported_file_type"
    default_detail = "Upload a .txt, .md, .rst, .html or .pdf file."


class FileTooLarge(ServiceError):
    status_code = 413
    code = "file_too_large"
    default_detail = "The upload is larger than the limit (10 MB by default)."


class _CategoryRule:
    """Marks the fields that take a category name (for the schema extension below)."""


class CategoryField(_CategoryRule, StrictCharField):
    """A category name, taken as given or refused (``rag.categories``); the schema states the rule."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", f"A category: {categories.RULE}.")
        super().__init__(max_length=categories.MAX_LENGTH, trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(categories.PATTERN, message=f"Use {categories.RULE}."))


class QueryCategoryField(_CategoryRule, QueryCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=categories.MAX_LENGTH, trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(categories.PATTERN, message=f"Use {categories.RULE}."))


class CategoryFieldExtension(OpenApiSerializerFieldExtension):
    """The category rule as the field's ``pattern`` (it implies the NUL and blank rules that
    ``utils.schema.StrictCharFieldExtension`` would state otherwise)."""

    target_class = _CategoryRule
    match_subclasses = True
    priority = 1  # over StrictCharFieldExtension, which matches these fields too

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema["pattern"] = categories.PATTERN
        return schema


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 10**18 - 1}, {"type": "string", "enum": [SHARED]}]}
)
class WorkspaceRefField(serializers.Field):
    """Which knowledge base a request is about: a workspace id (a JSON integer), or ``"shared"``."""

    default_error_messages = {"invalid": 'A workspace id or "shared".'}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", _WORKSPACE_HELP)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int | str:
        if data == SHARED:
            return SHARED
        if isinstance(data, int) and not isinstance(data, bool) and 1 <= data < 10**18:
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field({"type": "string", "pattern": WORKSPACE_TEXT_PATTERN})
class WorkspaceRefTextField(WorkspaceRefField):
    """The same, sent as text (a query parameter or a multipart form field)."""

    def to_internal_value(self, data: Any) -> int | str:
        if data == SHARED:
            return SHARED
        if isinstance(data, str) and _WORKSPACE_DIGITS.fullmatch(data):
            return int(data)
        self.fail("invalid")


class QueryWorkspaceRefField(_QueryValue, WorkspaceRefTextField):
    pass


class DocumentSerializer(serializers.ModelSerializer[Document]):
    chunk_count = serializers.IntegerField(read_only=True)
    workspace = serializers.IntegerField(
        source="workspace_id", read_only=True, allow_null=True, help_text="Null: the shared knowledge base."
    )

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "category",
            "source",
            "metadata",
            "workspace",
            "chunk_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DocumentDetailSerializer(DocumentSerializer):
    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "content"]
        read_only_fields = fields


class DocumentInputSerializer(serializers.Serializer[Any]):
    title = StrictCharField(max_length=300)
    content = StrictCharField(max_length=MAX_CONTENT_CHARS)
    category = CategoryField(default=categories.DEFAULT)
    source = StrictCharField(max_length=500, required=False, allow_blank=True, default="")  # type: ignore[assignment]
    metadata = serializers.DictField(required=False, default=dict)

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The content is empty.")
        return value


class DocumentCreateSerializer(DocumentInputSerializer):
    workspace = WorkspaceRefField()


class DocumentUpdateSerializer(serializers.Serializer[Any]):
    workspace = WorkspaceRefField(
        help_text="The document's workspace, if given, must be the one it is in: documents do not move."
    )
    title = StrictCharField(max_length=300, required=False)
    content = StrictCharField(max_length=MAX_CONTENT_CHARS, required=False)
    category = CategoryField(required=False)
    metadata = serializers.DictField(required=False)


class DocumentUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="A .txt, .md, .rst, .html or .pdf file, up to 10 MB.")
    workspace = WorkspaceRefTextField()
    title = StrictCharField(max_length=300, required=False, help_text="Default: from the file.")
    category = CategoryField(
        required=False, help_text=f"Default: the file's front matter, else Other. {categories.RULE}."
    )

    def validate_file(self, value: Any) -> Any:
        if PurePath(value.name).suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise UnsupportedFileType()
        if value.size > settings.MAX_UPLOAD_BYTES:
            raise FileTooLarge()
        return value


class IndexDocumentsSerializer(serializers.Serializer[Any]):
    # A ListField, not many=True: its length limits reach the schema (minItems, maxItems).
    workspace = WorkspaceRefField()
    documents = serializers.ListField(child=DocumentInputSerializer(), min_length=1, max_length=100)


class IndexResultSerializer(serializers.Serializer[Any]):
    indexed_count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.IntegerField())


class SearchQuerySerializer(serializers.Serializer[Any]):
    # 300 characters keep the worst case (4-byte characters, percent-encoded) inside a 4 KB request line.
    q = QueryCharField(max_length=300, help_text="The question or keywords.")
    top_k = QueryIntegerField(min_value=1, max_value=10, default=3)
    previous = QueryCharField(
        max_length=300,
        required=False,
        allow_blank=True,
        help_text="For a follow-up: the user's previous question in the conversation. The search reads "
        '`q` with it as far as `q` needs it ("and how long is the link valid?" after "how do I reset my '
        'password"), as a chat session reads its turns; a question on a new topic is searched on its own.',
    )
    workspace = QueryWorkspaceRefField(
        help_text="A workspace id: its documents, and the shared base unless the workspace turned it off; "
        '"shared": the shared base only. Default: the API key\'s workspace, else your personal workspace.'
    )

    def validate_q(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The query is empty.")
        return value.strip()


class DocumentListQuerySerializer(serializers.Serializer[Any]):
    workspace = QueryWorkspaceRefField()
    category = QueryCategoryField(required=False, help_text="Only this category (as listed by /api/rag/categories/).")
    search = QueryCharField(max_length=300, required=False, allow_blank=True, help_text="Part of the title.")


class CategorySerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    document_count = serializers.IntegerField()


class SourceSerializer(serializers.Serializer[Any]):
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    category = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]
    score = serializers.FloatField()
    snippet = serializers.CharField()


class SearchResultSerializer(serializers.Serializer[Any]):
    query = serializers.CharField()
    results = SourceSerializer(many=True)
    took_ms = serializers.FloatField()
