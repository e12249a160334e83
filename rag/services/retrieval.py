"""Retrieval: embed the query (cached), search chunks densely and lexically, fuse the rankings,
group by document and keep the best documents above ``RAG_MIN_SCORE``."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from rag.lexical import LexicalIndex, reciprocal_rank_fusion
from rag.models import Chunk
from rag.providers.base import Turn, Vectors
from rag.providers.factory import get_embedder, get_vector_store
from rag.providers.factory import warm_up as warm_up_providers
from rag.versioning import KNOWLEDGE_BASE_VERSION

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 300
CONTEXT_CHUNKS_PER_DOCUMENT = 2
FOLLOW_UP_MAX_WORDS = 8


@dataclass(frozen=True)
class RetrievedDocument:
    document_id: int
    title: str
    category: str
    source: str
    score: float  # best cosine similarity of the document's chunks to the query
    snippet: str
    text: str  # the best chunks, for the generator

    def as_source(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "title": self.title,
            "category": self.category,
            "source": self.source,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


@dataclass
class Retrieval:
    query: str
    documents: list[RetrievedDocument] = field(default_factory=list)
    took_ms: float = 0.0


def knowledge_base_changed() -> None:
    """Tell every process that the chunks changed: the version moves when this transaction commits."""
    KNOWLEDGE_BASE_VERSION.bump()


def _cache_key(embedder_name: str, text: str) -> str:
    return f"rag:qemb:{embedder_name}:{hashlib.sha256(text.encode()).hexdigest()}"


def embed_queries(texts: Sequence[str], *, use_cache: bool = True) -> list[Vectors]:
    """The embeddings of ``texts``, cached in the shared cache by model and text hash.

    Misses are embedded in one call (a question and its follow-up form cost one model run).
    """
    embedder = get_embedder()
    keys = [_cache_key(embedder.name, text) for text in texts]
    found: dict[str, bytes] = {}
    if use_cache:
        try:
            found = cache.get_many(keys)
        except RedisError:
            found = {}
    missing = [i for i, key in enumerate(keys) if key not in found]
    if len(missing) == 1:
        fresh = [embedder.embed_query(texts[missing[0]])]
    else:
        fresh = list(embedder.embed_documents([texts[i] for i in missing])) if missing else []
    vectors = {i: np.frombuffer(found[key], dtype=np.float32) for i, key in enumerate(keys) if key in found}
    vectors.update(zip(missing, fresh, strict=True))
    if use_cache and missing:
        try:
            cache.set_many(
                {keys[i]: vectors[i].astype(np.float32).tobytes() for i in missing},
                timeout=settings.RAG_EMBED_CACHE_SECONDS,
            )
        except RedisError as exc:
            logger.warning("Query embeddings not cached: %s", exc)
    return [vectors[i] for i in range(len(texts))]


class _LexicalHolder:
    """This process's lexical index, rebuilt from the database when the shared version moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: LexicalIndex | None = None
        self._version: object = None
        self._built = False

    def get(self) -> LexicalIndex | None:
        version = KNOWLEDGE_BASE_VERSION.get()
        if self._built and version == self._version:
            return self._index
        with self._lock:
            if not (self._built and version == self._version):
                rows = list(Chunk.objects.values_list("id", "text"))
                self._index = LexicalIndex.build([r[0] for r in rows], [r[1] for r in rows]) if rows else None
                self._version, self._built = version, True
        return self._index

    def reset(self) -> None:
        with self._lock:
            self._built = False


lexical_index = _LexicalHolder()


def warm_up() -> None:
    """Load this process's models and indexes (see ``factory.warm_up``), and the lexical index."""
    warm_up_providers()
    if settings.RAG_FUSION == "hybrid":
        lexical_index.get()


def _previous_question(query: str, history: Sequence[Turn]) -> str | None:
    """The user's previous question in this session, if it differs from this one."""
    previous = [turn.content for turn in history if turn.role == "user"]
    if not previous or previous[-1].strip() == query.strip():
        return None
    return previous[-1]


def _follow_up_weight(query: str) -> float:
    """Short questions ("and how long is it valid?") lean on the conversation; long ones stand alone."""
    return 1.5 if len(query.split()) <= FOLLOW_UP_MAX_WORDS else 0.5


def _combined(first: Vectors, second: Vectors, first_words: int, second_words: int) -> Vectors:
    """The direction between two unit vectors: the follow-up read together with its context.

    The embedder mean-pools token vectors, so the sum of the two questions' embeddings is close to
    the embedding of their concatenation, and it costs no model run: the previous question's vector
    is in the cache since it was asked.
    """
    total = first_words * np.asarray(first, dtype=np.float32) + second_words * np.asarray(second, dtype=np.float32)
    norm = float(np.linalg.norm(total))
    return total / norm if norm else total


