"""Retrieval: correct the query's spelling against the corpus, embed it (cached), search chunks
densely and lexically, fuse the rankings (a weighted sum of scores normalised per ranking,
``rag.lexical.score_fusion``; reciprocal rank fusion with ``RAG_FUSION_METHOD=rrf``), group by
document and keep the best documents whose similarity reaches ``RAG_MIN_SCORE``.

Hybrid retrieval also ranks whole documents: each dense ranking of chunks comes with a ranking of
the documents by their centroid (the mean of their chunks' vectors, ``Document.centroid``), and a
document's score is its best chunk's fused score plus its centroid votes (the centroid's cosine
normalised over the best ``RAG_CANDIDATES`` documents as a chunk's is over its ranking's
candidates, with the dense ranking's weight; under RRF, its reciprocal rank with the same k). A page
about the question's topic gains; a page that mentions everything once (a changelog, release
notes) does not, since its centroid is about nothing in particular. A short release-notes page is
about its few features all the same, and its section announcing one matches a question about it
as well as the guide does, so release notes and changelogs are ranked after the other documents
unless the question is about versions or changes (``rag.release_notes``).

Every search runs in a ``RetrievalScope`` (DESIGN §8): the vector store searches only the chunks
the scope may read, the lexical index and its spelling corrector are built from those chunks
alone, and the database read of the winners is scoped too. Query embeddings are shared between
scopes (keyed by model and text: they carry nothing of any workspace); rankings never are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Sum
from redis.exceptions import RedisError

from rag.conversation import new_topic
from rag.lexical import LexicalIndex, min_max, reciprocal_rank_fusion, score_fusion
from rag.models import Chunk, Document, readable_in
from rag.providers.factory import get_embedder, get_vector_store
from rag.providers.factory import warm_up as warm_up_providers
from rag.release_notes import asks_about_changes, is_release_notes
from rag.types import RetrievalScope, Turn, Vectors
from rag.versioning import KNOWLEDGE_BASE_VERSION

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 300
CONTEXT_CHUNKS_PER_DOCUMENT = 2
FOLLOW_UP_MAX_WORDS = 12
FUSION_MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: its id (what a citation names) and its text, heading path first."""

    chunk_id: int
    index: int
    text: str
    similarity: float = 0.0  # cosine to the query, 0 if the dense ranking did not reach it


@dataclass(frozen=True)
class RetrievedDocument:
    document_id: int
    title: str
    category: str
    source: str
    score: float  # relevance in 0-1: the best chunk's fused score against the ideal (see retrieve)
    snippet: str
    text: str  # the best chunks, for the generator
    similarity: float = 0.0  # best cosine similarity of the document's chunks to the query
    passages: tuple[Passage, ...] = ()  # the chunks behind ``text``: best first, then the opening

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
    # The question's embedding as answers should read it: a short follow-up's is combined with
    # the previous question's, like its follow-up ranking (None in lexical mode).
    query_vector: Vectors | None = None
    searched: str = ""  # the query as searched: spelling corrected against the knowledge base
    unknown_terms: tuple[str, ...] = ()  # its content terms no chunk contains (empty in dense mode)


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


Ids = tuple[int, int, int]  # (count, largest id, sum of ids)
Contents = tuple[Ids, Ids]  # a scope's chunks, and its documents that have a centroid


@dataclass(frozen=True)
class DocumentVectors:
    """The centroids of the documents a scope reads (``Document.centroid``), one unit row each."""

    ids: npt.NDArray[np.int64]
    matrix: Vectors
    rows: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {int(document_id): row for row, document_id in enumerate(self.ids.tolist())})

    def ranking(self, vector: Vectors) -> DocumentRanking | None:
        """The documents ranked by the cosine of their centroid to ``vector``; None when there are
        none or they are of another dimension than ``vector``."""
        query = np.asarray(vector, dtype=np.float32)
        if not self.ids.size or self.matrix.shape[1] != query.shape[0]:
            return None
        similarities = self.matrix @ query
        return DocumentRanking(self.rows, similarities, np.sort(similarities))


