"""Page-number pagination: ``{"count", "next", "previous", "results"}``, page size up to 100."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from utils.serializers import INTEGER_RE, parse_query_int, query_value


class StandardPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        # DRF silently falls back to the default on a malformed size; a typed API says 400.
        raw = query_value(request.query_params, self.page_size_query_param)
        size = parse_query_int(raw, name=self.page_size_query_param, minimum=1)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_page_number(self, request: Request, paginator: Paginator) -> int | str:
        # Once, in digits: DRF would also take "last", and int() " 1" or "١"; else an invalid page (404).
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        return values[0] if len(values) == 1 and INTEGER_RE.fullmatch(values[0]) else "invalid"

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number, from 1 (a page past the last is a 404).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, default {self.page_size}; above {self.max_page_size} counts as "
                f"{self.max_page_size}.",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
