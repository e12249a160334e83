"""Input and output shapes of the account API."""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenRefreshSerializer

from users.models import User
from users.services import refresh_token_rotate
from utils.serializers import StrictCharField, StrictEmailField

# Django's username characters less "@", which marks an email address at login.
_USERNAME = RegexValidator(r"^[\w.+-]+\Z", "Letters, digits and . + - _ only (an '@' marks an email address).")


# Scripts that are written together: Japanese mixes kanji with kana, Korean hangul with hanja.
_SAME_WRITING = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK"}


def username_scripts(value: str) -> set[str]:
    """The scripts of the letters in ``value`` ("LATIN", "CYRILLIC" …, from the Unicode names)."""
    scripts = {unicodedata.name(char, "UNKNOWN").split()[0] for char in value if char.isalpha()}
    return {_SAME_WRITING.get(script, script) for script in scripts}


class UserSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "date_joined", "is_verified"]
        read_only_fields = fields


class RegisterInputSerializer(serializers.Serializer[Any]):
    username = StrictCharField(max_length=150, validators=[_USERNAME])
    email = StrictEmailField(max_length=254)
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False)
    password_confirm = StrictCharField(max_length=128, write_only=True, required=False, trim_whitespace=False)
    first_name = StrictCharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = StrictCharField(max_length=150, required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        # NFKC, as Django's own normalize_username: "ｂｏｂ" and "bob" are one name. Letters of two
        # scripts in one name ("pаypal" with a Cyrillic "а") are refused: they exist to impersonate.
        value = unicodedata.normalize("NFKC", value)
        if len(username_scripts(value)) > 1:
            raise serializers.ValidationError("A username may not mix letters of different alphabets.")
        if "@" in value:
            # "@" marks an email address at login, so a username may not contain one.
            raise serializers.ValidationError("A username may not contain '@'.")
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is already taken.")
        return value

    def validate_email(self, value: str) -> str:
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("An account with this email already exists.")
        return value.lower()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        confirm = attrs.pop("password_confirm", None)
        if confirm is not None and confirm != attrs["password"]:
            raise serializers.ValidationError({"password_confirm": ["The two passwords do not match."]})
        return attrs


class RegisteredUserSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "username", "email", "date_joined", "is_verified"]
        read_only_fields = fields


class TokenInputSerializer(serializers.Serializer[Any]):
    token = StrictCharField(max_length=200)


class EmailInputSerializer(serializers.Serializer[Any]):
    email = StrictEmailField(max_length=254)


class LoginInputSerializer(serializers.Serializer[Any]):
    username = StrictCharField(max_length=254, required=False, help_text="Username or email address.")
    email = StrictCharField(max_length=254, required=False, help_text="Alternative to `username`.")
    password = StrictCharField(max_length=128, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        identifier = attrs.get("username") or attrs.get("email")
        if not identifier:
            raise serializers.ValidationError({"username": ["Give a username or an email address."]})
        attrs["identifier"] = identifier
        return attrs


class LoginByUsernameSerializer(serializers.Serializer[Any]):
    """Log in by username (an email address in `username` works too)."""

    username = StrictCharField(max_length=254, help_text="Username, or an email address.")
    password = StrictCharField(max_length=128, trim_whitespace=False)


class LoginByEmailSerializer(serializers.Serializer[Any]):
    email = StrictCharField(max_length=254, help_text="Email address (or a username).")
    password = StrictCharField(max_length=128, trim_whitespace=False)


class TokenPairSerializer(serializers.Serializer[Any]):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LoginOutputSerializer(TokenPairSerializer):
    user = UserSerializer()


class RefreshInputSerializer(serializers.Serializer[Any]):
    refresh = StrictCharField(max_length=2000)


class ProfileUpdateSerializer(serializers.Serializer[Any]):
    first_name = StrictCharField(max_length=150, required=False, allow_blank=True)
    last_name = StrictCharField(max_length=150, required=False, allow_blank=True)


class PasswordChangeInputSerializer(serializers.Serializer[Any]):
    old_password = StrictCharField(max_length=128, trim_whitespace=False)
    new_password = StrictCharField(max_length=128, trim_whitespace=False)


class PasswordChangeOutputSerializer(TokenPairSerializer):
    detail = serializers.CharField()


class PasswordResetConfirmSerializer(serializers.Serializer[Any]):
    token = StrictCharField(max_length=200)
    new_password = StrictCharField(max_length=128, trim_whitespace=False)


class DetailSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()


class TokenRefreshInputSerializer(TokenRefreshSerializer):
    """simplejwt's refresh input, rotated by ``users.services.refresh_token_rotate``: once per token,
    with reuse detection; a deleted or deactivated user is a 401."""

    refresh = StrictCharField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        pair = refresh_token_rotate(refresh=attrs["refresh"])
        return {"access": pair.access, "refresh": pair.refresh}


class AccountEraseInputSerializer(serializers.Serializer[Any]):
    password = StrictCharField(max_length=128, trim_whitespace=False)


def _erased_counts_serializer() -> type[serializers.Serializer[Any]]:
    """One integer field per kind ``users.erasure.account_erase`` reports (built from its list, so
    the schema and the service cannot drift apart)."""
    from users.erasure import KINDS

    kinds = ["documents", "chunks", "vectors", *KINDS.values()]
    fields = {kind: serializers.IntegerField(min_value=0) for kind in kinds}
    return type("ErasedCountsSerializer", (serializers.Serializer,), fields)


class AccountErasedSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    removed = _erased_counts_serializer()(help_text="What was removed, per kind: rows, and vectors in the store.")
