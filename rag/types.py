"""The value types of retrieval and answering: what flows between the services, the providers
and the answerers.

Pure data (frozen dataclasses and a numpy alias), imported by every layer; nothing here imports
Django or a provider. The provider interfaces that use them are in ``rag.providers.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# An answer's status, why it abstained, and the text it abstains with (``rag.answering.citations``).
ANSWERED, ABSTAINED = "answered", "abstained"
NO_MATCH, LOW_SUPPORT, MODEL_DECLINED = "no_match", "low_support", "model_declined"
NO_INFORMATION_ANSWER = "I don't have specific information about this topic."


@dataclass(frozen=True)
class RetrievalScope:
    """Which documents a search may read (DESIGN §8): those of one workspace (none: no workspace's)
    and, when ``include_shared``, the shared knowledge base (documents with no workspace).

    The default reads the shared base only: what every caller saw before workspaces existed.
    Stores apply it inside the search, never by filtering results afterwards.
    """

    workspace_id: int | None = None
    include_shared: bool = True


@dataclass(frozen=True)
class VectorMatch:
    id: int  # the Chunk primary key
    score: float  # cosine similarity (inner product of normalised vectors)
    metadata: dict[str, Any] = field(default_factory=dict)


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
