"""Admin: users with their verification status; staff can verify or deactivate in bulk."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist import admin as token_blacklist_admin
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from users.models import AccountToken, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_verified", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_verified", "is_active", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("-date_joined",)
    actions = ["mark_verified", "deactivate"]
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), ("Verification", {"fields": ("is_verified",)}))

    @admin.action(description="Mark selected users as verified", permissions=["change"])
    def mark_verified(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = queryset.update(is_verified=True)
        self.message_user(request, f"{count} user(s) marked verified.", messages.SUCCESS)

    @admin.action(
        description="Deactivate selected users (they lose access at the next refresh)", permissions=["change"]
    )
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        own = request.user.pk
        targets = queryset if own is None else queryset.exclude(pk=own)  # never lock yourself out
        count = targets.update(is_active=False)
        self.message_user(request, f"{count} user(s) deactivated.", messages.SUCCESS)


@admin.register(AccountToken)
class AccountTokenAdmin(admin.ModelAdmin[AccountToken]):
    """Read-only: only hashes are stored, so there is nothing useful to edit."""

    list_display = ("user", "purpose", "created_at", "expires_at", "used_at")
    list_filter = ("purpose",)
    search_fields = ("user__username", "user__email")
    readonly_fields = ("user", "purpose", "token_hash", "created_at", "expires_at", "used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AccountToken | None = None) -> bool:
        return False


# simplejwt's admin shows each outstanding refresh token in full, a live credential for 7 days:
# the same pages without it (the jti still identifies a token).
admin.site.unregister(OutstandingToken)


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(token_blacklist_admin.OutstandingTokenAdmin):
    exclude = ("token",)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field.name for field in OutstandingToken._meta.fields if field.name != "token"]
