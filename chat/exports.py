"""Session export: the whole conversation with its sources, as JSON or Markdown."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework.renderers import BaseRenderer

from chat.models import ChatSession
from chat.selectors import session_get
from chat.serializers import MessageSerializer, SessionSerializer


def session_export(*, session: ChatSession) -> dict[str, Any]:
    annotated = session_get(user=session.user, session_id=session.pk) or session
    messages = session.messages.order_by("id")
    return {
        "session": SessionSerializer(annotated).data,
        "messages": MessageSerializer(messages, many=True).data,
        "exported_at": timezone.now().isoformat().replace("+00:00", "Z"),
    }


def _markdown(export: dict[str, Any]) -> str:
    session = export["session"]
    lines = [f"# {session['title'] or 'Untitled session'}", "", f"Exported {export['exported_at']}", ""]
    for message in export["messages"]:
        who = "You" if message["sender"] == "user" else "Assistant"
        lines += [f"## {who} · {message['created_at']}", "", message["content"], ""]
        if message.get("citations"):
            lines.append("Quotes:")
            lines += [f'[{c["n"]}] "{" ".join(c["quote"].split())}"' for c in message["citations"]]
            lines.append("")
        if message["sources"]:
            lines.append("Sources:")
            lines += [
                f"{n}. {s['title']} ({s['category']}{', ' + s['source'] if s['source'] else ''})"
                for n, s in enumerate(message["sources"], start=1)
            ]
            lines.append("")
    return "\n".join(lines)


class MarkdownRenderer(BaseRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return _markdown(data).encode()
