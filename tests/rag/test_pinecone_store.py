"""PineconeVectorStore through the real ``pinecone`` SDK (REST) against the in-memory fake."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pytest

from rag.providers.pinecone_store import META_NAMESPACE, PineconeVectorStore, pinecone_filter
from rag.types import RetrievalScope
from tests.fakes.pinecone_server import FakePinecone
from tests.fakes.server import unused_port
from utils.exceptions import (
    IndexMismatch,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

API_KEY = "pc-test-key-0123456789"
DIM = 8
EMBEDDER = "local:test-embedder"
REINDEX = re.escape("`manage.py reindex`")
TIMEOUT_S = 0.3
# Several timeouts long: on a loaded CI machine a 0.3 s read timeout has fired after 0.6 s, which
# left no budget for the retry that the persistent-fault cases check for.
BUDGET_S = 1.0
MAX_ATTEMPTS = 3
FAST: dict[str, Any] = {
    "timeout_s": TIMEOUT_S,
    "budget_s": BUDGET_S,
    "max_attempts": MAX_ATTEMPTS,
    "initial_backoff_s": 0.01,
    "max_backoff_s": 0.05,
}


@pytest.fixture
def fake(fake_pinecone: FakePinecone) -> FakePinecone:
    fake_pinecone.dimension = DIM
    return fake_pinecone


@pytest.fixture
def store(fake: FakePinecone) -> PineconeVectorStore:
    return PineconeVectorStore(API_KEY, "test-index", host=fake.url, namespace="kb", **FAST)


def unit(*hot: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[list(hot)] = 1.0
    return vector / np.linalg.norm(vector)


def fill(store: PineconeVectorStore) -> None:
    store.upsert(
        [1, 2, 3],
        np.vstack([unit(0), unit(0, 1), unit(2)]),
        [
            {"document_id": 10, "chunk_index": 0, "category": "FAQ"},
            {"document_id": 10, "chunk_index": 1, "category": "Guide"},
            {"document_id": 11, "chunk_index": 0, "category": "FAQ"},
        ],
    )


def test_upsert_sends_batches_of_100(store: PineconeVectorStore, fake: FakePinecone) -> None:
    ids = list(range(1, 251))
    vectors = np.tile(unit(0, 3), (250, 1))
    store.upsert(ids, vectors, [{"document_id": i, "chunk_index": 0, "category": "FAQ"} for i in ids])

    sent = fake.requests_to("/vectors/upsert")
    assert [len(r.body["vectors"]) for r in sent] == [100, 100, 50]
    assert all(r.body["namespace"] == "kb" for r in sent)
    assert sent[0].body["vectors"][0]["id"] == "1"
    assert sent[0].headers["api-key"] == API_KEY
    assert "x-pinecone-api-version" in sent[0].headers
    assert store.count() == 250


def test_query_returns_nearest_chunks_with_their_metadata(store: PineconeVectorStore) -> None:
    fill(store)
    matches = store.query(unit(0), top_k=2)

    assert [m.id for m in matches] == [1, 2]
    assert matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert matches[1].score == pytest.approx(float(unit(0) @ unit(0, 1)), abs=1e-5)
    assert matches[0].metadata == {"document_id": 10, "chunk_index": 0, "category": "FAQ"}
    assert isinstance(matches[0].metadata["document_id"], int)  # Pinecone stores numbers as floats


def test_query_filter_is_translated_to_pinecone_operators(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill(store)
    matches = store.query(unit(0), top_k=3, filter={"category": "FAQ"})

    assert [m.id for m in matches] == [1, 3]
    assert fake.requests_to("/query")[-1].body["filter"] == {"category": {"$eq": "FAQ"}}
    assert fake.requests_to("/query")[-1].body["includeMetadata"] is True


def test_filter_translation() -> None:
    assert pinecone_filter(None) is None
    assert pinecone_filter({}) is None
    assert pinecone_filter({"category": "FAQ"}) == {"category": {"$eq": "FAQ"}}
    assert pinecone_filter({"category": ["FAQ", "Guide"]}) == {"category": {"$in": ["FAQ", "Guide"]}}
    assert pinecone_filter({"document_id": {"$ne": 3}}) == {"document_id": {"$ne": 3}}


def test_list_filter_matches_any(store: PineconeVectorStore) -> None:
    fill(store)
    assert {m.id for m in store.query(unit(0), top_k=5, filter={"category": ["Guide"]})} == {2}


def test_delete_removes_by_id(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill(store)
    store.delete([1, 3])

    assert fake.requests_to("/vectors/delete")[-1].body == {"namespace": "kb", "ids": ["1", "3"]}
    assert [m.id for m in store.query(unit(0), top_k=5)] == [2]
    assert store.count() == 1


def test_empty_upsert_and_delete_send_nothing(store: PineconeVectorStore, fake: FakePinecone) -> None:
    store.upsert([], np.zeros((0, DIM), dtype=np.float32), [])
    store.delete([])
    assert fake.requests == []


def test_reset_empties_the_namespace_and_records_the_embedder(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill(store)
    store.reset(embedder_name=EMBEDDER, dimension=DIM)

    assert store.count() == 0
    assert fake.requests_to("/vectors/delete")[-1].body == {"namespace": "kb", "deleteAll": True}
    record = fake.stored(META_NAMESPACE)["kb"]
    assert record[1] == {"embedder_name": EMBEDDER, "dimension": float(DIM), "namespace": "kb"}
    store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)  # no error


def test_reset_of_a_namespace_that_never_existed(store: PineconeVectorStore) -> None:
    store.reset(embedder_name=EMBEDDER, dimension=DIM)  # Pinecone answers 404 to deleteAll there
    assert store.count() == 0


def test_the_embedder_record_never_appears_in_results(store: PineconeVectorStore) -> None:
    store.reset(embedder_name=EMBEDDER, dimension=DIM)
    fill(store)
    matches = store.query(unit(0), top_k=10)  # the record's vector is unit(0) too
    assert sorted(m.id for m in matches) == [1, 2, 3]
    assert store.count() == 3


def test_another_embedder_is_a_mismatch_naming_reindex(store: PineconeVectorStore) -> None:
    store.reset(embedder_name=EMBEDDER, dimension=DIM)
    fill(store)
    with pytest.raises(IndexMismatch, match=REINDEX) as caught:
        store.ensure_compatible(embedder_name="mistral:mistral-embed", dimension=DIM)
    assert EMBEDDER in caught.value.detail
    assert caught.value.provider == "pinecone"


def test_an_empty_namespace_is_claimed(store: PineconeVectorStore, fake: FakePinecone) -> None:
    store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    assert fake.stored(META_NAMESPACE)["kb"][1]["embedder_name"] == EMBEDDER
    fill(store)
    store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)


def test_vectors_without_a_record_are_a_mismatch(store: PineconeVectorStore) -> None:
    fill(store)
    with pytest.raises(IndexMismatch, match="unknown embedder"):
        store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)


def test_an_index_of_another_dimension_is_a_mismatch(store: PineconeVectorStore) -> None:
    with pytest.raises(IndexMismatch, match=REINDEX):
        store.ensure_compatible(embedder_name="mistral:mistral-embed", dimension=1024)
    with pytest.raises(IndexMismatch, match="has 8 dimensions"):
        store.reset(embedder_name="mistral:mistral-embed", dimension=1024)


def test_an_index_whose_scores_are_not_cosines_is_a_mismatch(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fake.metric = "euclidean"  # only what describe_index_stats reports changes
    with pytest.raises(IndexMismatch, match="euclidean metric"):
        store.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)


def test_a_query_of_the_wrong_dimension_is_a_mismatch(store: PineconeVectorStore) -> None:
    with pytest.raises(IndexMismatch, match=REINDEX):
        store.query(np.ones(4, dtype=np.float32), top_k=3)


def test_namespaces_are_separate(fake: FakePinecone) -> None:
    kb = PineconeVectorStore(API_KEY, "test-index", host=fake.url, namespace="kb", **FAST)
    default = PineconeVectorStore(API_KEY, "test-index", host=fake.url, **FAST)
    fill(kb)
    default.upsert([7], unit(1)[None, :], [{"document_id": 1, "chunk_index": 0, "category": "FAQ"}])
    assert kb.count() == 3
    assert default.count() == 1  # the API reports the default namespace as "__default__"
    assert [m.id for m in default.query(unit(0), top_k=5)] == [7]


def test_host_is_resolved_from_the_index_name_once(fake: FakePinecone) -> None:
    store = PineconeVectorStore(API_KEY, "test-index", control_host=fake.url, namespace="kb", **FAST)
    fill(store)
    assert store.count() == 3
    assert len(fake.requests_to("/indexes/test-index")) == 1


def test_an_unknown_index_name_is_a_bad_response(fake: FakePinecone) -> None:
    store = PineconeVectorStore(API_KEY, "no-such-index", control_host=fake.url, **FAST)
    with pytest.raises(ProviderBadResponse, match="HTTP 404"):
        store.count()


# --- faults --------------------------------------------------------------------------------------


def test_429_then_success_is_retried(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill(store)
    fake.fail_next("429", retry_after=0)
    assert [m.id for m in store.query(unit(2), top_k=1)] == [3]
    assert [r.fault for r in fake.requests_to("/query")] == ["429", None]


@pytest.mark.parametrize(
    ("kind", "error", "attempts"),
    [
        ("500", ProviderUnavailable, MAX_ATTEMPTS),  # exactly ours: the SDK's own retries are off
        ("429", ProviderRateLimited, MAX_ATTEMPTS),
        ("hang", ProviderTimeout, None),
        ("close", ProviderUnavailable, MAX_ATTEMPTS),
        ("invalid_json", ProviderBadResponse, 1),
    ],
)
def test_persistent_faults_become_typed_errors_within_the_budget(
    store: PineconeVectorStore,
    fake: FakePinecone,
    kind: str,
    error: type[ProviderError],
    attempts: int | None,
) -> None:
    fake.fail_next(kind, count=1000, retry_after=0)
    started = time.monotonic()
    with pytest.raises(error) as caught:
        store.query(unit(0), top_k=3)
    elapsed = time.monotonic() - started

    assert elapsed < BUDGET_S + TIMEOUT_S + 1.0
    assert caught.value.provider == "pinecone"
    assert caught.value.detail.startswith("pinecone: query")
    assert isinstance(caught.value.__cause__, Exception)
    if attempts is not None:
        assert len(fake.requests) == attempts
    else:
        assert len(fake.requests) >= 2


def test_retry_after_beyond_the_budget_is_not_waited_for(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fake.fail_next("429", retry_after=30)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimited):
        store.count()
    assert time.monotonic() - started < 1.0
    assert len(fake.requests) == 1


def test_connection_refused_is_unavailable() -> None:
    store = PineconeVectorStore(API_KEY, "test-index", host=f"http://127.0.0.1:{unused_port()}", **FAST)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="connection failed"):
        store.count()
    assert time.monotonic() - started < BUDGET_S + TIMEOUT_S + 1.0


def test_client_errors_are_not_retried_and_hide_the_key(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fake.reply_next(401, {"error": {"code": "UNAUTHENTICATED", "message": f"Invalid API Key {API_KEY}"}})
    with pytest.raises(ProviderBadResponse) as caught:
        store.count()
    assert "HTTP 401" in caught.value.detail
    assert API_KEY not in caught.value.detail
    assert len(fake.requests) == 1


# --- the database the namespace was built from ------------------------------------------------

THIS_DB = {"engine": "postgresql", "name": "ragchat", "database_id": "11111111-1111-4111-8111-111111111111"}
OTHER_DB = {"engine": "postgresql", "name": "garden", "database_id": "22222222-2222-4222-8222-222222222222"}


def _store_of(fake: FakePinecone, database: dict[str, str]) -> PineconeVectorStore:
    return PineconeVectorStore(API_KEY, "test-index", host=fake.url, namespace="kb", database=lambda: database, **FAST)


def test_the_record_names_the_database_and_another_database_is_refused(fake: FakePinecone) -> None:
    ours = _store_of(fake, THIS_DB)
    ours.reset(embedder_name=EMBEDDER, dimension=DIM)
    fill(ours)
    metadata = fake.stored(META_NAMESPACE)["kb"][1]
    assert metadata["database_id"] == THIS_DB["database_id"] and metadata["database_name"] == "ragchat"
    assert [m.id for m in ours.query(unit(0), top_k=1)] == [1]

    theirs = _store_of(fake, OTHER_DB)
    with pytest.raises(IndexMismatch, match="another database") as caught:
        theirs.query(unit(0), top_k=3)  # a search never answers from another database's namespace
    assert "manage.py reindex" in caught.value.detail
    with pytest.raises(IndexMismatch, match="another database"):
        theirs.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)  # nor does an ingest write to it
    theirs.reset(embedder_name=EMBEDDER, dimension=DIM)  # what reindex does first
    assert fake.stored(META_NAMESPACE)["kb"][1]["database_id"] == OTHER_DB["database_id"]
    theirs.query(unit(0), top_k=3)


def test_a_record_from_before_database_ids_is_claimed(store: PineconeVectorStore, fake: FakePinecone) -> None:
    store.reset(embedder_name=EMBEDDER, dimension=DIM)  # a store told no database: records none
    fill(store)
    ours = _store_of(fake, THIS_DB)
    ours.query(unit(0), top_k=3)
    ours.ensure_compatible(embedder_name=EMBEDDER, dimension=DIM)
    assert fake.stored(META_NAMESPACE)["kb"][1]["database_id"] == THIS_DB["database_id"]


# --- workspaces (DESIGN §8): one namespace per workspace ---------------------------------------


def fill_workspaces(store: PineconeVectorStore) -> None:
    """Shared chunk 1 (namespace "kb"), workspace 7's chunk 70 and workspace 8's chunk 80; 8's is
    the nearest to ``unit(0)``."""
    store.upsert(
        [1, 70, 80],
        np.vstack([unit(0, 1, 2), unit(0, 1), unit(0)]),
        [
            {"document_id": 1, "chunk_index": 0, "category": "FAQ"},
            {"document_id": 7, "chunk_index": 0, "category": "FAQ", "workspace_id": 7},
            {"document_id": 8, "chunk_index": 0, "category": "FAQ", "workspace_id": 8},
        ],
    )


def test_each_workspace_writes_to_its_own_namespace(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    assert set(fake.stored("kb")) == {"1"}
    assert set(fake.stored("kb-ws-7")) == {"70"}
    assert set(fake.stored("kb-ws-8")) == {"80"}
    assert fake.stored("kb-ws-7")["70"][1]["workspace_id"] == 7.0


def test_namespaces_without_a_configured_namespace(fake: FakePinecone) -> None:
    store = PineconeVectorStore(API_KEY, "test-index", host=fake.url, **FAST)
    fill_workspaces(store)
    assert set(fake.stored("")) == {"1"}
    assert set(fake.stored("ws-7")) == {"70"}
    assert [m.id for m in store.query(unit(0), top_k=5, scope=RetrievalScope(7))] == [70, 1]
    assert store.count() == 3


def test_a_query_asks_only_the_namespaces_of_its_scope(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    fake.requests.clear()
    matches = store.query(unit(0), top_k=5, scope=RetrievalScope(7))

    assert [m.id for m in matches] == [70, 1]  # merged by score across the two namespaces
    assert matches[0].metadata["workspace_id"] == 7
    assert sorted(r.body["namespace"] for r in fake.requests_to("/query")) == ["kb", "kb-ws-7"]


def test_a_scope_without_the_shared_base_asks_one_namespace(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    fake.requests.clear()
    # top_k 1 and 8's chunk the nearest: only a search inside 7's namespace finds 70.
    assert [m.id for m in store.query(unit(0), top_k=1, scope=RetrievalScope(7, include_shared=False))] == [70]
    assert [r.body["namespace"] for r in fake.requests_to("/query")] == ["kb-ws-7"]
    assert [m.id for m in store.query(unit(0), top_k=5)] == [1]  # the default: the shared base only
    assert store.query(unit(0), top_k=5, scope=RetrievalScope(None, include_shared=False)) == []


def test_delete_reaches_only_the_workspace_named(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    store.delete([80], workspace_id=7)  # not 7's: nothing of 8 goes
    assert set(fake.stored("kb-ws-8")) == {"80"}
    store.delete([80], workspace_id=8)

    assert fake.requests_to("/vectors/delete")[-1].body == {"namespace": "kb-ws-8", "ids": ["80"]}
    assert fake.stored("kb-ws-8") == {}
    assert set(fake.stored("kb-ws-7")) == {"70"} and set(fake.stored("kb")) == {"1"}


def test_count_and_reset_cover_every_workspace(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    fake.namespaces.setdefault("other-deployment", type(fake.namespaces["kb"])())
    fake.namespaces["other-deployment"].put("5", unit(0), {})
    assert store.count() == 3  # another deployment's namespace is not ours

    store.reset(embedder_name=EMBEDDER, dimension=DIM)
    assert store.count() == 0
    assert fake.stored("kb-ws-7") == {} and fake.stored("kb-ws-8") == {}
    assert set(fake.stored("other-deployment")) == {"5"}
    assert store.query(unit(0), top_k=5, scope=RetrievalScope(7)) == []


def test_a_two_namespace_query_is_retried_after_a_429(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    fake.fail_next("429", retry_after=0, path="/query")
    assert [m.id for m in store.query(unit(0), top_k=5, scope=RetrievalScope(7))] == [70, 1]
    assert [r.fault for r in fake.requests_to("/query")].count("429") == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [("500", ProviderUnavailable), ("hang", ProviderTimeout), ("invalid_json", ProviderBadResponse)],
)
def test_a_failing_namespace_fails_the_whole_query(
    store: PineconeVectorStore, fake: FakePinecone, kind: str, error: type[ProviderError]
) -> None:
    # Never half an answer: results from one namespace alone would silently drop the other's.
    fill_workspaces(store)
    fake.fail_next(kind, count=1000, retry_after=0, path="/query")
    with pytest.raises(error) as caught:
        store.query(unit(0), top_k=5, scope=RetrievalScope(7))
    assert caught.value.provider == "pinecone"
    assert caught.value.detail.startswith("pinecone: query")


def test_a_filter_applies_in_every_namespace_of_the_scope(store: PineconeVectorStore, fake: FakePinecone) -> None:
    fill_workspaces(store)
    fake.requests.clear()
    assert store.query(unit(0), top_k=5, filter={"category": "Guide"}, scope=RetrievalScope(7)) == []
    assert [r.body["filter"] for r in fake.requests_to("/query")] == [{"category": {"$eq": "Guide"}}] * 2
