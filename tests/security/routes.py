"""The URL resolver, walked: every route with its name, view class, path parameters and methods.

The security tests enumerate routes from here rather than from a hand-kept list, so a route added
later is checked (or makes a test fail until someone decides how it must be checked).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Route:
    pattern: str  # as written in the URLconf, without the leading slash: "api/chat/sessions/<int:session_id>/"
    name: str  # namespaced: "chat:session-detail"
    view: Any  # the view class (DRF APIView subclass), or the function for plain Django views
    parameters: tuple[str, ...]  # the path parameters, e.g. ("session_id",)

    @property
    def openapi_path(self) -> str:
        """``/api/chat/sessions/{session_id}/``, as drf-spectacular names it."""
        return "/" + _PARAMETER.sub(r"{\1}", self.pattern)

    @property
    def methods(self) -> frozenset[str]:
        """The HTTP methods the view implements (upper case), HEAD and OPTIONS aside."""
        if not isinstance(self.view, type):
            return frozenset()
        return frozenset(method.upper() for method in HTTP_METHODS if hasattr(self.view, method))

    def url(self, **values: object) -> str:
        return "/" + _PARAMETER.sub(lambda m: str(values[m.group(1)]), self.pattern)


def _walk(patterns: Sequence[Any], prefix: str, namespace: str | None) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(n for n in (namespace, entry.namespace) if n) or None
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            pattern = prefix + str(entry.pattern)
            name = f"{namespace}:{entry.name}" if namespace else str(entry.name)
            callback = entry.callback
            view = getattr(callback, "cls", None) or getattr(callback, "view_class", None) or callback
            parameters = tuple(_PARAMETER.findall(pattern)) or tuple(entry.pattern.regex.groupindex)
            yield Route(pattern=pattern, name=name, view=view, parameters=parameters)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", None))


def api_routes() -> list[Route]:
    """Every route under /api/."""
    return [route for route in all_routes() if route.pattern.startswith("api/")]


def admin_routes() -> list[Route]:
    return [route for route in all_routes() if route.name.startswith("admin:")]