def _rank(query: str, vector: Vectors, candidates: int, fusion: str) -> tuple[list[int], dict[int, float], list[int]]:
    matches = get_vector_store().query(vector, top_k=candidates)
    dense = [m.id for m in matches]
    cosine = {m.id: m.score for m in matches}
    lexical: list[int] = []
    if fusion == "hybrid":
        index = lexical_index.get()
        lexical = [chunk_id for chunk_id, _ in index.search(query, candidates)] if index else []
    return dense, cosine, lexical


def retrieve(
    *,
    query: str,
    history: Sequence[Turn] = (),
    top_k: int | None = None,
    fusion: str | None = None,
    use_cache: bool = True,
) -> Retrieval:
    """The top documents for ``query``; raises a ``ProviderError`` when a provider fails."""
    started = time.perf_counter()
    top_k = top_k or settings.RAG_TOP_K
    fusion = fusion or settings.RAG_FUSION
    candidates = max(settings.RAG_CANDIDATES, top_k * 4)
    previous = _previous_question(query, history)
    vectors = embed_queries([query, previous] if previous else [query], use_cache=use_cache)
    dense, cosine, lexical = _rank(query, vectors[0], candidates, fusion)
    rankings: list[Sequence[int]] = [dense]
    weights = [1.0]
    if lexical:
        rankings.append(lexical)
        weights.append(settings.RAG_LEXICAL_WEIGHT)
    if previous:
        follow_up = f"{previous}\n{query}"
        combined = _combined(vectors[0], vectors[1], len(query.split()), len(previous.split()))
        f_dense, f_cosine, f_lexical = _rank(follow_up, combined, candidates, fusion)
        for chunk_id, score in f_cosine.items():
            cosine[chunk_id] = max(cosine.get(chunk_id, 0.0), score)
        factor = _follow_up_weight(query)
        rankings.append(f_dense)
        weights.append(factor)
        if f_lexical:
            rankings.append(f_lexical)
            weights.append(factor * settings.RAG_LEXICAL_WEIGHT)
    fused = [chunk_id for chunk_id, _ in reciprocal_rank_fusion(rankings, k=settings.RAG_RRF_K, weights=weights)]
    documents = _group_by_document(fused, cosine, top_k)
    return Retrieval(query=query, documents=documents, took_ms=round((time.perf_counter() - started) * 1000, 2))


def _strip_title(text: str) -> str:
    head, sep, body = text.partition("\n\n")
    return body if sep else head


def _snippet(text: str) -> str:
    body = " ".join(_strip_title(text).split())
    if len(body) <= SNIPPET_CHARS:
        return body
    return body[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class _ChunkRow:
    id: int
    document_id: int
    index: int
    text: str
    title: str
    category: str
    source: str


def _chunk_rows(ids: list[int]) -> dict[int, _ChunkRow]:
    """The candidate chunks that still exist (vectors of deleted chunks drop out here)."""
    fields = ("id", "document_id", "index", "text", "document__title", "document__category", "document__source")
    return {row[0]: _ChunkRow(*row) for row in Chunk.objects.filter(id__in=ids).values_list(*fields)}


def _group_by_document(fused: list[int], cosine: dict[int, float], top_k: int) -> list[RetrievedDocument]:
    rows = _chunk_rows(fused)
    grouped: dict[int, list[_ChunkRow]] = {}
    for chunk_id in fused:
        row = rows.get(chunk_id)
        if row is not None:
            grouped.setdefault(row.document_id, []).append(row)
    results = []
    for document_id, doc_chunks in grouped.items():
        score = max(cosine.get(c.id, 0.0) for c in doc_chunks)
        if score < settings.RAG_MIN_SCORE:
            continue
        best = doc_chunks[:CONTEXT_CHUNKS_PER_DOCUMENT]
        text = "\n\n".join(_strip_title(c.text) for c in sorted(best, key=lambda c: c.index))
        head = best[0]
        results.append(
            RetrievedDocument(
                document_id=document_id,
                title=head.title,
                category=head.category,
                source=head.source,
                score=score,
                snippet=_snippet(head.text),
                text=text,
            )
        )
        if len(results) == top_k:
            break
    return _with_lead_paragraphs(results, grouped)


def _with_lead_paragraphs(
    results: list[RetrievedDocument], grouped: dict[int, list[_ChunkRow]]
) -> list[RetrievedDocument]:
    """Give the generator each document's opening chunk too: help articles state the answer first."""
    missing = [d.document_id for d in results if all(c.index != 0 for c in grouped[d.document_id])]
    if not missing:
        return results
    leads = dict(Chunk.objects.filter(document_id__in=missing, index=0).values_list("document_id", "text"))
    return [
        replace(d, text=f"{_strip_title(leads[d.document_id])}\n\n{d.text}") if d.document_id in leads else d
        for d in results
    ]
