"""Fixtures for the observability tests: metric samples, captured JSON log lines, a Mistral fake."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from rag.providers.factory import reset_providers
from tests.fakes.mistral_server import FakeMistral
from utils.logging import JsonFormatter, RequestIdFilter

SESSIONS = "/api/chat/sessions/"


def sample(name: str, **labels: str) -> float:
    """The current value of one sample in this process's registry (0 when it has none yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def messages_url(session_id: int) -> str:
    return f"{SESSIONS}{session_id}/messages/"


@pytest.fixture
def session_id(api_client: Any) -> int:
    return int(api_client.post(SESSIONS, {}, format="json").json()["id"])


@pytest.fixture
def mistral_generator(settings: Any, fake_mistral: FakeMistral) -> FakeMistral:
    """Answers come from Mistral's SDK talking to the fake (the embedder stays local)."""
    settings.RAG_GENERATOR = "mistral"
    settings.MISTRAL_API_KEY = "test-mistral-key-0123456789"
    settings.MISTRAL_SERVER_URL = fake_mistral.url
    settings.RAG_TIMEOUT_S = 2.0
    settings.RAG_REQUEST_TIMEOUT_S = 0.5
    reset_providers()
    return fake_mistral


class LogLines:
    """What a JSON console handler wrote, one parsed object per line."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    @property
    def raw(self) -> str:
        return self._buffer.getvalue()

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw.splitlines()]

    def by_logger(self, prefix: str) -> list[dict[str, Any]]:
        return [line for line in self.parsed() if line["logger"].startswith(prefix)]


@pytest.fixture
def json_logs() -> Iterator[LogLines]:
    """A handler set up like the production console handler (JSON, request-id filter) on the
    root logger and on ``django`` (which does not propagate), at INFO."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(), logging.getLogger("django")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield LogLines(buffer)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def delta() -> Callable[..., Callable[[], float]]:
    """``d = delta(name, **labels)`` remembers a sample now; ``d()`` is how much it grew since."""

    def start(name: str, **labels: str) -> Callable[[], float]:
        before = sample(name, **labels)
        return lambda: sample(name, **labels) - before

    return start
