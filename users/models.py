"""Accounts: a custom user with a verified email, and hashed single-use tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class AccountManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(username__iexact=username)

    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> User:
        """``createsuperuser``: whoever runs it owns the address, so the account can log in at once."""
        extra_fields.setdefault("is_verified", True)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    """Email is unique regardless of case; ``is_verified`` is set by the emailed link."""

    email = models.EmailField("email address", max_length=254)
    is_verified = models.BooleanField(default=False, help_text="The user confirmed their email address.")
    token_generation = models.PositiveIntegerField(
        default=0, help_text="Bumped to revoke every token issued before: logout everywhere, password change or reset."
    )

    objects = AccountManager()  # type: ignore[misc]

    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),
            models.UniqueConstraint(Lower("username"), name="users_user_username_ci_unique"),
        ]


class AccountToken(models.Model):
    """A single-use token mailed to a user; only its SHA-256 is stored."""

    class Purpose(models.TextChoices):
        VERIFY_EMAIL = "verify_email", "Email verification"
        RESET_PASSWORD = "reset_password", "Password reset"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_tokens")
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose"])]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} for user {self.user_id}"


class RevokedTokenFamily(models.Model):
    """A refresh-token family ended by reuse detection: a token of it that had already been rotated
    was presented again, so no token of the family refreshes any more (see ``users.tokens``)."""

    family = models.CharField(max_length=255, primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Revoked token family {self.family} of user {self.user_id}"
