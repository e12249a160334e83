"""Pinecone as the vector store, over the official ``pinecone`` SDK's REST data plane (no gRPC).

Vector ids are the chunk ids as strings; metadata is ``{document_id, chunk_index, category,
workspace_id}``.

Workspaces (DESIGN §8) live in namespaces, Pinecone's own multitenancy pattern: the shared
knowledge base in the configured namespace (``PINECONE_NAMESPACE``, default ""), workspace 7 in
``ws-7`` (or ``<namespace>-ws-7``). A write goes to the namespace of its metadata's workspace, a
delete to the one its caller names, and a query asks only the namespaces its scope may read (two
at most, merged by score with the SDK's ``query_namespaces``), so another workspace's vectors
are never searched. One embedder record covers the shared namespace and its workspaces'.

Which embedder built the vectors is recorded in a reserved namespace, ``__rag_meta__``, as one
record per data namespace whose metadata holds ``embedder_name`` and ``dimension``. Kept out of
the data namespace, it never shows up in query results (so ``top_k`` and filters need no special
case) and ``count`` is the namespace's own vector count. The index's dimension, fixed when the
index is created, is checked as well (``describe_index_stats().dimension``): two embedders can
share a dimension, so the dimension alone cannot tell them apart.

The same record names the database the namespace was built from (``database_id``, drawn at the
database's first migrate, with its engine and name), when the store is told which one this
process uses (``database``). ``ensure_compatible`` (every ingest) refuses a namespace built from
another database, and each process checks the record once, at its first query, so that a
namespace filled from another database is refused instead of answered from. A record written
before databases were recorded names none: it is claimed by the next ``ensure_compatible``
rather than refused, because re-embedding a Pinecone namespace costs money; point two
deployments at different namespaces (``PINECONE_NAMESPACE``).

Retries: the SDK's data-plane REST client retries on its own (3 retries, backoff up to 60 s,
a process-wide retry budget per host) and, unlike the control plane, takes no ``retry_config``.
We switch those retries off and retry 429, 5xx, timeouts and connection errors under the
providers' one retry policy (``rag.providers.http.RetryPolicy``): exponential backoff inside
``budget_s``, so a call ends within about ``budget_s + timeout_s``.
Every failure leaves as a typed ``ProviderError`` with ``provider="pinecone"``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import numpy as np
from pinecone import (
    ApiError,
    Index,
    NotFoundError,
    Pinecone,
    PineconeConnectionError,
    PineconeTimeoutError,
    RateLimitError,
    ResponseParsingError,
    RetryConfig,
    ServiceError,
)

from rag.providers.http import MAX_RESPONSE_BYTES, ByteLimitedTransport, CallStats, ResponseTooLarge, RetryPolicy
from rag.types import RetrievalScope, VectorMatch, Vectors
from utils.exceptions import (
    IndexMismatch,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

PROVIDER = "pinecone"
META_NAMESPACE = "__rag_meta__"
DEFAULT_NAMESPACE = "__default__"  # how the API names the namespace "" in stats
UPSERT_BATCH = 100
DELETE_BATCH = 1000  # Pinecone's limit of ids per delete request
MAX_TOP_K = 10_000
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_INT_METADATA = ("document_id", "chunk_index", "workspace_id")  # Pinecone hands every number back as a float

_FAILURES = (ApiError, PineconeTimeoutError, PineconeConnectionError, ResponseParsingError, ResponseTooLarge)
T = TypeVar("T")


class PineconeVectorStore:
    """A ``VectorStore`` in one namespace of one Pinecone index."""

    name = "pinecone"

    def __init__(
        self,
        api_key: str,
        index_name: str = "",
        host: str | None = None,
        namespace: str = "",
        timeout_s: float = 10.0,
        *,
        budget_s: float = 10.0,
        control_host: str | None = None,
        max_attempts: int = 4,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        database: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("pinecone: an API key is required")
        if not index_name and not host:
            raise ValueError("pinecone: an index name or an index host is required")
        self.index_name = index_name
        self.namespace = namespace
        self._host = host
        self._retry = RetryPolicy(
            provider=PROVIDER,
            budget_s=budget_s,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._max_response_bytes = max_response_bytes
        self._api_key = api_key
        # No network here: the control plane is only asked for the host on first use.
        self._pc = Pinecone(
            api_key=api_key, host=control_host, timeout=timeout_s, retry_config=RetryConfig(max_retries=0)
        )
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._database_of_process = database
        self._owner_checked = False  # the record's database, checked once per process at the first query

    # --- VectorStore -----------------------------------------------------------------------

    def ensure_compatible(self, *, embedder_name: str, dimension: int) -> None:
        """Raise ``IndexMismatch`` unless this namespace was built by this embedder (or is empty)."""
        stats = self._stats()
        self._check_index(stats, embedder_name, dimension)
        recorded, database_id = self._record()
        expected_id = self._database().get("database_id")  # None when the store was not told
        if recorded == (embedder_name, dimension) and expected_id in (None, database_id):
            return
        if self._namespace_count(stats) == 0 or (recorded == (embedder_name, dimension) and database_id is None):
            # An empty namespace is ours to claim; so is one whose record predates database ids.
            self._record_embedder(embedder_name, dimension)
            return
        if recorded == (embedder_name, dimension):
            raise self._foreign(database_id)
        if recorded is None:
            built_by = "an unknown embedder (no record of it)"
        else:
            built_by = f"{recorded[0]} ({recorded[1]} dimensions)"
        raise IndexMismatch(
            f"pinecone: namespace {self._namespace_label()} of index {self._index_label()} was built by "
            f"{built_by}, but the configured embedder is {embedder_name} ({dimension} dimensions): "
            "run `manage.py reindex`",
            provider=PROVIDER,
        )

    def upsert(self, ids: Sequence[int], vectors: Vectors, metadata: Sequence[dict[str, Any]]) -> None:
        """Write vectors in batches of 100; an existing id is overwritten."""
        if len(ids) == 0 and len(metadata) == 0:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if len(ids) != len(metadata) or matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise ValueError("upsert needs one 2-d vector row and one metadata dict per id")
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for chunk_id, row, meta in zip(ids, matrix, metadata, strict=True):
            record = {"id": str(int(chunk_id)), "values": row.tolist(), "metadata": _clean_metadata(meta)}
            by_namespace.setdefault(self.namespace_for(_workspace_of(meta)), []).append(record)
        index = self._data_plane()
        for namespace, records in by_namespace.items():
            for start in range(0, len(records), UPSERT_BATCH):
                batch = records[start : start + UPSERT_BATCH]
                response = self._call("upsert", partial(index.upsert, vectors=batch, namespace=namespace))
                if response.upserted_count != len(batch):
                    raise self._bad("upsert", f"{response.upserted_count} of {len(batch)} vectors were written")
        logger.debug("pinecone: upserted %d vectors in %d namespace(s)", len(ids), len(by_namespace))

    def query(
        self,
        vector: Vectors,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        scope: RetrievalScope = RetrievalScope(),
    ) -> list[VectorMatch]:
        """The ``top_k`` nearest chunks of the namespaces ``scope`` may read, best first; ``filter``
        like ``{"category": "FAQ"}``."""
        namespaces = self.namespaces_of(scope)
        if top_k < 1 or not namespaces:
            return []
        if not self._owner_checked and self._database_of_process is not None:
            self._check_owner()
        values = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        index = self._data_plane()
        top, flt = min(top_k, MAX_TOP_K), pinecone_filter(filter)
        query: Callable[..., Any]
        if len(namespaces) == 1:
            query = partial(
                index.query, vector=values, top_k=top, filter=flt, namespace=namespaces[0], include_metadata=True
            )
        else:
            # One request per namespace, run concurrently by the SDK and merged into one top-k.
            # Higher is better for both metrics the index may use (``_check_index``), so merging
            # by cosine orders dot products right too.
            query = partial(
                index.query_namespaces,
                vector=values,
                top_k=top,
                filter=flt,
                namespaces=namespaces,
                metric="cosine",
                include_metadata=True,
            )
        response: Any = self._call("query", query)
        return _valid_matches(response.matches, top_k)

    def delete(self, ids: Sequence[int], *, workspace_id: int | None = None) -> None:
        """Remove these chunks' vectors from ``workspace_id``'s namespace; ids not stored are ignored."""
        keys = [str(int(chunk_id)) for chunk_id in ids]
        if not keys:
            return
        index = self._data_plane()
        namespace = self.namespace_for(workspace_id)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            self._call("delete", partial(index.delete, ids=batch, namespace=namespace))

    def reset(self, *, embedder_name: str, dimension: int) -> None:
        """Empty the shared namespace and every workspace's, and record the embedder that will fill them."""
        stats = self._stats()
        self._check_index(stats, embedder_name, dimension)
        index = self._data_plane()
        namespaces = [self.namespace, *(name for name in self._own_namespaces(stats) if self._is_workspace(name))]

        def delete_all(namespace: str, timeout: float) -> None:
            try:
                index.delete(delete_all=True, namespace=namespace, timeout=timeout)
            except NotFoundError:
                logger.debug("pinecone: namespace %r did not exist yet", namespace or DEFAULT_NAMESPACE)

        for namespace in namespaces:
            self._call("reset", partial(delete_all, namespace))
        self._record_embedder(embedder_name, dimension)
        logger.info("pinecone: namespace %s and its workspaces reset for %s", self._namespace_label(), embedder_name)

    def count(self) -> int:
        """Vectors in the shared namespace and every workspace's together (Pinecone's stats lag
        writes by a few seconds)."""
        return self._namespace_count(self._stats())

    # --- namespaces ------------------------------------------------------------------------

    def namespace_for(self, workspace_id: int | None) -> str:
        """Where the vectors of ``workspace_id`` live (None: the shared knowledge base)."""
        if workspace_id is None:
            return self.namespace
        return f"{self._workspace_prefix()}{int(workspace_id)}"

    def namespaces_of(self, scope: RetrievalScope) -> list[str]:
        """The namespaces a search in ``scope`` may read: its workspace's, then the shared one."""
        names = [] if scope.workspace_id is None else [self.namespace_for(scope.workspace_id)]
        if scope.include_shared:
            names.append(self.namespace)
        return names

    def _workspace_prefix(self) -> str:
        return f"{self.namespace}-ws-" if self.namespace else "ws-"

    def _is_workspace(self, name: str) -> bool:
        suffix = name.removeprefix(self._workspace_prefix())
        return suffix != name and suffix.isdigit()

    def _own_namespaces(self, stats: Any) -> list[str]:
        """The namespaces of this deployment that the stats list: the shared one and its workspaces'."""
        shared = {self.namespace} if self.namespace else {"", DEFAULT_NAMESPACE}
        return [name for name in stats.namespaces if name in shared or self._is_workspace(name)]

    # --- the embedder record ---------------------------------------------------------------

    def _check_index(self, stats: Any, embedder_name: str, dimension: int) -> None:
        """The index itself must fit: the embedder's dimension, and scores that are cosines."""
        if stats.metric and stats.metric not in ("cosine", "dotproduct"):
            raise IndexMismatch(
                f"pinecone: index {self._index_label()} uses the {stats.metric} metric; scores must be cosine "
                "similarities, so use a cosine index, then run `manage.py reindex`",
                provider=PROVIDER,
            )
        index_dimension = stats.dimension
        if index_dimension is not None and index_dimension != dimension:
            raise IndexMismatch(
                f"pinecone: index {self._index_label()} has {index_dimension} dimensions, but the configured "
                f"embedder {embedder_name} produces {dimension}; an index's dimension cannot change, so use an "
                f"index of dimension {dimension}, then run `manage.py reindex`",
                provider=PROVIDER,
            )

    def _meta_id(self) -> str:
        return self.namespace or DEFAULT_NAMESPACE

    def _record(self) -> tuple[tuple[str, int] | None, str | None]:
        """The recorded embedder (name, dimension) and database id, each None if not recorded."""
        index = self._data_plane()
        response = self._call(
            "fetch embedder record", partial(index.fetch, ids=[self._meta_id()], namespace=META_NAMESPACE)
        )
        record = response.vectors.get(self._meta_id())
        metadata = (record.metadata or {}) if record is not None else {}
        name, dimension = metadata.get("embedder_name"), metadata.get("dimension")
        database_id = metadata.get("database_id")
        embedder = (name, int(dimension)) if isinstance(name, str) and isinstance(dimension, (int, float)) else None
        return embedder, database_id if isinstance(database_id, str) else None

    def _database(self) -> dict[str, str]:
        return dict(self._database_of_process()) if self._database_of_process is not None else {}

    def _database_metadata(self) -> dict[str, str]:
        database = self._database()
        if not database:
            return {}
        return {
            "database_id": database["database_id"],
            "database_engine": database["engine"],
            "database_name": database["name"],
        }

    def _check_owner(self) -> None:
        """Refuse a namespace whose record names another database than this process uses."""
        database_id = self._record()[1]
        if database_id is not None and database_id != self._database().get("database_id"):
            raise self._foreign(database_id)
        self._owner_checked = True

    def _foreign(self, database_id: str | None) -> IndexMismatch:
        return IndexMismatch(
            f"pinecone: namespace {self._namespace_label()} of index {self._index_label()} was built from "
            f"another database (id {database_id}), not from this one (id {self._database().get('database_id')}): "
            "run `manage.py reindex`, or give this deployment its own PINECONE_NAMESPACE",
            provider=PROVIDER,
        )

    def _record_embedder(self, embedder_name: str, dimension: int) -> None:
        # A record must carry a vector of the index's dimension, and a cosine index refuses an
        # all-zero one: a unit vector along the first axis will do.
        values = [1.0] + [0.0] * (dimension - 1)
        record = {
            "id": self._meta_id(),
            "values": values,
            "metadata": {
                "embedder_name": embedder_name,
                "dimension": dimension,
                "namespace": self._meta_id(),
                **self._database_metadata(),
            },
        }
        index = self._data_plane()
        self._call("record embedder", partial(index.upsert, vectors=[record], namespace=META_NAMESPACE))

    # --- plumbing --------------------------------------------------------------------------

    def _data_plane(self) -> Index:
        with self._index_lock:
            if self._index is None:
                host = self._host or self._call("describe index", self._describe_host)
                index = self._pc.index(host=host)
                _harden_transport(index, self._max_response_bytes)
                self._index = index
            return self._index

    def _describe_host(self, timeout: float) -> str:
        # The control-plane client already has this timeout; it takes none per call.
        description = self._pc.describe_index(self.index_name)
        if not description.host:
            raise ProviderUnavailable(
                f"pinecone: index {self.index_name!r} has no host yet (still initialising?)", provider=PROVIDER
            )
        return str(description.host)

    def _stats(self) -> Any:
        index = self._data_plane()
        return self._call("describe_index_stats", index.describe_index_stats)

    def _namespace_count(self, stats: Any) -> int:
        # "" and "__default__" name the same namespace: count it once.
        names = set(self._own_namespaces(stats))
        if {"", DEFAULT_NAMESPACE} <= names:
            names.discard("")
        return sum(int(stats.namespaces[name].vector_count) for name in names)

    def _call(self, operation: str, request: Callable[..., T]) -> T:
        """Run ``request(timeout=...)`` (one SDK call) under the retry policy; translate its failure."""
        started = time.monotonic()
        stats = CallStats()
        try:
            return self._retry.call(
                lambda timeout: request(timeout=timeout), retryable=_retryable, retry_after=_retry_after, stats=stats
            )
        except _FAILURES as exc:
            error = self._translate(exc, operation, stats.attempts)
            logger.warning("%s (after %.2f s)", error.detail, time.monotonic() - started)
            raise error from exc

    def _translate(self, exc: Exception, operation: str, attempts: int) -> ProviderError:
        error = _classify(exc, f"pinecone: {operation}", attempts)
        if self._api_key in error.detail:
            error = type(error)(error.detail.replace(self._api_key, "[redacted]"), provider=PROVIDER)
        return error

    def _bad(self, operation: str, reason: str) -> ProviderBadResponse:
        return ProviderBadResponse(f"pinecone: {operation}: {reason}", provider=PROVIDER)

    def _index_label(self) -> str:
        return repr(self.index_name or self._host)

    def _namespace_label(self) -> str:
        return repr(self.namespace or DEFAULT_NAMESPACE)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (PineconeTimeoutError, PineconeConnectionError)) or (
        isinstance(exc, ApiError) and exc.status_code in RETRYABLE_STATUSES
    )


