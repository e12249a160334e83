"""Shared helpers for the fault-injection tests: sending a message, counting stored messages."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

from chat.models import ChatMessage

SESSIONS = "/api/chat/sessions/"


def messages_url(session_id: int) -> str:
    return f"{SESSIONS}{session_id}/messages/"


def send(client: APIClient, session_id: int, content: str, **headers: Any) -> Any:
    return client.post(messages_url(session_id), {"content": content}, format="json", **headers)


def stored(sender: str, content: str | None = None) -> int:
    """How many messages of ``sender`` are stored (with this ``content``, if given)."""
    messages = ChatMessage.objects.filter(sender=sender)
    if content is not None:
        messages = messages.filter(content=content)
    return messages.count()


def stored_ids(sender: str) -> list[int]:
    return list(ChatMessage.objects.filter(sender=sender).order_by("id").values_list("id", flat=True))


def parse_sse(body: bytes) -> list[tuple[str, Any]]:
    events = []
    for block in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events
