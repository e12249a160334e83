"""Provider interfaces: embedders, vector stores and generators.

Each implementation lives in its own module beside this one and is chosen once, from settings,
by the factory in ``rag.providers.factory``. Nothing here imports Django. Implementations raise
the typed errors of ``utils.exceptions`` (``ProviderTimeout``, ``ProviderUnavailable`` …),
translated at the boundary with ``raise ... from exc``; they never return an empty result in
place of a failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors."""

    name: str  # stable identity recorded in the index, e.g. "local:all-MiniLM-L6-v2-int8"
    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), dimension), float32, each row L2-normalised."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Shape (dimension,), float32, L2-normalised."""
        ...


@dataclass(frozen=True)
class VectorMatch:
    id: int  # the Chunk primary key
    score: float  # cosine similarity (inner product of normalised vectors)
    metadata: dict[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    """Vectors keyed by chunk id, with metadata {document_id, chunk_index, category}."""

    name: str

    def ensure_compatible(self, *, embedder_name: str, dimension: int) -> None:
        """Raise ``IndexMismatch`` (naming ``manage.py reindex``) if built by another embedder."""
        ...

    def upsert(self, ids: Sequence[int], vectors: Vectors, metadata: Sequence[dict[str, Any]]) -> None: ...

    def query(self, vector: Vectors, *, top_k: int, filter: dict[str, Any] | None = None) -> list[VectorMatch]: ...

    def delete(self, ids: Sequence[int]) -> None: ...

    def reset(self, *, embedder_name: str, dimension: int) -> None:
        """Remove every vector and record the embedder that will fill the store next."""
        ...

    def count(self) -> int: ...


@dataclass(frozen=True)
class ContextPassage:
    """A retrieved chunk of a document: what a citation points at."""

    chunk_id: int
    text: str  # the chunk's text, heading path first
    index: int = 0  # its position in the document
    similarity: float = 0.0  # cosine similarity to the question (0 if unknown)
    unit_vectors: Vectors | None = None  # embeddings of the chunk's quotable units, if stored


@dataclass(frozen=True)
class ContextDocument:
    """One retrieved document as the generator sees it; ``number`` is its citation marker."""

    number: int
    document_id: int
    title: str
    text: str  # the document's best-matching chunk texts, joined
    score: float
    passages: Sequence[ContextPassage] = ()
    similarity: float = 0.0  # best cosine similarity of its chunks to the question


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    documents: Sequence[ContextDocument]
    history: Sequence[Turn] = ()
    question_vector: Vectors | None = None  # the question's embedding, when retrieval made one
    searched: str = ""  # the question as searched (spelling corrected against the knowledge base)
    unknown_terms: tuple[str, ...] = ()  # its content terms that no document of the knowledge base uses


@dataclass(frozen=True)
class Citation:
    """``[n]`` in an answer's text: document ``n`` of the request, and the text it quotes."""

    n: int
    chunk_id: int
    quote: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    usage: Usage | None = None
    # A generator that knows exactly what each marker quotes says so (the extractive one does);
    # for the others, quotes are found on the server (``rag.answering.citations``).
    citations: tuple[Citation, ...] = ()
    abstain_reason: str | None = None  # set when the generator itself declined to answer


@dataclass(frozen=True)
class GenerationDelta:
    """A piece of a streamed answer; the last one may carry ``usage``."""

    text: str
    usage: Usage | None = None


class Generator(Protocol):
    name: str  # provider: "mistral", "openai", "extractive"
    model: str

    def generate(self, request: AnswerRequest) -> Generation: ...

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]: ...