@dataclass(frozen=True)
class DocumentRanking:
    """One ranking of a scope's documents by centroid. Ranks are read for the few documents that
    are candidates (a search in the sorted similarities), not written out for thousands."""

    rows: dict[int, int]
    similarities: npt.NDArray[np.float32]
    ascending: npt.NDArray[np.float32]

    def rank(self, document_id: int) -> int | None:
        """1 for the closest centroid (documents of equal similarity share a rank); None for a
        document without one."""
        row = self.rows.get(document_id)
        if row is None:
            return None
        above = self.ascending.size - int(np.searchsorted(self.ascending, self.similarities[row], side="right"))
        return above + 1

    def share(self, document_id: int, depth: int) -> float | None:
        """The document's centroid similarity normalised over the best ``depth`` documents (the
        closest 1, the ``depth``-th 0, those below it 0), as ``score_fusion`` normalises a chunk's
        score over its ranking's candidates; None for a document without a centroid."""
        row = self.rows.get(document_id)
        if row is None:
            return None
        last = self.ascending[max(self.ascending.size - depth, 0)]
        return min_max(float(self.similarities[row]), float(self.ascending[-1]), float(last))


@dataclass(frozen=True)
class _Built:
    """A scope's lexical index and document centroids, what they were built from, and the
    version they were last known current at."""

    index: LexicalIndex | None
    documents: DocumentVectors | None
    contents: Contents
    version: object


def _ids_of(found: dict[str, Any]) -> Ids:
    # int(): PostgreSQL sums a bigint column as numeric (a Decimal here).
    return int(found["count"] or 0), int(found["largest"] or 0), int(found["total"] or 0)


def _contents_of(ids: Sequence[int]) -> Ids:
    return len(ids), max(ids, default=0), sum(ids)


def _scope_contents(scope: RetrievalScope) -> Contents:
    """What ``scope`` reads now, told by its chunk ids and the ids of its documents that have a
    centroid. Chunks are never edited in place (a changed document gets new chunks) and ids are
    never reused, so any write to the scope's documents changes the count, the largest id or the
    sum of its chunks, and a write elsewhere changes none of them; ``reindex``, which keeps the
    chunks, shows as documents gaining a centroid."""
    ids = {"count": Count("id"), "largest": Max("id"), "total": Sum("id")}
    chunks = Chunk.objects.filter(readable_in(scope, via="document__")).aggregate(**ids)
    centred = Document.objects.filter(readable_in(scope)).exclude(centroid_model="").aggregate(**ids)
    return _ids_of(chunks), _ids_of(centred)


def _document_vectors(scope: RetrievalScope, with_chunks: int) -> tuple[DocumentVectors | None, Ids]:
    """The centroids of the documents ``scope`` reads, if this process's embedder made one for
    each of the ``with_chunks`` documents that have chunks, and the ids of every document in the
    scope with a centroid (of any embedder: ``_scope_contents``).

    All or none: votes for only some documents (those ingested since an upgrade, say) would favour
    them over the rest, so until ``manage.py reindex`` gives every document its centroid, documents
    are ranked by their chunks alone.
    """
    rows = list(
        Document.objects.filter(readable_in(scope))
        .exclude(centroid_model="")
        .values_list("id", "centroid", "centroid_model")
    )
    model = get_embedder().name
    mine = [(document_id, bytes(centroid)) for document_id, centroid, name in rows if name == model and centroid]
    sizes = {len(centroid) for _, centroid in mine}
    vectors = None
    if len(mine) < with_chunks:
        logger.warning(
            "%d of %d documents have no centroid from %s: documents are ranked by their chunks alone "
            "until `manage.py reindex` gives them one",
            with_chunks - len(mine),
            with_chunks,
            model,
        )
    elif len(sizes) == 1:
        matrix = np.frombuffer(b"".join(centroid for _, centroid in mine), dtype=np.float32).reshape(len(mine), -1)
        vectors = DocumentVectors(np.asarray([i for i, _ in mine], dtype=np.int64), matrix)
    return vectors, _contents_of([row[0] for row in rows])


