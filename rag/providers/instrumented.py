"""Thin wrappers that time provider calls and count their failures (``utils.metrics``).

The factory wraps every provider it builds, so the services that call providers need no metrics
code. Each wrapper satisfies the same protocol as what it wraps and passes any other attribute
through. Retries are counted where each retry loop lives (inside the provider modules), since
only they see an attempt fail and another begin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import Histogram

from rag.providers.base import Embedder, Generator, VectorStore
from rag.types import AnswerRequest, Generation, GenerationDelta, RetrievalScope, VectorMatch, Vectors
from utils.metrics import GENERATION_DURATION, RETRIEVAL_DURATION, record_provider_error

T = TypeVar("T")


@contextmanager
def _observed(histogram: Histogram, provider: str, operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        record_provider_error(provider, exc)
        raise
    finally:
        histogram.labels(provider, operation).observe(time.perf_counter() - started)


class _Passthrough:
    """Anything not instrumented (attributes, helpers such as ``directory``) comes from the provider."""

    _inner: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class InstrumentedEmbedder(_Passthrough):
    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self._provider = inner.name.split(":", 1)[0]  # "local:all-MiniLM-L6-v2-int8" -> "local"

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        with _observed(RETRIEVAL_DURATION, self._provider, "embed_documents"):
            return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        with _observed(RETRIEVAL_DURATION, self._provider, "embed_query"):
            return self._inner.embed_query(text)

    def embed_with_spans(self, texts: Sequence[str], spans: Any, fallbacks: Any) -> Any:
        """The local model's chunks-with-units call (ingestion), timed as embedding documents."""
        with _observed(RETRIEVAL_DURATION, self._provider, "embed_documents"):
            return self._inner.embed_with_spans(texts, spans, fallbacks)


class InstrumentedVectorStore(_Passthrough):
    def __init__(self, inner: VectorStore) -> None:
        self._inner = inner
        self.name = inner.name

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        with _observed(RETRIEVAL_DURATION, self.name, operation):
            return call()

    def ensure_compatible(self, *, embedder_name: str, dimension: int) -> None:
        self._call(
            "ensure_compatible", lambda: self._inner.ensure_compatible(embedder_name=embedder_name, dimension=dimension)
        )

    def upsert(self, ids: Sequence[int], vectors: Vectors, metadata: Sequence[dict[str, Any]]) -> None:
        self._call("upsert", lambda: self._inner.upsert(ids, vectors, metadata))

    def query(
        self,
        vector: Vectors,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        scope: RetrievalScope = RetrievalScope(),
    ) -> list[VectorMatch]:
        return self._call("query", lambda: self._inner.query(vector, top_k=top_k, filter=filter, scope=scope))

    def delete(self, ids: Sequence[int], *, workspace_id: int | None = None) -> None:
        self._call("delete", lambda: self._inner.delete(ids, workspace_id=workspace_id))

    def reset(self, *, embedder_name: str, dimension: int) -> None:
        self._call("reset", lambda: self._inner.reset(embedder_name=embedder_name, dimension=dimension))

    def count(self) -> int:
        return self._call("count", self._inner.count)


class InstrumentedGenerator(_Passthrough):
    def __init__(self, inner: Generator) -> None:
        self._inner = inner
        self.name = inner.name
        self.model = inner.model

    def generate(self, request: AnswerRequest) -> Generation:
        with _observed(GENERATION_DURATION, self.name, "generate"):
            return self._inner.generate(request)

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]:
        """The provider's stream, timed from the call to the last delta; a mid-stream failure counts."""
        with _observed(GENERATION_DURATION, self.name, "stream"):
            yield from self._inner.stream(request)


def instrumented(wrap: Callable[[Any], T]) -> Callable[[Callable[[], Any]], Callable[[], T]]:
    """Decorates a factory builder so that what it builds comes back wrapped by ``wrap``."""

    def decorate(build: Callable[[], Any]) -> Callable[[], T]:
        def built() -> T:
            return wrap(build())

        built.__name__ = getattr(build, "__name__", "built")
        built.__doc__ = build.__doc__
        return built

    return decorate
