"""A time budget that runs out while the Mistral SDK retries an error answer is a typed provider
error (a 503 for the caller), not an unhandled exception (a 500). On a loaded machine the
provider-fault suite met this now and then; here the clock jumps past the deadline on purpose."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rag.providers import http
from rag.providers.mistral import MistralGenerator
from rag.types import AnswerRequest, ContextDocument
from tests.fakes.mistral_server import FakeMistral
from utils.exceptions import ProviderUnavailable

REQUEST = AnswerRequest("How long do refunds take?", [ContextDocument(1, 11, "Refunds", "Five days.", 0.9)])


def test_a_budget_spent_retrying_an_error_answer_is_a_typed_error(
    fake_mistral: FakeMistral, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = MistralGenerator(
        "sk-test", "mistral-small-latest", server_url=fake_mistral.url, timeout_s=5.0, budget_s=5.0,
        initial_backoff_s=0.01, max_backoff_s=0.02,
    )  # fmt: skip
    fake_mistral.fail_next("500", count=1000)
    real = time.monotonic

    class Clock:
        """Real time until the first error answer has come back, then an hour later."""

        @staticmethod
        def monotonic() -> float:
            return real() + (3600.0 if fake_mistral.requests else 0.0)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    monkeypatch.setattr(http, "time", Clock())  # the retry policy's clock (rag.providers.http)
    with pytest.raises(ProviderUnavailable) as caught:
        generator.generate(REQUEST)
    assert "HTTP 500" in caught.value.detail and len(fake_mistral.requests) == 1