def _retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitError) else None


def _classify(exc: Exception, where: str, attempts: int) -> ProviderError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, ResponseTooLarge):
        return ProviderBadResponse(f"{where}: {exc}", provider=PROVIDER)
    if isinstance(exc, RateLimitError):
        return ProviderRateLimited(f"{where}: rate limited (HTTP 429){tries}", provider=PROVIDER)
    if isinstance(exc, ServiceError):
        return ProviderUnavailable(f"{where}: server error (HTTP {exc.status_code}){tries}", provider=PROVIDER)
    if isinstance(exc, PineconeTimeoutError):
        return ProviderTimeout(f"{where}: no answer in time{tries}", provider=PROVIDER)
    if isinstance(exc, PineconeConnectionError):
        return ProviderUnavailable(f"{where}: connection failed{tries} ({exc.message})", provider=PROVIDER)
    if isinstance(exc, ApiError):
        message = " ".join(str(exc.message).split())[:200]
        if exc.status_code == 400 and "dimension" in message.lower():
            return IndexMismatch(f"{where}: {message}; run `manage.py reindex`", provider=PROVIDER)
        return ProviderBadResponse(f"{where}: request rejected (HTTP {exc.status_code}): {message}", provider=PROVIDER)
    return ProviderBadResponse(f"{where}: invalid or unexpected JSON in the response", provider=PROVIDER)


