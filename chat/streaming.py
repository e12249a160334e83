"""Server-Sent Events for a streamed answer.

The stream runs on the request's worker thread. If the client goes away, the WSGI server closes
the response iterator; the ``finally`` block then drains the answer to the end so that it is
still stored (the ``done`` message is what a reconnecting client finds in the history).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from rest_framework.renderers import BaseRenderer

from chat.models import ChatMessage
from chat.serializers import MessageSerializer
from chat.services import Received, message_answer_stream
from utils.exceptions import ServiceError, public_detail

logger = logging.getLogger(__name__)


class EventStreamRenderer(BaseRenderer):
    """Lets content negotiation accept ``Accept: text/event-stream``; the view streams itself."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return sse("error", data)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def _payload(kind: str, data: Any) -> Any:
    if kind == "delta":
        return {"text": data}
    if kind == "done":
        return MessageSerializer(data).data
    return data


def primed_events(received: Received) -> Iterator[tuple[str, Any]]:
    """The answer events with the first one already computed, so retrieval errors surface as a
    normal JSON 503 before any byte of the stream is sent."""
    events = message_answer_stream(received=received)
    first = next(events)

    def chain() -> Iterator[tuple[str, Any]]:
        yield first
        yield from events

    return chain()


def event_stream(user_message: ChatMessage, events: Iterator[tuple[str, Any]]) -> Iterator[bytes]:
    finished = False
    try:
        yield sse("user_message", MessageSerializer(user_message).data)
        for kind, data in events:
            yield sse(kind, _payload(kind, data))
        finished = True
    except ServiceError as exc:
        finished = True
        yield sse("error", {"detail": public_detail(exc), "code": exc.code})
    except Exception:  # boundary: the response has started, so report in-band, never a traceback
        finished = True
        logger.exception("Streaming answer to message %s failed", user_message.pk)
        yield sse("error", {"detail": "The answer could not be completed.", "code": "server_error"})
    finally:
        if not finished:
            _drain(user_message, events)


def _drain(user_message: ChatMessage, events: Iterator[tuple[str, Any]]) -> None:
    """The client disconnected: finish the answer so that it is stored."""
    try:
        for _ in events:
            pass
        logger.info("Client left; answer to message %s completed and stored", user_message.pk)
    except Exception:  # boundary: nobody is listening any more; record it
        logger.exception("Completing the answer to message %s after a disconnect failed", user_message.pk)
