"""Answers: retrieve, build the request, call the generator; on provider failure fall back to
the extractive answer marked ``degraded``. Retrieval failures propagate: without documents there
is no grounded answer to give."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator as Generator_
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from django.db.models import Q

from rag.answering.citations import ANSWERED, finalize
from rag.models import Chunk
from rag.providers.base import Generator
from rag.providers.extractive import ExtractiveGenerator, stream_text
from rag.providers.factory import get_embedder, get_generator, get_passage_embedder
from rag.providers.local_embedder import DIMENSION as _DIMENSION
from rag.services.retrieval import Retrieval, retrieve
from rag.types import (
    AnswerRequest,
    ContextDocument,
    ContextPassage,
    Generation,
    RetrievalScope,
    Turn,
    Usage,
    Vectors,
)
from utils.exceptions import ProviderError
from utils.metrics import record_degraded

logger = logging.getLogger(__name__)

_EXTRACTIVE = ExtractiveGenerator()
NEARBY_CHUNKS = 2  # chunks either side of a retrieved one that the extractive answerer reads too


@dataclass
class Answer:
    text: str
    sources: list[dict[str, Any]]  # the documents the answer cites, in citation order
    provider: str
    model: str
    usage: dict[str, int] | None = None
    degraded: bool = False
    retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    latency_ms: float = 0.0
    error: str = ""  # why the answer is degraded, for logs and metadata; never shown as the answer
    answer_status: str = ANSWERED
    abstain_reason: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {
            "answer_status": self.answer_status,
            "abstain_reason": self.abstain_reason,
            "citations": self.citations,
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


def _unit_vectors(chunk_ids: list[int]) -> dict[int, Vectors]:
    rows = Chunk.objects.filter(id__in=chunk_ids, unit_vectors__isnull=False).values_list("id", "unit_vectors")
    return {chunk_id: _unpacked(raw) for chunk_id, raw in rows}


def _unpacked(raw: bytes | memoryview | None) -> Vectors:
    return np.frombuffer(bytes(raw or b""), dtype=np.float16).reshape(-1, _DIMENSION).astype(np.float32)


def _request(question: str, retrieval: Retrieval, history: Sequence[Turn]) -> AnswerRequest:
    """The generator's request: the documents with their passages and what the answerer needs."""
    vectors = _unit_vectors([p.chunk_id for d in retrieval.documents for p in d.passages])
    context = [
        ContextDocument(
            number=n,
            document_id=d.document_id,
            title=d.title,
            text=d.text,
            score=d.score,
            similarity=d.similarity,
            passages=tuple(
                ContextPassage(p.chunk_id, p.text, p.index, p.similarity, vectors.get(p.chunk_id)) for p in d.passages
            ),
        )
        for n, d in enumerate(retrieval.documents, start=1)
    ]
    question_vector = retrieval.query_vector if get_passage_embedder() is get_embedder() else None
    return AnswerRequest(
        question=question,
        documents=context,
        history=tuple(history),
        question_vector=question_vector,
        searched=retrieval.searched,
        unknown_terms=retrieval.unknown_terms,
    )


def _whole_documents(documents: Sequence[ContextDocument]) -> list[ContextDocument]:
    """Each document with its chunks near the retrieved ones too: the sentence that answers is
    often a section or two away from the one that matched the question (a price table under the
    plan's description). Bounded by ``NEARBY_CHUNKS`` either side, so a long document stays cheap."""
    if not any(d.passages for d in documents):
        return list(documents)  # an empty filter would read every chunk
    near = Q()
    for d in documents:
        for p in d.passages:
            near |= Q(document_id=d.document_id, index__range=(p.index - NEARBY_CHUNKS, p.index + NEARBY_CHUNKS))
    seen = {p.chunk_id for d in documents for p in d.passages}
    rows = Chunk.objects.filter(near).exclude(id__in=seen).order_by("document_id", "index")
    extra: dict[int, list[ContextPassage]] = {}
    fields = ("id", "document_id", "index", "text", "unit_vectors")
    for chunk_id, document_id, index, text, raw in rows.values_list(*fields):
        vectors = _unpacked(raw) if raw is not None else None
        extra.setdefault(document_id, []).append(ContextPassage(chunk_id, text, index, 0.0, vectors))
    return [replace(d, passages=(*d.passages, *extra.get(d.document_id, ()))) for d in documents]


def _for_extractive(request: AnswerRequest) -> AnswerRequest:
    """``request`` as the extractive answerer reads it: the retrieved documents' nearby chunks
    added, and the question embedded by the local model if retrieval used another one."""
    if not request.documents:
        return request
    request = replace(request, documents=_whole_documents(request.documents))
    if request.question_vector is not None:
        return request
    return replace(request, question_vector=get_passage_embedder().embed_query(request.question))


