"""The FAISS store: upsert/replace/delete, filters, persistence, the embedder check, and freshness
across instances and processes through the version board."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.providers.faiss_store import FaissVectorStore, LocalVersionBoard
from rag.types import RetrievalScope
from utils.exceptions import IndexMismatch

ROOT = Path(__file__).resolve().parents[2]
EMBEDDER, DIM = "test:embedder", 8


class FileVersionBoard:
    """A version board in a file, shared by processes (what the database row does in the app)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get(self) -> int | None:
        try:
            return int(self.path.read_text())
        except FileNotFoundError:
            return None

    def bump(self) -> int:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            value = int(handle.read() or 0) + 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(value))
            return value


class NoVersionBoard:
    """A board that knows nothing (the database unreadable): the store must fall back to the files."""

    def get(self) -> int | None:
        return None

    def bump(self) -> int:
        return -1


def unit(*hot: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    for axis in hot:
        vector[axis] = 1.0
    return vector / np.linalg.norm(vector)


def meta(document_id: int, chunk_index: int = 0, category: str | None = "faq") -> dict:
    return {"document_id": document_id, "chunk_index": chunk_index, "category": category}


@pytest.fixture
def board() -> LocalVersionBoard:
    return LocalVersionBoard()


@pytest.fixture
def store(tmp_path, board) -> FaissVectorStore:
    store = FaissVectorStore(tmp_path / "index", version_board=board)
    store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    return store


def fill(store: FaissVectorStore) -> None:
    store.upsert(
        [11, 12, 21, 31],
        np.stack([unit(0), unit(0, 1), unit(2), unit(0, 3)]),
        [meta(1, 0, "faq"), meta(1, 1, "faq"), meta(2, 0, "billing"), meta(3, 0, "billing")],
    )


def test_new_directory_adopts_the_embedder(tmp_path, board):
    store = FaissVectorStore(tmp_path / "fresh", version_board=board)
    store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    saved = json.loads((tmp_path / "fresh" / "meta.json").read_text())
    assert (saved["embedder_name"], saved["dimension"], saved["count"]) == (EMBEDDER, DIM, 0)
    assert saved["version"] >= 1
    assert store.count() == 0


def test_query_returns_nearest_with_metadata(store):
    fill(store)
    matches = store.query(unit(0), top_k=2)
    assert [m.id for m in matches] == [11, 12]
    assert matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert matches[1].score == pytest.approx(float(unit(0) @ unit(0, 1)), abs=1e-6)
    assert matches[0].metadata == {"document_id": 1, "chunk_index": 0, "category": "faq"}


def test_upsert_of_an_existing_id_replaces_it(store):
    fill(store)
    store.upsert([11], unit(5)[None, :], [meta(9, 4, "other")])
    assert store.count() == 4
    best = store.query(unit(5), top_k=1)[0]
    assert (best.id, best.metadata) == (11, {"document_id": 9, "chunk_index": 4, "category": "other"})
    assert 11 not in [m.id for m in store.query(unit(0), top_k=2)]


def test_delete_removes_vectors(store):
    fill(store)
    store.delete([11, 999])
    assert store.count() == 3
    assert 11 not in [m.id for m in store.query(unit(0), top_k=10)]


def test_filters_apply_before_ranking(store):
    fill(store)
    by_category = store.query(unit(0), top_k=10, filter={"category": "billing"})
    assert [m.id for m in by_category] == [31, 21]  # 11 and 12 are closer but in "faq"
    by_document = store.query(unit(0), top_k=10, filter={"document_id": 2})
    assert [m.id for m in by_document] == [21]
    both = store.query(unit(0), top_k=10, filter={"document_id": 1, "category": "billing"})
    assert both == []
    with pytest.raises(ValueError, match="unsupported filter"):
        store.query(unit(0), top_k=1, filter={"colour": "red"})


def test_persistence_survives_a_new_instance(tmp_path, store):
    fill(store)
    store.delete([12])
    reopened = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    assert reopened.count() == 3
    assert reopened.query(unit(2), top_k=1)[0].metadata == {"document_id": 2, "chunk_index": 0, "category": "billing"}
    reopened.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_mismatch_names_reindex_and_both_embedders(tmp_path, store):
    fill(store)
    other = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    with pytest.raises(IndexMismatch) as caught:
        other.ensure_compatible(embedder_name="mistral:mistral-embed", dimension=1024)
    message = str(caught.value)
    assert "manage.py reindex" in message
    assert EMBEDDER in message and "mistral:mistral-embed" in message and "8" in message and "1024" in message
    with pytest.raises(IndexMismatch):
        store.upsert([40], np.ones((1, 4), dtype=np.float32), [meta(4)])


def test_reset_wipes_and_records_the_new_embedder(tmp_path, store):
    fill(store)
    store.reset(embedder_name="other", dimension=4)
    assert store.count() == 0
    store.ensure_compatible(embedder_name="other", dimension=4)
    with pytest.raises(IndexMismatch):
        store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    assert json.loads((tmp_path / "index" / "meta.json").read_text())["embedder_name"] == "other"


def test_other_instances_reload_when_the_board_moves(tmp_path, store, board):
    reader = FaissVectorStore(tmp_path / "index", version_board=board)
    stale = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard(start=0))
    assert reader.count() == stale.count() == 0
    fill(store)
    assert reader.count() == 4  # same board: it sees the bump and reloads
    assert stale.count() == 0  # its board never moved: it keeps serving what it loaded
    unknown = FaissVectorStore(tmp_path / "index", version_board=NoVersionBoard())
    assert unknown.count() == 4
    store.delete([11])
    assert unknown.count() == 3  # no board value: meta.json's identity decides


