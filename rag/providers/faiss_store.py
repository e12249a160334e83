"""FAISS vector store: exact inner-product search over chunk vectors, persisted in one directory.

Layout: ``index.faiss`` (an ``IndexIDMap2(IndexFlatIP(d))`` keyed by chunk id), ``chunks.json``
(per-id metadata, column-wise, with each chunk's workspace) and ``meta.json`` (embedder,
dimension, the database it was built from, version, count), each replaced atomically,
``meta.json`` last. Processes coordinate through an ``flock`` on ``.lock`` (writers exclusive,
loaders shared) and a shared version board: every write saves then bumps the board, and every read
first reloads if the board moved since this process last looked and the files changed since it
loaded them.

An index is refused (``IndexMismatch`` naming ``manage.py reindex``) when it records another
database than the one ``database`` describes, or another embedder than ``embedder``: answers
from it would cite chunks of another knowledge base, or compare vectors of another model. A
new, empty store adopts both; ``reset`` (what ``reindex`` does first) records them anew.

Workspaces (DESIGN §8): one index holds every workspace's vectors, and a query searches only
the ids its scope may read, through an ``IDSelectorBatch`` handed to FAISS (the search itself
skips every other vector, so ``top_k`` counts readable chunks and nothing else is scored). The
map workspace -> ids is rebuilt from ``chunks.json`` on load and memoised per scope until the
next write. One index per workspace was measured against this and not chosen
(``docs/BENCHMARKS.md``, workspace isolation).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
import numpy.typing as npt

from rag.types import RetrievalScope, VectorMatch, Vectors
from utils.exceptions import IndexMismatch, ProviderUnavailable

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.json"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
REINDEX_HINT = "run `python manage.py reindex` to rebuild it from the database"


class VersionBoard(Protocol):
    """A version shared by every process using the store (in the app, a row in the database)."""

    def get(self) -> Hashable | None:
        """The current version, or None if unknown (the store then checks ``meta.json``)."""
        ...

    def bump(self) -> Hashable:
        """Move to a new version and return it."""
        ...


class LocalVersionBoard:
    """In-memory version board: correct within one process only (tests, single-process use)."""

    def __init__(self, start: int = 0) -> None:
        self._value = start
        self._lock = threading.Lock()

    def get(self) -> int | None:
        return self._value

    def bump(self) -> int:
        with self._lock:
            self._value += 1
            return self._value


@dataclass(frozen=True)
class _Chunk:
    document_id: int
    chunk_index: int
    category: str | None
    workspace_id: int | None = None  # None: the shared knowledge base

    def as_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "category": self.category,
        }
        if self.workspace_id is not None:  # absent: the shared base, as in Pinecone's metadata
            metadata["workspace_id"] = self.workspace_id
        return metadata


def _chunk_from_metadata(item: dict[str, Any]) -> _Chunk:
    try:
        category, workspace = item.get("category"), item.get("workspace_id")
        return _Chunk(
            int(item["document_id"]),
            int(item["chunk_index"]),
            None if category is None else str(category),
            None if workspace is None else int(workspace),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"chunk metadata needs integer document_id and chunk_index, got {item!r}") from exc


_NOT_LOADED = object()


class FaissVectorStore:
    """Vectors keyed by chunk id in a local FAISS index; see the module docstring for the protocol."""

    name = "faiss"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        version_board: VersionBoard,
        search_threads: int | None = None,
        database: Callable[[], Mapping[str, str]] | None = None,
        embedder: Callable[[], tuple[str, int]] | None = None,
    ) -> None:
        """``database`` and ``embedder`` tell which database and embedder this process uses; an
        index recording others is refused. Without them (a store used on its own) nothing is checked."""
        self.directory = Path(directory)
        # OpenMP's thread count is a per-thread setting: a request thread of a threaded server
        # starts with one OpenMP thread per core whatever the main thread set, so it is set on
        # every search (a plain store of an int).
        self._search_threads = search_threads
        self._board = version_board
        self._database_of_process = database
        self._embedder_of_process = embedder
        self._expected: tuple[dict[str, str] | None, tuple[str, int] | None] | None = None
        self._database: dict[str, str] | None = None  # the fingerprint the loaded index records
        self._lock = threading.RLock()
        self._index: faiss.IndexIDMap2 | None = None
        self._embedder_name: str | None = None
        self._dimension: int | None = None
        self._chunks: dict[int, _Chunk] = {}
        self._filter_cache: dict[tuple[str, Any], npt.NDArray[np.int64]] = {}
        self._disk_version = 0
        self._seen_board: object = _NOT_LOADED
        self._meta_stamp: object = _NOT_LOADED

    # -- public API ------------------------------------------------------------------------

    def ensure_compatible(self, *, embedder_name: str, dimension: int) -> None:
        """Raise ``IndexMismatch`` if another embedder built the index; a new store adopts this one."""
        with self._lock:
            self._refresh()
            if self._embedder_name is None:
                self._write(lambda: self._adopt(embedder_name, dimension))
            self._check_embedder(embedder_name, dimension)

    def upsert(self, ids: Sequence[int], vectors: Vectors, metadata: Sequence[dict[str, Any]]) -> None:
        """Add or replace vectors (an existing id is replaced), then save and bump the version."""
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or not len(ids) == matrix.shape[0] == len(metadata):
            raise ValueError(f"{len(ids)} ids, vectors of shape {matrix.shape} and {len(metadata)} metadata")
        chunks = [_chunk_from_metadata(item) for item in metadata]
        if not ids:
            return
        self._write(lambda: self._apply_upsert([int(i) for i in ids], matrix, chunks))

    def query(
        self,
        vector: Vectors,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        scope: RetrievalScope = RetrievalScope(),
    ) -> list[VectorMatch]:
        """The ``top_k`` most similar chunks that ``scope`` may read, optionally only those matching
        ``filter``; the other vectors are excluded inside the search."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            self._refresh()
            index = self._index
            if index is None or index.ntotal == 0 or top_k <= 0:
                return []
            self._check_dimension(query.shape[1])
            params: faiss.SearchParameters | None = None
            limit = index.ntotal
            allowed = self._ids_allowed(scope, filter)
            if allowed is not None:
                if not allowed.size:
                    return []
                params, limit = faiss.SearchParameters(), int(allowed.size)
                params.sel = faiss.IDSelectorBatch(allowed)
            if self._search_threads:
                faiss.omp_set_num_threads(self._search_threads)
            scores, labels = index.search(query, min(top_k, limit), params=params)
            return [
                VectorMatch(id=int(label), score=float(score), metadata=self._chunks[int(label)].as_metadata())
                for score, label in zip(scores[0], labels[0], strict=True)
                if label != -1 and int(label) in self._chunks
            ]

    def delete(self, ids: Sequence[int], *, workspace_id: int | None = None) -> None:
        """Remove these chunk ids (unknown ids are ignored). Chunk ids are unique across workspaces
        in one index, so ``workspace_id`` is not needed to find them."""
        if ids:
            self._write(lambda: self._apply_delete([int(i) for i in ids]))

    def reset(self, *, embedder_name: str, dimension: int) -> None:
        """Remove every vector and record the embedder that will fill the store next."""
        self._write(lambda: self._adopt(embedder_name, dimension, force=True), from_disk=False)

    def count(self) -> int:
        """Number of vectors, as of the latest version on disk."""
        with self._lock:
            self._refresh()
            return 0 if self._index is None else int(self._index.ntotal)

    # -- freshness and coordination ----------------------------------------------------------

    def _refresh(self) -> None:
        """Reload from disk if another process (or instance) wrote since we last loaded."""
        board = self._board.get()
        if board is not None and board == self._seen_board:
            return
        # The board moved (or is unknown: then the files themselves decide). Reload only if the
        # files changed since we loaded them: this process's own writes are already in memory.
        if self._stat_meta() != self._meta_stamp or self._version_on_disk() != self._disk_version:
            self._reload_shared()
        # Record the version seen *before* loading: a write racing with the load only causes one
        # more reload later, never a missed one. A failed load records nothing: it is retried.
        self._seen_board = _NOT_LOADED if board is None else board

    def _expectations(self) -> tuple[dict[str, str] | None, tuple[str, int] | None]:
        """The database and embedder this process uses, asked once (before taking the file lock)."""
        if self._expected is None:
            database = dict(self._database_of_process()) if self._database_of_process else None
            embedder = self._embedder_of_process() if self._embedder_of_process else None
            self._expected = (database, embedder)
        return self._expected

    def _reload_shared(self) -> None:
        self._expectations()
        with self._file_lock(exclusive=False):
            self._load()

    def _write(self, mutate: Callable[[], bool], *, from_disk: bool = True) -> None:
        """Apply ``mutate`` to the latest on-disk state under the exclusive lock; save if it changed.

        ``from_disk=False`` (reset) skips loading, so that a damaged or foreign index can still be
        replaced.
        """
        with self._lock:
            self._expectations()
            with self._file_lock(exclusive=True):
                # meta.json is replaced on every save, so its identity changes with every write.
                if from_disk and (self._meta_stamp is _NOT_LOADED or self._stat_meta() != self._meta_stamp):
                    self._load()
                try:
                    if not mutate():
                        return
                    self._filter_cache = {}
                    self._save()
                except BaseException:
                    # Memory may now differ from disk: make the next access reload.
                    self._meta_stamp = self._seen_board = _NOT_LOADED
                    raise
            disk_version = self._disk_version
        # Bumped outside both locks: a database board may wait for another transaction's row
        # lock, and that transaction may be waiting for these locks to write its own vectors.
        bumped = self._board.bump()
        with self._lock:
            if self._disk_version == disk_version:  # no other thread wrote in between
                self._seen_board = bumped

    @contextmanager
    def _file_lock(self, *, exclusive: bool) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / LOCK_FILE, "a+b")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise ProviderUnavailable(
                f"Cannot use the FAISS index directory {self.directory}: {exc}", provider=self.name
            ) from exc
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _stat_meta(self) -> object:
        try:
            st = (self.directory / META_FILE).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    # -- mutations (called by _write with the state loaded and both locks held) -------------

    def _adopt(self, embedder_name: str, dimension: int, *, force: bool = False) -> bool:
        if self._embedder_name is not None and not force:
            return False  # another process recorded an embedder first; the caller checks it
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._embedder_name, self._dimension, self._chunks = embedder_name, dimension, {}
        self._database = self._expectations()[0]
        return True

    def _apply_upsert(self, ids: list[int], matrix: Vectors, chunks: list[_Chunk]) -> bool:
        if self._index is None:
            raise IndexMismatch(
                f"The FAISS index in {self.directory} records no embedder yet: call ensure_compatible() "
                f"or {REINDEX_HINT}.",
                provider=self.name,
            )
        self._check_dimension(matrix.shape[1])
        last = {chunk_id: position for position, chunk_id in enumerate(ids)}  # the last duplicate wins
        unique_ids = np.fromiter(last.keys(), dtype=np.int64, count=len(last))
        positions = list(last.values())
        existing = unique_ids[[int(i) in self._chunks for i in unique_ids]]
        if existing.size:
            self._index.remove_ids(faiss.IDSelectorBatch(existing))
        self._index.add_with_ids(matrix[positions], unique_ids)
        for chunk_id, position in last.items():
            self._chunks[chunk_id] = chunks[position]
        return True

    def _apply_delete(self, ids: list[int]) -> bool:
        present = sorted({i for i in ids if i in self._chunks})
        if self._index is None or not present:
            return False
        self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(present, dtype=np.int64)))
        for chunk_id in present:
            del self._chunks[chunk_id]
        return True

    # -- checks ------------------------------------------------------------------------------

    def _check_embedder(self, embedder_name: str, dimension: int) -> None:
        if (self._embedder_name, self._dimension) != (embedder_name, dimension):
            raise IndexMismatch(
                f"The FAISS index in {self.directory} was built by {self._embedder_name} "
                f"({self._dimension} dimensions) but the configured embedder is {embedder_name} "
                f"({dimension} dimensions): {REINDEX_HINT}.",
                provider=self.name,
            )

    def _check_owner(self, meta: dict[str, Any]) -> None:
        """Refuse an index built from another database or by another embedder than this process uses."""
        expected, embedder = self._expectations()
        if expected is not None:
            recorded = meta.get("database")
            if recorded != expected:
                if isinstance(recorded, dict):
                    logger.warning("FAISS index %s belongs to %s, not %s", self.directory, recorded, expected)
                    origin = f"another database (id {str(recorded.get('database_id'))[:8]}…)"
                else:
                    origin = "an unrecorded database (it predates database ids)"
                raise IndexMismatch(
                    f"The FAISS index in {self.directory} was built from {origin}, not from this one "
                    f"(id {expected.get('database_id', '')[:8]}…): {REINDEX_HINT}.",
                    provider=self.name,
                )
        if embedder is not None:
            name, dimension = embedder
            if (meta.get("embedder_name"), meta.get("dimension")) != (name, dimension):
                raise IndexMismatch(
                    f"The FAISS index in {self.directory} was built by {meta.get('embedder_name')} "
                    f"({meta.get('dimension')} dimensions) but the configured embedder is {name} "
                    f"({dimension} dimensions): {REINDEX_HINT}.",
                    provider=self.name,
                )

    def _check_dimension(self, dimension: int) -> None:
        if dimension != self._dimension:
            raise IndexMismatch(
                f"Vectors of {dimension} dimensions do not fit the FAISS index in {self.directory} "
                f"({self._dimension} dimensions, built by {self._embedder_name}): {REINDEX_HINT}.",
                provider=self.name,
            )

    def _ids_allowed(self, scope: RetrievalScope, filter: dict[str, Any] | None) -> npt.NDArray[np.int64] | None:
        """The ids a search may score (sorted), or None when that is every vector (no selector needed)."""
        readable = self._ids_in_scope(scope)
        if filter:
            matched = self._ids_matching(filter)
            return matched if readable is None else np.intersect1d(readable, matched, assume_unique=True)
        return readable

    def _ids_in_scope(self, scope: RetrievalScope) -> npt.NDArray[np.int64] | None:
        """The ids of the chunks ``scope`` may read, memoised until the state changes; None if all."""
        key = ("scope", (scope.workspace_id, scope.include_shared))
        cached = self._filter_cache.get(key)
        if cached is None:
            wanted: set[int | None] = set()
            if scope.workspace_id is not None:
                wanted.add(int(scope.workspace_id))
            if scope.include_shared:
                wanted.add(None)
            cached = np.fromiter(
                (i for i, chunk in self._chunks.items() if chunk.workspace_id in wanted), dtype=np.int64
            )
            cached.sort()
            self._filter_cache[key] = cached
        # Reading everything (no workspace exists yet): today's unfiltered search, at today's cost.
        return None if cached.size == len(self._chunks) else cached

    def _ids_matching(self, filter: dict[str, Any]) -> npt.NDArray[np.int64]:
        """Ids whose metadata equals every ``filter`` item, memoised until the state changes."""
        unknown = set(filter) - {"category", "document_id"}
        if unknown:
            raise ValueError(f"unsupported filter keys: {sorted(unknown)}")
        matched: npt.NDArray[np.int64] | None = None
        for key, value in sorted(filter.items()):
            wanted = (key, int(value) if key == "document_id" else value)
            ids = self._filter_cache.get(wanted)
            if ids is None:
                ids = np.fromiter(
                    (i for i, chunk in self._chunks.items() if getattr(chunk, key) == wanted[1]), dtype=np.int64
                )
                ids.sort()
                self._filter_cache[wanted] = ids
            matched = ids if matched is None else np.intersect1d(matched, ids, assume_unique=True)
        return np.empty(0, dtype=np.int64) if matched is None else matched

    # -- persistence (callers hold the file lock) --------------------------------------------

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.directory / META_FILE).read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IndexMismatch(
                f"{self.directory / META_FILE} is unreadable: {REINDEX_HINT}.", provider=self.name
            ) from exc
        if not isinstance(meta, dict):
            raise IndexMismatch(
                f"{self.directory / META_FILE} is not a JSON object: {REINDEX_HINT}.", provider=self.name
            )
        return meta

    def _version_on_disk(self) -> int:
        """The saved version, or 0 if unreadable: versions only ever grow, even across a reset."""
        try:
            return int(self._read_meta().get("version", 0))
        except (IndexMismatch, TypeError, ValueError):
            return 0

    def _load(self) -> None:
        self._filter_cache = {}
        stamp, meta = self._stat_meta(), self._read_meta()
        if not meta:
            self._index, self._embedder_name, self._dimension, self._chunks = None, None, None, {}
            self._database, self._disk_version, self._meta_stamp = None, 0, stamp
            return
        self._check_owner(meta)
        try:
            index = faiss.read_index(str(self.directory / INDEX_FILE))
            columns = json.loads((self.directory / CHUNKS_FILE).read_bytes())
            # An index saved before workspaces existed holds the shared base only.
            workspaces = columns.get("workspace_ids") or [None] * len(columns["ids"])
            chunks = {
                int(chunk_id): _Chunk(int(doc), int(position), category, None if ws is None else int(ws))
                for chunk_id, doc, position, category, ws in zip(
                    columns["ids"],
                    columns["document_ids"],
                    columns["chunk_indexes"],
                    columns["categories"],
                    workspaces,
                    strict=True,
                )
            }
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise IndexMismatch(
                f"The FAISS index in {self.directory} is unreadable: {REINDEX_HINT}.", provider=self.name
            ) from exc
        if not isinstance(index, faiss.IndexIDMap2) or not index.ntotal == len(chunks) == meta.get("count"):
            raise IndexMismatch(
                f"The FAISS index files in {self.directory} disagree (an interrupted write?): {REINDEX_HINT}.",
                provider=self.name,
            )
        self._index, self._chunks = index, chunks
        self._embedder_name, self._dimension = str(meta["embedder_name"]), int(meta["dimension"])
        self._database = meta.get("database")
        self._disk_version, self._meta_stamp = int(meta.get("version", 0)), stamp
        logger.debug("Loaded FAISS index %s: version %d, %d vectors", self.directory, self._disk_version, len(chunks))

    def _save(self) -> None:
        index = self._index
        if index is None:  # every mutation that reports a change leaves an index
            raise RuntimeError("nothing to save")
        version = max(self._disk_version, self._version_on_disk()) + 1
        ids = list(self._chunks)
        columns = {
            "ids": ids,
            "document_ids": [self._chunks[i].document_id for i in ids],
            "chunk_indexes": [self._chunks[i].chunk_index for i in ids],
            "categories": [self._chunks[i].category for i in ids],
            "workspace_ids": [self._chunks[i].workspace_id for i in ids],
        }
        meta = {
            "format": FORMAT_VERSION,
            "embedder_name": self._embedder_name,
            "dimension": self._dimension,
            "database": self._database,
            "version": version,
            "count": int(index.ntotal),
        }
        try:
            self._replace(INDEX_FILE, lambda path: faiss.write_index(index, str(path)))
            self._replace(CHUNKS_FILE, lambda path: path.write_bytes(json.dumps(columns).encode()))
            self._replace(META_FILE, lambda path: path.write_bytes(json.dumps(meta, indent=1).encode()))
            self._fsync_directory()
        except (OSError, RuntimeError) as exc:
            raise ProviderUnavailable(
                f"Could not save the FAISS index in {self.directory}: {exc}", provider=self.name
            ) from exc
        self._disk_version, self._meta_stamp = version, self._stat_meta()

    def _replace(self, filename: str, write: Callable[[Path], object]) -> None:
        """Write to a temporary file in the same directory, fsync it, then rename over ``filename``."""
        handle, temp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".tmp", dir=self.directory)
        os.close(handle)
        temp = Path(temp_name)
        try:
            write(temp)
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temp, self.directory / filename)
        except BaseException:
            with suppress(FileNotFoundError):
                temp.unlink()
            raise

    def _fsync_directory(self) -> None:
        """Make the renames durable too."""
        handle = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