def _harden_transport(index: Index, max_response_bytes: int) -> None:
    """Give the data plane's transport a no-retry policy (``_call`` does the retrying) and a cap on
    response bodies.

    The SDK exposes no public setting for either (``Pinecone(retry_config=...)`` stops at the
    control plane), so this reaches into its transport; the fault tests notice if that changes.
    """
    transport: Any = getattr(getattr(getattr(index, "_http", None), "_client", None), "_transport", None)
    if transport is not None and isinstance(getattr(transport, "_config", None), RetryConfig):
        transport._config = RetryConfig(max_retries=0)
    else:
        logger.warning("pinecone: could not switch off the SDK's own retries; calls may outlast the time budget")
    inner = getattr(transport, "_transport", None)
    if isinstance(inner, httpx.BaseTransport) and not isinstance(inner, ByteLimitedTransport):
        transport._transport = ByteLimitedTransport(inner, max_bytes=max_response_bytes)
    else:
        logger.warning("pinecone: could not cap the size of responses")


def _valid_matches(raw: Sequence[Any], top_k: int) -> list[VectorMatch]:
    """The matches we can use, best first: chunk ids, finite cosine scores, each id once, ``top_k`` at most.

    The store's answer is input like any other: a non-finite score would pass the minimum-score
    test and break JSON rendering, and a longer list than asked for would cost work downstream.
    """
    matches: list[VectorMatch] = []
    seen: set[int] = set()
    for match in raw:
        try:
            chunk_id, score = int(match.id), float(match.score)
        except (TypeError, ValueError):
            logger.warning("pinecone: ignoring a match with id %.40r and score %.40r", match.id, match.score)
            continue
        if not math.isfinite(score) or chunk_id in seen:
            logger.warning("pinecone: ignoring a repeated match or one with a non-finite score (id %d)", chunk_id)
            continue
        seen.add(chunk_id)
        score = min(1.0, max(-1.0, score))  # a cosine; anything outside is an error of the store
        matches.append(VectorMatch(id=chunk_id, score=score, metadata=_restore(match.metadata)))
    matches.sort(key=lambda m: -m.score)
    return matches[:top_k]


def pinecone_filter(flt: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"category": "FAQ"}`` -> ``{"category": {"$eq": "FAQ"}}``; lists become ``$in``."""
    if not flt:
        return None
    translated: dict[str, Any] = {}
    for key, value in flt.items():
        if key.startswith("$") or isinstance(value, dict):
            translated[key] = value  # already in Pinecone's operator form
        elif isinstance(value, (list, tuple, set, frozenset)):
            translated[key] = {"$in": list(value)}
        else:
            translated[key] = {"$eq": value}
    return translated


def _workspace_of(metadata: dict[str, Any]) -> int | None:
    workspace = metadata.get("workspace_id")
    return None if workspace is None else int(workspace)


def _clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready metadata: numpy scalars unwrapped, None dropped (Pinecone rejects null)."""
    cleaned = {}
    for key, value in metadata.items():
        if value is None:
            continue
        cleaned[key] = value.item() if isinstance(value, np.generic) else value
    return cleaned


def _restore(metadata: dict[str, Any] | None) -> dict[str, Any]:
    restored = dict(metadata or {})
    for key in _INT_METADATA:
        value = restored.get(key)
        if isinstance(value, float) and value.is_integer():
            restored[key] = int(value)
    return restored