class _LexicalHolder:
    """This process's lexical indexes and document centroids, one of each per scope, kept while
    the chunks their scope reads stay the same.

    One index per scope rather than one filtered index: BM25's term statistics, the vocabulary
    that tells unknown terms (and so abstentions) and the spelling corrector's words all come from
    text the scope may read, so nothing of another workspace shapes a ranking, a correction or an
    answer. The most recently used ``MAX_SCOPES`` are kept.

    When the shared version moves (any write to the knowledge base, by any process), a scope's
    next search compares what the scope reads now with what its index was built from (one
    aggregate query) and rebuilds only if that changed: a document uploaded to one workspace does
    not make every worker rebuild the shared base's index, or any other workspace's (about 1.2 s
    of CPU each at 10k chunks: ``bench/bench_lexical_build.py``).
    """

    MAX_SCOPES = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: OrderedDict[RetrievalScope, _Built] = OrderedDict()

    def get(self, scope: RetrievalScope = RetrievalScope()) -> LexicalIndex | None:
        """The BM25 index of what ``scope`` reads (None if it reads no chunk)."""
        return self.built(scope).index

    def documents(self, scope: RetrievalScope = RetrievalScope()) -> DocumentVectors | None:
        """The centroids of the documents ``scope`` reads (None if none has one of this embedder)."""
        return self.built(scope).documents

    def built(self, scope: RetrievalScope) -> _Built:
        scope = _effective_scope(scope)
        version = KNOWLEDGE_BASE_VERSION.get()
        with self._lock:
            built = self._indexes.get(scope)
            if built is not None:
                self._indexes.move_to_end(scope)
                if built.version == version:
                    return built
        if built is not None and _scope_contents(scope) == built.contents:
            built = replace(built, version=version)
            self._keep(scope, built)
            return built
        # Built outside the lock, so that searches in other scopes do not wait for this build
        # (tens of ms with the shipped shared base). Tagged with the ids it was built from, so a
        # write landing meanwhile is seen at the next look; two threads may both build one scope
        # once, which costs time, not correctness.
        rows = list(Chunk.objects.filter(readable_in(scope, via="document__")).values_list("id", "text", "document_id"))
        ids = [row[0] for row in rows]
        texts = [row[1] for row in rows]
        index = LexicalIndex.build(ids, texts, heading_weight=settings.RAG_HEADING_WEIGHT) if rows else None
        documents, centred = _document_vectors(scope, len({row[2] for row in rows}))
        built = _Built(index, documents, (_contents_of(ids), centred), version)
        self._keep(scope, built)
        return built

    def _keep(self, scope: RetrievalScope, built: _Built) -> None:
        with self._lock:
            self._indexes[scope] = built
            self._indexes.move_to_end(scope)
            if len(self._indexes) > self.MAX_SCOPES:
                self._indexes.popitem(last=False)

    def reset(self) -> None:
        with self._lock:
            self._indexes.clear()


def _effective_scope(scope: RetrievalScope) -> RetrievalScope:
    """The scope that reads the same text as ``scope``: a workspace without documents reads what
    the shared base alone reads. Most workspaces (every new personal one) have none, and they all
    share the one shared-base index instead of building a copy each (seconds at 10k chunks)."""
    if scope.workspace_id is None or Document.objects.filter(workspace_id=scope.workspace_id).exists():
        return scope
    return RetrievalScope(workspace_id=None, include_shared=scope.include_shared)


lexical_index = _LexicalHolder()


def warm_up() -> None:
    """Load this process's models and indexes (see ``factory.warm_up``), and the lexical index."""
    warm_up_providers()
    if settings.RAG_FUSION != "dense":
        lexical_index.get()


def _earlier_questions(query: str, history: Sequence[Turn]) -> list[str]:
    """The user's earlier questions in this session, oldest first; none if the last one is this one."""
    previous = [turn.content for turn in history if turn.role == "user"]
    if not previous or previous[-1].strip() == query.strip():
        return []
    return previous


# How many of the user's questions a chain of follow-ups may reach back to (the previous one
# included): "our release script runs setup.py sdist", "is that going away?", "what do we run
# instead?" reads the first too, since the second leaned on it.
CHAIN_TURNS = 3


