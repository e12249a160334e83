"""Provider interfaces: embedders, vector stores and generators.

Each implementation lives in its own module beside this one and is chosen once, from settings,
by the factory in ``rag.providers.factory``. Nothing here imports Django. Implementations raise
the typed errors of ``utils.exceptions`` (``ProviderTimeout``, ``ProviderUnavailable`` …),
translated at the boundary with ``raise ... from exc``; they never return an empty result in
place of a failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from rag.types import AnswerRequest, Generation, GenerationDelta, RetrievalScope, VectorMatch, Vectors


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


class VectorStore(Protocol):
    """Vectors keyed by chunk id, with metadata {document_id, chunk_index, category, workspace_id}.

    ``workspace_id`` (absent or None: the shared knowledge base) decides where a vector lives and
    who may find it: ``query`` searches only what its ``scope`` may read, inside the search
    (DESIGN §8), so ``top_k`` counts readable chunks only and nothing of another workspace is
    ever scored for the caller.
    """

    name: str

    def ensure_compatible(self, *, embedder_name: str, dimension: int) -> None:
        """Raise ``IndexMismatch`` (naming ``manage.py reindex``) if built by another embedder."""
        ...

    def upsert(self, ids: Sequence[int], vectors: Vectors, metadata: Sequence[dict[str, Any]]) -> None: ...

    def query(
        self,
        vector: Vectors,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        scope: RetrievalScope = RetrievalScope(),
    ) -> list[VectorMatch]:
        """The ``top_k`` nearest chunks that ``scope`` may read (default: the shared base only)."""
        ...

    def delete(self, ids: Sequence[int], *, workspace_id: int | None = None) -> None:
        """Remove these chunks' vectors; they belong to ``workspace_id`` (None: the shared base)."""
        ...

    def reset(self, *, embedder_name: str, dimension: int) -> None:
        """Remove every vector and record the embedder that will fill the store next."""
        ...

    def count(self) -> int:
        """Every vector of the store, all workspaces together (health reports only this)."""
        ...


class Generator(Protocol):
    name: str  # provider: "mistral", "openai", "extractive"
    model: str

    def generate(self, request: AnswerRequest) -> Generation: ...

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]: ...
