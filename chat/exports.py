"""Session export: the whole conversation with its sources, as JSON or Markdown.

In the Markdown export every value that came from a user, a model or a document (the session
title, each message, each source's title, category and path) is escaped: it reads as the plain
text it was, never as HTML (``<img src=x onerror=…>``), a link or image that a viewer would fetch,
or a heading that forges a turn of the conversation.
"""

from __future__ import annotations

import re
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


# HTML, entities, links and images anywhere; headings, setext underlines, quotes and lists at a line's start.
_INLINE_MARKUP = re.compile(r"([\\<>&\[\]])")
_LINE_START_MARKUP = re.compile(r"^([ \t]*)([#=+\-])", re.MULTILINE)


def markdown_text(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (CommonMark backslash escapes)."""
    return _LINE_START_MARKUP.sub(r"\1\\\2", _INLINE_MARKUP.sub(r"\\\1", str(value)))


def _line(value: object) -> str:
    return markdown_text(" ".join(str(value).split()))


def _markdown(export: dict[str, Any]) -> str:
    session = export["session"]
    lines = [f"# {_line(session['title']) or 'Untitled session'}", "", f"Exported {export['exported_at']}", ""]
    for message in export["messages"]:
        who = "You" if message["sender"] == "user" else "Assistant"
        lines += [f"## {who} · {message['created_at']}", "", markdown_text(message["content"]), ""]
        if message.get("citations"):
            lines.append("Quotes:")
            lines += [f'[{c["n"]}] "{_line(c["quote"])}"' for c in message["citations"]]
            lines.append("")
        if message["sources"]:
            lines.append("Sources:")
            lines += [
                f"{n}. {_line(s['title'])} ({_line(s['category'])}{', ' + _line(s['source']) if s['source'] else ''})"
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
