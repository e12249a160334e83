"""Input and output of the API key endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from utils.serializers import StrictCharField, StrictChoiceField
from workspaces.models import ApiKey


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=100, help_text="What the key is for, e.g. the client's name.")
    scopes = serializers.ListField(
        child=StrictChoiceField(choices=ApiKey.Scope.choices),
        min_length=1,
        max_length=len(ApiKey.Scope.choices),
        help_text="At least one of `chat`, `documents:read`, `documents:write`.",
    )
    expires_in_days = serializers.IntegerField(
        min_value=1,
        max_value=365,
        required=False,
        help_text="Expire the key this many days from now. Give this or `expires_at`, or neither for no expiry.",
    )
    expires_at = serializers.DateTimeField(required=False, help_text="Expire the key at this time (within a year).")

    def validate_scopes(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each scope at most once.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        days = attrs.pop("expires_in_days", None)
        if days is not None and "expires_at" in attrs:
            raise serializers.ValidationError({"expires_at": ["Give expires_in_days or expires_at, not both."]})
        now = timezone.now()
        if days is not None:
            attrs["expires_at"] = now + timedelta(days=days)
        expires_at = attrs.get("expires_at")
        if expires_at is not None and not now < expires_at <= now + timedelta(days=settings.API_KEYS_MAX_DAYS):
            raise serializers.ValidationError(
                {"expires_at": [f"Must be in the future and within {settings.API_KEYS_MAX_DAYS} days."]}
            )
        return attrs


class ApiKeyCreatorSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    created_by = ApiKeyCreatorSerializer(read_only=True, help_text="The member the key acts as.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.Scope.choices), read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "workspace",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The key itself. Shown this once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, obj: ApiKey) -> str:
        return str(self.context["raw_key"])