def _previous_in_context(
    previous: str, vector: Vectors, older: list[str], rankings: _Rankings, use_cache: bool
) -> tuple[str, Vectors, float]:
    """The previous question as it was understood, its vector, and that vector's best cosine: a
    follow-up of a follow-up reads the question its predecessor leaned on (by the same rule as
    ``_leans_on_conversation``), from the ``older`` questions (oldest first), up to
    ``CHAIN_TURNS`` questions back; a question with a new-topic cue, or a long one, stands alone
    and ends the chain. Without this, "what do we run instead?" after "is that going away?" was
    looked up with nothing to go on."""
    best = rankings.best_cosine(vector)
    text, combined = previous, vector
    turn, turn_best = previous, best
    for question in reversed(older[-(CHAIN_TURNS - 1) :]):
        if len(turn.split()) > FOLLOW_UP_MAX_WORDS:
            break
        cued = new_topic(question)
        older_text = cued or question
        older_vector = embed_queries([older_text], use_cache=use_cache)[0]
        older_best = rankings.best_cosine(older_vector)
        if not _leans_on_conversation(turn, turn_best, older_best):
            break
        combined = combine_with_previous(combined, older_vector, len(text.split()), len(older_text.split()))
        text = f"{older_text}\n{text}"
        if cued is not None:
            break
        turn, turn_best = older_text, older_best
    return text, combined, best if combined is vector else rankings.best_cosine(combined)


# The weight of the conversation of a question that stands alone: a half-weight second opinion.
STANDALONE_CONTEXT_WEIGHT = 0.5


def _follow_up_weight(query: str, *, matches_alone: bool) -> float:
    """The weight of the question read with the previous one. A short question is understood
    through its conversation ("and how long is it valid?"), unless it matches the knowledge base
    on its own (``matches_alone``: it does not lean on the conversation, see
    ``_leans_on_conversation``), when it may be on a new topic and stands alone, as a long
    question does: its conversation is a half-weight second opinion.

    Under reciprocal rank fusion (``RAG_FUSION_METHOD=rrf``) such a short question's conversation
    counts as much as its own rankings (1), as before session 17. Fused by normalised scores, it
    counts half: at 1 the previous topic's best pages, which the question read with its
    conversation ranks first, outscored the new topic's more often (dev topic switches, README
    "Retrieval quality")."""
    if len(query.split()) > FOLLOW_UP_MAX_WORDS:
        return STANDALONE_CONTEXT_WEIGHT
    if not matches_alone:
        return settings.RAG_FOLLOW_UP_WEIGHT
    if settings.RAG_FUSION_METHOD == "rrf":
        return min(settings.RAG_FOLLOW_UP_WEIGHT, 1.0)
    return min(settings.RAG_FOLLOW_UP_WEIGHT, STANDALONE_CONTEXT_WEIGHT)


# The weight of a follow-up's own rankings next to its conversation's (chosen on the dev splits,
# see README "Retrieval quality"): "which formats?" alone matches any page about formats.
FOLLOW_UP_OWN_WEIGHT = 0.25
# A short question whose best match is below this share of the previous question's best match is
# incomplete without it ("and for A3?"); one that matches about as well as the previous question
# did is on a topic of its own ("How do I unlock a bike?") and is not dragged back to the old one.
FOLLOW_UP_MATCH_RATIO = 0.7


def _leans_on_conversation(query: str, own_best: float, previous_best: float) -> bool:
    """Whether a question is a follow-up that needs the previous question to be understood."""
    return len(query.split()) <= FOLLOW_UP_MAX_WORDS and own_best < FOLLOW_UP_MATCH_RATIO * previous_best


def combine_with_previous(first: Vectors, second: Vectors, first_words: int, second_words: int) -> Vectors:
    """The direction between two unit vectors: the follow-up read together with its context.

    The embedder mean-pools token vectors, so the sum of the two questions' embeddings is close to
    the embedding of their concatenation, and it costs no model run: the previous question's vector
    is in the cache since it was asked.
    """
    total = first_words * np.asarray(first, dtype=np.float32) + second_words * np.asarray(second, dtype=np.float32)
    norm = float(np.linalg.norm(total))
    return total / norm if norm else total