def _contract(answer: Answer, generation: Generation, retrieval: Retrieval, request: AnswerRequest) -> Answer:
    """Apply the answer contract: verified citations, cited sources only, abstention."""
    final = finalize(
        generation.text, request.documents, citations=generation.citations, abstain_reason=generation.abstain_reason
    )
    answer.text, answer.answer_status, answer.abstain_reason = final.text, final.status, final.abstain_reason
    answer.citations = final.citations
    answer.sources = [retrieval.documents[number - 1].as_source() for number in final.cited]
    return answer


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


def _generate(generator: Generator, request: AnswerRequest) -> tuple[Generation, AnswerRequest]:
    """The configured generator's answer, and the request it read (its citations are checked against it)."""
    if generator.name == _EXTRACTIVE.name:
        request = _for_extractive(request)
    return generator.generate(request), request


def _fallback(request: AnswerRequest) -> tuple[Generation, AnswerRequest]:
    request = _for_extractive(request)
    return _EXTRACTIVE.generate(request), request


def answer_question(*, question: str, history: Sequence[Turn] = (), scope: RetrievalScope = RetrievalScope()) -> Answer:
    """The answer to ``question`` from the documents ``scope`` may read (default: the shared base)."""
    started = time.perf_counter()
    retrieval = retrieve(query=question, history=history, scope=scope)
    request = _request(question, retrieval, history)
    generator = _generator_for(request)
    gen_started = time.perf_counter()
    try:
        generation, request = _generate(generator, request)
        answer = Answer(generation.text, [], generator.name, generation.model, _usage(generation.usage))
    except ProviderError as exc:
        logger.warning("Generator %s failed (%s); answering extractively", generator.name, exc.code)
        record_degraded(generator.name)
        generation, request = _fallback(request)
        answer = Answer(generation.text, [], _EXTRACTIVE.name, generation.model, degraded=True, error=exc.code)
    _contract(answer, generation, retrieval, request)
    answer.retrieval_ms = retrieval.took_ms
    answer.generation_ms = (time.perf_counter() - gen_started) * 1000
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


def answer_stream(
    *, question: str, history: Sequence[Turn] = (), scope: RetrievalScope = RetrievalScope()
) -> Iterator[AnswerEvent]:
    """Yields ``sources``, then ``delta`` events, then ``done`` with the complete ``Answer``.

    The extractive answer is complete before the first event, so its ``sources`` are the cited
    documents. A model's answer streams as it is written: ``sources`` then lists the retrieved
    documents, and the ``done`` answer, with its markers checked and only the cited sources, is
    the authoritative (stored) one. If the generator fails mid-stream, the answer is completed
    extractively and marked degraded.
    """
    started = time.perf_counter()
    retrieval = retrieve(query=question, history=history, scope=scope)
    request = _request(question, retrieval, history)
    generator = _generator_for(request)
    gen_started = time.perf_counter()
    if generator.name == _EXTRACTIVE.name:
        # Complete before it streams (a few milliseconds), so its first event lists the cited sources.
        generation, request = _generate(generator, request)
        answer = _contract(
            Answer(generation.text, [], generator.name, generation.model), generation, retrieval, request
        )
        yield AnswerEvent("sources", answer.sources)
        for group in stream_text(answer.text):
            yield AnswerEvent("delta", group)
    else:
        yield AnswerEvent("sources", [d.as_source() for d in retrieval.documents])
        answer = yield from _stream_model(generator, request, retrieval)
    answer.retrieval_ms = retrieval.took_ms
    answer.generation_ms = (time.perf_counter() - gen_started) * 1000
    answer.latency_ms = (time.perf_counter() - started) * 1000
    yield AnswerEvent("done", answer)


def _stream_model(
    generator: Generator, request: AnswerRequest, retrieval: Retrieval
) -> Generator_[AnswerEvent, None, Answer]:
    parts: list[str] = []
    usage: Usage | None = None
    try:
        for delta in generator.stream(request):
            usage = delta.usage or usage
            if delta.text:
                parts.append(delta.text)
                yield AnswerEvent("delta", delta.text)
        generation = Generation(text="".join(parts), model=generator.model, usage=usage)
        answer = Answer(generation.text, [], generator.name, generator.model, _usage(usage))
    except ProviderError as exc:
        logger.warning("Generator %s failed mid-stream (%s); answering extractively", generator.name, exc.code)
        record_degraded(generator.name)
        generation, request = _fallback(request)
        answer = Answer(generation.text, [], _EXTRACTIVE.name, generation.model, degraded=True, error=exc.code)
        _contract(answer, generation, retrieval, request)
        if not parts:
            yield AnswerEvent("delta", answer.text)
        return answer
    return _contract(answer, generation, retrieval, request)
