"""Where an API key may be used, and with which scope (DESIGN §8): one table for the whole API.

A request authenticated by an API key reaches a view only if the view and method are listed in
``API_KEY_SCOPES`` and the key holds the scope listed there. Everything else (the account, the
workspaces and their keys, usage, operations) refuses a key with 403 ``api_key_not_allowed``,
so a route added later is closed to keys until someone lists it here. A key without the scope
is refused with 403 ``insufficient_scope``.

The check runs inside ``workspaces.authentication.ApiKeyAuthentication`` rather than as a
permission class, because a view that sets its own ``permission_classes`` (most do) would skip a
default permission; authentication runs for every view that accepts keys at all.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied

from workspaces.models import ApiKey

CHAT = ApiKey.Scope.CHAT.value
DOCUMENTS_READ = ApiKey.Scope.DOCUMENTS_READ.value
DOCUMENTS_WRITE = ApiKey.Scope.DOCUMENTS_WRITE.value

# {view class dotted path: {HTTP method: scope required}}. HEAD follows GET.
# Search reads the documents' text (titles, snippets, scores) as it is stored, so it needs
# documents:read; a chat-only key gets answers and their cited sources, not a corpus browser.
API_KEY_SCOPES: dict[str, dict[str, str]] = {
    "chat.apis.SessionListApi": {"GET": CHAT, "POST": CHAT},
    "chat.apis.SessionDetailApi": {"GET": CHAT, "PATCH": CHAT, "DELETE": CHAT},
    "chat.apis.SessionMessagesApi": {"GET": CHAT, "POST": CHAT},  # POST streams too (Accept)
    "chat.apis.ExportApi": {"GET": CHAT},
    "chat.apis.HistoryApi": {"GET": CHAT},
    "chat.apis.FeedbackApi": {"POST": CHAT},
    "rag.apis.SearchApi": {"GET": DOCUMENTS_READ},
    "rag.apis.CategoryListApi": {"GET": DOCUMENTS_READ},
    "rag.apis.DocumentListApi": {"GET": DOCUMENTS_READ, "POST": DOCUMENTS_WRITE},
    "rag.apis.DocumentDetailApi": {"GET": DOCUMENTS_READ, "PATCH": DOCUMENTS_WRITE, "DELETE": DOCUMENTS_WRITE},
    "rag.apis.IndexDocumentsApi": {"POST": DOCUMENTS_WRITE},
}


def view_path(view: Any) -> str:
    cls = view if isinstance(view, type) else type(view)
    return f"{cls.__module__}.{cls.__qualname__}"


def required_scope(view: Any, method: str) -> str | None:
    """The scope a key needs for ``method`` on ``view``; ``None``: keys are not accepted there."""
    methods = API_KEY_SCOPES.get(view_path(view), {})
    return methods.get("GET" if method.upper() == "HEAD" else method.upper())


def api_key_scope_check(*, api_key: ApiKey, view: Any, method: str) -> None:
    """Refuse (403) a key on a view it may not call, or without the scope the method needs."""
    scope = required_scope(view, method) if view is not None else None
    if scope is None:
        raise PermissionDenied("API keys cannot be used on this endpoint.", code="api_key_not_allowed")
    if scope not in api_key.scopes:
        raise PermissionDenied(f"This API key lacks the '{scope}' scope.", code="insufficient_scope")