@dataclass
class _Rankings:
    """The ranked chunks (id, score) of each retriever, their fusion weights, and each chunk's best
    cosine; and the document rankings by centroid that go with the dense ones."""

    scope: RetrievalScope = RetrievalScope()
    documents: DocumentVectors | None = None
    candidates: int = 50  # chunks per ranking, and the depth a centroid's similarity is normalised over
    lists: list[list[tuple[int, float]]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    cosine: dict[int, float] = field(default_factory=dict)
    # (document ranking, index in ``lists`` of the dense ranking it goes with: they share its weight)
    document_rankings: list[tuple[DocumentRanking, int]] = field(default_factory=list)

    def add_dense(self, vector: Vectors, candidates: int, weight: float) -> float:
        """Add the dense ranking of ``vector`` (and its document ranking); returns its best cosine
        (0 if nothing matched)."""
        matches = get_vector_store().query(vector, top_k=candidates, scope=self.scope)
        self.lists.append([(m.id, m.score) for m in matches])
        self.weights.append(weight)
        for match in matches:
            self.cosine[match.id] = max(self.cosine.get(match.id, 0.0), match.score)
        ranking = self.documents.ranking(vector) if self.documents is not None else None
        if ranking is not None and settings.RAG_DOCUMENT_WEIGHT > 0:
            self.document_rankings.append((ranking, len(self.lists) - 1))
        return max((match.score for match in matches), default=0.0)

    def fuse(self) -> list[tuple[int, float]]:
        """The chunks by fused score, best first (``RAG_FUSION_METHOD``)."""
        if settings.RAG_FUSION_METHOD == "rrf":
            ids = [[chunk_id for chunk_id, _ in ranking] for ranking in self.lists]
            return reciprocal_rank_fusion(ids, k=settings.RAG_RRF_K, weights=self.weights)
        return score_fusion(self.lists, weights=self.weights)

    def document_fusion(self, document_of: Mapping[int, int]) -> dict[int, float]:
        """Each document's score when the rankings are fused per document (each ranking counting
        its best chunk of it) rather than per chunk; none under RRF."""
        if settings.RAG_FUSION_METHOD == "rrf":
            return {}
        return dict(score_fusion(self.lists, weights=self.weights, group=document_of))

    def _top(self) -> float:
        """What being first in one ranking of weight 1 is worth."""
        return 1.0 / (settings.RAG_RRF_K + 1) if settings.RAG_FUSION_METHOD == "rrf" else 1.0

    def ideal(self) -> float:
        """The best score a document can get: its chunk and its centroid first in every ranking."""
        centroids = sum(self.weights[position] * settings.RAG_DOCUMENT_WEIGHT for _, position in self.document_rankings)
        return (sum(self.weights) + centroids) * self._top() or 1.0

    def centroid_votes(self, document_id: int) -> float:
        """A document's votes from the document rankings: its centroid's normalised similarity
        (its reciprocal rank under RRF), at the weight of the dense ranking each goes with."""
        votes = 0.0
        for ranking, position in self.document_rankings:
            if settings.RAG_FUSION_METHOD == "rrf":
                rank = ranking.rank(document_id)
                vote = None if rank is None else 1.0 / (settings.RAG_RRF_K + rank)
            else:
                vote = ranking.share(document_id, self.candidates)
            if vote is not None:
                votes += self.weights[position] * settings.RAG_DOCUMENT_WEIGHT * vote
        return votes

    def best_cosine(self, vector: Vectors) -> float:
        """The best cosine of ``vector`` to any chunk, without adding a ranking."""
        return max((match.score for match in get_vector_store().query(vector, top_k=1, scope=self.scope)), default=0.0)

    def add_lexical(self, index: LexicalIndex | None, text: str, candidates: int, weight: float) -> None:
        if index is not None:
            self.lists.append(index.search(text, candidates))
            self.weights.append(weight)


def retrieve(
    *,
    query: str,
    history: Sequence[Turn] = (),
    top_k: int | None = None,
    fusion: str | None = None,
    use_cache: bool = True,
    scope: RetrievalScope = RetrievalScope(),
) -> Retrieval:
    """The top documents for ``query`` among those ``scope`` may read (default: the shared base);
    raises a ``ProviderError`` when a provider fails.

    ``fusion``: ``hybrid`` (dense and BM25 rankings fused, ``RAG_FUSION_METHOD``), ``dense`` or
    ``lexical``.
    """
    started = time.perf_counter()
    top_k = top_k or settings.RAG_TOP_K
    fusion = fusion or settings.RAG_FUSION
    if fusion not in FUSION_MODES:
        raise ValueError(f"fusion must be one of {FUSION_MODES}, not {fusion!r}")
    candidates = max(settings.RAG_CANDIDATES, top_k * 4)
    built = lexical_index.built(scope) if fusion != "dense" else None
    index = built.index if built is not None else None
    # Words the knowledge base never uses are corrected against its vocabulary, for both rankings;
    # a cue such as "totally unrelated:" is not searched for, and its question is read alone.
    topic = new_topic(query)
    own = topic or query
    searched = index.speller.correct(own) if index is not None else own
    earlier = _earlier_questions(query, history) if topic is None else []
    previous: str | None = None
    older: list[str] = []  # the questions before the previous one, if it has no new-topic cue
    if earlier:
        cued = new_topic(earlier[-1])
        previous, older = cued or earlier[-1], earlier[:-1] if cued is None else []
    lexical_weight = settings.RAG_LEXICAL_WEIGHT
    rankings = _Rankings(
        scope=scope,
        documents=built.documents if built is not None and fusion == "hybrid" else None,
        candidates=candidates,
    )
    vectors: list[Vectors] = []
    own_best = previous_best = 0.0
    if fusion != "lexical":
        vectors = embed_queries([searched, previous] if previous else [searched], use_cache=use_cache)
        own_best = rankings.add_dense(vectors[0], candidates, 1.0)
        if previous:
            previous, vectors[1], previous_best = _previous_in_context(previous, vectors[1], older, rankings, use_cache)
    rankings.add_lexical(index, searched, candidates, lexical_weight)
    own_lists = len(rankings.lists)
    answer_vector = vectors[0] if vectors else None
    leans = False
    if previous:
        # The question read with the previous one, as a second opinion weighted by how much the
        # question needs its context; a follow-up's own rankings then count for little.
        # Without a dense ranking (lexical mode) whether the question leans is unknown.
        leans = bool(vectors) and _leans_on_conversation(query, own_best, previous_best)
        factor = _follow_up_weight(query, matches_alone=bool(vectors) and not leans)
        if vectors:
            combined = combine_with_previous(vectors[0], vectors[1], len(searched.split()), len(previous.split()))
            rankings.add_dense(combined, candidates, factor)
            if len(query.split()) <= FOLLOW_UP_MAX_WORDS:
                answer_vector = combined
            if leans:
                rankings.weights[:own_lists] = [w * FOLLOW_UP_OWN_WEIGHT for w in rankings.weights[:own_lists]]
        # A follow-up that leans on its conversation is looked up by the conversation's words alone:
        # its own words already ranked (at a quarter), and read again beside the previous question's
        # they would pull towards any page that merely shares them.
        context = previous if leans else f"{previous}\n{searched}"
        rankings.add_lexical(index, context, candidates, factor * lexical_weight)
    fused = rankings.fuse()
    # Release notes come after the other pages unless the conversation asks about versions or
    # changes (rag.release_notes).
    about_changes = asks_about_changes(own) or bool(previous and asks_about_changes(previous))
    documents = _group_by_document(
        fused,
        rankings.cosine,
        top_k,
        rankings.ideal(),
        rankings.centroid_votes,
        # Dense or lexical alone are one kind of ranking (twice for a follow-up): no chunk leads
        # another kind.
        rankings.document_fusion if fusion == "hybrid" else None,
        check_similarity=fusion != "lexical",
        scope=scope,
        release_notes_last=settings.RAG_RELEASE_NOTES_LAST and not about_changes,
    )
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    unknown = tuple(index.unknown_terms(searched)) if index is not None else ()
    return Retrieval(
        query=query,
        documents=documents,
        took_ms=took_ms,
        query_vector=answer_vector,
        searched=searched,
        unknown_terms=unknown,
    )


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


def _chunk_rows(ids: list[int], scope: RetrievalScope) -> dict[int, _ChunkRow]:
    """The candidate chunks that still exist (vectors of deleted chunks drop out here), read in
    ``scope`` as well: the stores already search only the scope, this keeps a row of another
    workspace out even if a store ever failed to."""
    fields = ("id", "document_id", "index", "text", "document__title", "document__category", "document__source")
    # Checked here rather than in SQL: a condition on the joined document made SQLite scan every
    # chunk (72 ms a search at 10k chunks instead of under 1).
    readable: set[int | None] = {scope.workspace_id} if scope.workspace_id is not None else set()
    if scope.include_shared:
        readable.add(None)
    rows = Chunk.objects.filter(id__in=ids).values_list(*fields, "document__workspace_id")
    return {row[0]: _ChunkRow(*row[:-1]) for row in rows if row[-1] in readable}


def _group_by_document(
    fused: list[tuple[int, float]],
    cosine: dict[int, float],
    top_k: int,
    ideal: float,
    centroid_votes: Callable[[int], float],
    document_fusion: Callable[[Mapping[int, int]], dict[int, float]] | None = None,
    *,
    check_similarity: bool,
    scope: RetrievalScope,
    release_notes_last: bool = False,
) -> list[RetrievedDocument]:
    """Documents by their best chunk's fused score plus their centroid votes, with a relevance
    score in 0-1; with ``release_notes_last``, release notes and changelogs after the others.

    A document whose chunks lead different rankings (one chunk first by meaning, another by its
    words) gains ``RAG_DOCUMENT_FUSION`` of what its score fused per document (``document_fusion``)
    adds to its best chunk's: a page both rankings chose passes a chunk that was second in both.
    A document is a candidate when one of its chunks is. ``score`` is its score as a share of the
    ideal one (first in every ranking), so results are ordered by the score they show (a release
    note placed after a page shows at most that page's score). A document whose best cosine
    similarity is under ``RAG_MIN_SCORE`` is not used: lexical overlap alone is not relevance.
    """
    rows = _chunk_rows([chunk_id for chunk_id, _ in fused], scope)
    share = settings.RAG_DOCUMENT_FUSION
    per_document = document_fusion({i: row.document_id for i, row in rows.items()}) if document_fusion and share else {}
    grouped: dict[int, list[_ChunkRow]] = {}
    best_score: dict[int, float] = {}
    for chunk_id, score in fused:
        row = rows.get(chunk_id)
        if row is not None:
            grouped.setdefault(row.document_id, []).append(row)
            if row.document_id not in best_score:
                spread = max(per_document.get(row.document_id, score) - score, 0.0)
                best_score[row.document_id] = score + share * spread + centroid_votes(row.document_id)
    last = (
        {d for d, (head, *_) in grouped.items() if is_release_notes(head.title, head.source, head.category)}
        if release_notes_last
        else set()
    )
    results: list[RetrievedDocument] = []
    # sorted() is stable: a tie keeps the order of the documents' best chunks.
    for document_id in sorted(grouped, key=lambda document_id: (document_id in last, -best_score[document_id])):
        doc_chunks = grouped[document_id]
        similarity = max(cosine.get(c.id, 0.0) for c in doc_chunks)
        if check_similarity and similarity < settings.RAG_MIN_SCORE:
            continue
        best = doc_chunks[:CONTEXT_CHUNKS_PER_DOCUMENT]
        text = "\n\n".join(_strip_title(c.text) for c in sorted(best, key=lambda c: c.index))
        head = best[0]
        score = min(best_score[document_id] / ideal, 1.0)
        if results and document_id in last:
            score = min(score, results[-1].score)
        results.append(
            RetrievedDocument(
                document_id=document_id,
                title=head.title,
                category=head.category,
                source=head.source,
                score=score,
                snippet=_snippet(head.text),
                text=text,
                similarity=similarity,
                passages=tuple(Passage(c.id, c.index, c.text, cosine.get(c.id, 0.0)) for c in best),
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
    leads = {
        document_id: (chunk_id, text)
        for chunk_id, document_id, text in Chunk.objects.filter(document_id__in=missing, index=0).values_list(
            "id", "document_id", "text"
        )
    }
    return [
        replace(
            d,
            text=f"{_strip_title(leads[d.document_id][1])}\n\n{d.text}",
            passages=(*d.passages, Passage(leads[d.document_id][0], 0, leads[d.document_id][1])),
        )
        if d.document_id in leads
        else d
        for d in results
    ]
