"""Answers: retrieve, build the request, call the generator; on provider failure fall back to
the extractive answer marked ``degraded``. Retrieval failures propagate: without documents there
is no grounded answer to give."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.answering.extractive import ExtractiveGenerator
from rag.providers.base import AnswerRequest, ContextDocument, Generator, Turn, Usage
from rag.providers.factory import get_generator
from rag.services.retrieval import RetrievedDocument, retrieve
from utils.exceptions import ProviderError
from utils.metrics import record_degraded

logger = logging.getLogger(__name__)

_EXTRACTIVE = ExtractiveGenerator()


@dataclass
class Answer:
    text: str
    sources: list[dict[str, Any]]
    provider: str
    model: str
    usage: dict[str, int] | None = None
    degraded: bool = False
    retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    latency_ms: float = 0.0
    error: str = ""  # why the answer is degraded, for logs and metadata; never shown as the answer

    def metadata(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage,
            "degraded": self.degraded,
            "latency_ms": round(self.latency_ms),
            "retrieval_ms": round(self.retrieval_ms, 1),
            "generation_ms": round(self.generation_ms, 1),
        }


@dataclass(frozen=True)
class AnswerEvent:
    """One step of a streamed answer: ``sources``, ``delta`` (text) or ``done`` (the ``Answer``)."""

    kind: str
    data: Any = field(default=None)


def _request(question: str, documents: Sequence[RetrievedDocument], history: Sequence[Turn]) -> AnswerRequest:
    context = [
        ContextDocument(number=n, document_id=d.document_id, title=d.title, text=d.text, score=d.score)
        for n, d in enumerate(documents, start=1)
    ]
    return AnswerRequest(question=question, documents=context, history=tuple(history))


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _generator_for(request: AnswerRequest) -> Generator:
    # With nothing retrieved there is nothing to ground a model's answer on: say so without a call.
    return get_generator() if request.documents else _EXTRACTIVE


def answer_question(*, question: str, history: Sequence[Turn] = ()) -> Answer:
    started = time.perf_counter()
    retrieval = retrieve(query=question, history=history)
    request = _request(question, retrieval.documents, history)
    sources = [d.as_source() for d in retrieval.documents]
    generator = _generator_for(request)
    gen_started = time.perf_counter()
    try:
        generation = generator.generate(request)
        answer = Answer(generation.text, sources, generator.name, generation.model, _usage(generation.usage))
    except ProviderError as exc:
        logger.warning("Generator %s failed (%s); answering extractively", generator.name, exc.code)
        record_degraded(generator.name)
        generation = _EXTRACTIVE.generate(request)
        answer = Answer(generation.text, sources, _EXTRACTIVE.name, generation.model, degraded=True, error=exc.code)
    answer.retrieval_ms = retrieval.took_ms
    answer.generation_ms = (time.perf_counter() - gen_started) * 1000
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


def answer_stream(*, question: str, history: Sequence[Turn] = ()) -> Iterator[AnswerEvent]:
    """Yields ``sources``, then ``delta`` events, then ``done`` with the complete ``Answer``.

    If the generator fails mid-stream, the answer is completed extractively and marked degraded;
    the ``done`` event's text is then the authoritative (stored) answer.
    """
    started = time.perf_counter()
    retrieval = retrieve(query=question, history=history)
    request = _request(question, retrieval.documents, history)
    sources = [d.as_source() for d in retrieval.documents]
    yield AnswerEvent("sources", sources)
    generator = _generator_for(request)
    gen_started = time.perf_counter()
    parts: list[str] = []
    usage: Usage | None = None
    try:
        for delta in generator.stream(request):
            usage = delta.usage or usage
            if delta.text:
                parts.append(delta.text)
                yield AnswerEvent("delta", delta.text)
        answer = Answer("".join(parts), sources, generator.name, generator.model, _usage(usage))
    except ProviderError as exc:
        logger.warning("Generator %s failed mid-stream (%s); answering extractively", generator.name, exc.code)
        record_degraded(generator.name)
        fallback = _EXTRACTIVE.generate(request)
        if not parts:
            yield AnswerEvent("delta", fallback.text)
        answer = Answer(fallback.text, sources, _EXTRACTIVE.name, fallback.model, degraded=True, error=exc.code)
    answer.retrieval_ms = retrieval.took_ms
    answer.generation_ms = (time.perf_counter() - gen_started) * 1000
    answer.latency_ms = (time.perf_counter() - started) * 1000
    yield AnswerEvent("done", answer)