def test_a_write_in_one_instance_is_not_lost_by_another(tmp_path, store, board):
    other = FaissVectorStore(tmp_path / "index", version_board=board)
    other.count()
    fill(store)
    # ``other`` holds a stale copy, but a write reloads the latest files under the exclusive lock
    # first, so the four vectors written by ``store`` survive.
    other.upsert([50], unit(6)[None, :], [meta(5)])
    assert store.count() == 5
    reopened = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    assert {m.id for m in reopened.query(unit(0), top_k=10)} == {11, 12, 21, 31, 50}


CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from rag.providers.faiss_store import FaissVectorStore
    from tests.rag.test_faiss_store import FileVersionBoard, unit, meta

    directory, board_file = sys.argv[1], sys.argv[2]
    store = FaissVectorStore(directory, version_board=FileVersionBoard(board_file))
    seen = sorted(m.id for m in store.query(unit(0), top_k=10))
    store.upsert([77], unit(7)[None, :], [meta(7, 0, "child")])
    store.delete([11])
    sys.stdout.write(json.dumps({"seen": seen}))
    """
)


def test_another_process_sees_changes_after_the_bump(tmp_path):
    board = FileVersionBoard(tmp_path / "version")
    parent = FaissVectorStore(tmp_path / "index", version_board=board)
    parent.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    fill(parent)
    assert parent.count() == 4
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "index"), str(tmp_path / "version")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout)["seen"] == [11, 12, 21, 31]  # the child sees the parent's writes
    # ... and the parent sees the child's, because the child bumped the shared version.
    assert parent.count() == 4
    best = parent.query(unit(7), top_k=1)[0]
    assert (best.id, best.metadata["category"]) == (77, "child")
    assert 11 not in [m.id for m in parent.query(unit(0), top_k=10)]


def test_damaged_files_name_reindex_and_reset_recovers(tmp_path, store):
    fill(store)
    (tmp_path / "index" / "index.faiss").write_bytes(b"not an index")
    damaged = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    with pytest.raises(IndexMismatch, match=r"manage\.py reindex"):
        damaged.count()
    damaged.reset(embedder_name=EMBEDDER, dimension=DIM)  # what reindex does first
    damaged.upsert([1], unit(0)[None, :], [meta(1)])
    assert FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard()).count() == 1


def test_searches_from_any_thread_use_the_configured_openmp_threads(tmp_path):
    """OpenMP's thread count is per thread: a server's request threads must get the setting too."""
    import threading

    import faiss

    store = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard(), search_threads=1)
    store.reset(embedder_name="test", dimension=4)
    store.upsert([1], np.eye(4, dtype=np.float32)[:1], [{"document_id": 1, "chunk_index": 0}])
    seen: list[int] = []

    def search_in_a_new_thread() -> None:
        store.query(np.eye(4, dtype=np.float32)[0], top_k=1)
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=search_in_a_new_thread)
    thread.start()
    thread.join()
    assert seen == [1]


def test_an_index_of_another_database_or_embedder_is_refused_on_load(tmp_path):
    ours = {"engine": "sqlite", "name": "/srv/a.sqlite3", "database_id": "a" * 32}
    theirs = {"engine": "sqlite", "name": "/srv/b.sqlite3", "database_id": "b" * 32}
    writer = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard(), database=lambda: ours)
    writer.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    fill(writer)
    assert json.loads((tmp_path / "index" / "meta.json").read_text())["database"] == ours

    foreign = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard(), database=lambda: theirs)
    with pytest.raises(IndexMismatch, match=r"another database.*manage\.py reindex"):
        foreign.query(unit(0), top_k=3)
    other_model = FaissVectorStore(
        tmp_path / "index", version_board=LocalVersionBoard(), database=lambda: ours, embedder=lambda: ("m2", DIM)
    )
    with pytest.raises(IndexMismatch, match="configured embedder is m2"):
        other_model.count()

    foreign.reset(embedder_name=EMBEDDER, dimension=DIM)  # what reindex does first: the index is theirs now
    assert foreign.count() == 0
    assert json.loads((tmp_path / "index" / "meta.json").read_text())["database"] == theirs
    with pytest.raises(IndexMismatch, match="another database"):
        FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard(), database=lambda: ours).count()


# --- workspaces (DESIGN §8): the scope is applied inside the search ------------------------------


def fill_workspaces(store: FaissVectorStore) -> None:
    """Shared chunk 1, workspace 7's chunk 70 and workspace 8's chunk 80, all near ``unit(0)``;
    workspace 8's is the nearest of all."""
    store.upsert(
        [1, 70, 80],
        np.stack([unit(0, 1, 2), unit(0, 1), unit(0)]),
        [meta(1), {**meta(7), "workspace_id": 7}, {**meta(8), "workspace_id": 8}],
    )


def test_scope_reads_its_workspace_and_the_shared_base_only(store):
    fill_workspaces(store)
    assert [m.id for m in store.query(unit(0), top_k=10, scope=RetrievalScope(7))] == [70, 1]
    assert [m.id for m in store.query(unit(0), top_k=10, scope=RetrievalScope(7, include_shared=False))] == [70]
    assert [m.id for m in store.query(unit(0), top_k=10)] == [1]  # the default: the shared base only
    assert store.query(unit(0), top_k=10, scope=RetrievalScope(None, include_shared=False)) == []
    assert store.query(unit(0), top_k=10, scope=RetrievalScope(9, include_shared=False)) == []


def test_top_k_counts_readable_chunks_only(store):
    # Filtering after the search would return nothing here: the nearest chunk is workspace 8's.
    fill_workspaces(store)
    matches = store.query(unit(0), top_k=1, scope=RetrievalScope(7, include_shared=False))
    assert [(m.id, m.metadata["workspace_id"]) for m in matches] == [(70, 7)]


def test_filter_and_scope_together(store):
    fill_workspaces(store)
    assert store.query(unit(0), top_k=5, filter={"document_id": 8}, scope=RetrievalScope(7)) == []
    assert [m.id for m in store.query(unit(0), top_k=5, filter={"document_id": 7}, scope=RetrievalScope(7))] == [70]


def test_workspaces_survive_a_reload_and_a_write(tmp_path, board, store):
    fill_workspaces(store)
    store.upsert([71], np.stack([unit(3)]), [{**meta(7, 1), "workspace_id": 7}])  # the memo is dropped
    assert {m.id for m in store.query(unit(0), top_k=10, scope=RetrievalScope(7, False))} == {70, 71}
    reloaded = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    assert [m.id for m in reloaded.query(unit(0), top_k=10, scope=RetrievalScope(8))] == [80, 1]
    assert reloaded.count() == 4


def test_an_index_saved_before_workspaces_holds_the_shared_base(tmp_path, store):
    fill(store)
    columns = json.loads((tmp_path / "index" / "chunks.json").read_text())
    del columns["workspace_ids"]
    (tmp_path / "index" / "chunks.json").write_text(json.dumps(columns))
    reloaded = FaissVectorStore(tmp_path / "index", version_board=LocalVersionBoard())
    assert len(reloaded.query(unit(0), top_k=10)) == 4
    assert reloaded.query(unit(0), top_k=10, scope=RetrievalScope(7, include_shared=False)) == []
