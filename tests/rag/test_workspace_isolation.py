"""Workspace isolation through the whole retrieval path (DESIGN §8), on FAISS and on Pinecone (the
fake, which answers only from the namespace asked): two workspaces with near-identical handbooks
that share their vocabulary, plus the shared base. Nothing of one workspace may reach another:
not a chunk, a score, a spelling correction nor an unknown-term verdict."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from rag.health import check_vector_store
from rag.models import Chunk, Document
from rag.providers.factory import get_vector_store, reset_providers
from rag.services.answering import answer_question, answer_stream
from rag.services.ingestion import DocumentInput, document_ingest, documents_delete, index_rebuild
from rag.services.retrieval import embed_queries, lexical_index, retrieve
from rag.types import RetrievalScope
from tests.factories import UserFactory
from tests.fakes.pinecone_server import FakePinecone
from workspaces.models import Workspace
from workspaces.services import workspace_create

HOLIDAYS = "Paid holiday"
SHARED = [
    (
        "Reset a forgotten password",
        "guides/reset.md",
        "If you forgot your password, ask for a reset email. The reset link in the email is valid for one hour.",
    ),
]
# The same file name in both workspaces, nearly the same words: only the numbers and names differ.
ACME = [
    (
        HOLIDAYS,
        "handbook/holidays.md",
        "Employees of Acme get 25 days of paid holiday each year. Ask your manager to approve holiday "
        "requests in the staff portal before you book travel.",
    ),
]
ZENITH = [
    (
        HOLIDAYS,
        "handbook/holidays.md",
        "Employees of Zenith get 30 days of paid holiday each year. Ask your manager to approve holiday "
        "requests in the staff portal before you book travel.",
    ),
    (
        "Sabbatical leave",
        "handbook/sabbatical.md",
        "After five years of service Zenith staff may take a sabbatical of three months, unpaid.",
    ),
]
STORES = ("faiss", "pinecone")


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Run each test on FAISS and on Pinecone (the fake, 384 dimensions for the local embedder)."""
    if request.param == "faiss":
        yield "faiss"
        return
    with FakePinecone(dimension=384) as fake:
        settings.RAG_VECTOR_STORE = "pinecone"
        settings.PINECONE_API_KEY, settings.PINECONE_HOST, settings.PINECONE_NAMESPACE = "pc-key", fake.url, "kb"
        reset_providers()
        lexical_index.reset()
        request.node.fake_pinecone = fake
        yield "pinecone"


def ingest(items: list[tuple[str, str, str]], workspace: Workspace | None) -> list[Document]:
    workspace_id = workspace.pk if workspace is not None else None
    return [
        document_ingest(item=DocumentInput(title=t, source=s, content=c, workspace_id=workspace_id)).document
        for t, s, c in items
    ]


@pytest.fixture
def corpus(store_kind: str, db: None) -> dict[str, Any]:
    acme = workspace_create(name="Acme", owner=UserFactory.create())
    zenith = workspace_create(name="Zenith", owner=UserFactory.create())
    return {
        "acme": acme,
        "zenith": zenith,
        "shared": ingest(SHARED, None),
        "acme_docs": ingest(ACME, acme),
        "zenith_docs": ingest(ZENITH, zenith),
    }


def ids(documents: list[Document]) -> set[int]:
    return {d.pk for d in documents}


def found(query: str, scope: RetrievalScope, **kwargs: Any) -> set[int]:
    kwargs.setdefault("use_cache", False)
    return {d.document_id for d in retrieve(query=query, scope=scope, **kwargs).documents}


@pytest.mark.parametrize("fusion", ["hybrid", "dense", "lexical"])
def test_a_workspace_reads_its_own_documents_and_the_shared_base(corpus: dict[str, Any], fusion: str) -> None:
    acme, zenith = RetrievalScope(corpus["acme"].pk), RetrievalScope(corpus["zenith"].pk)
    readable_by_acme = ids(corpus["acme_docs"]) | ids(corpus["shared"])

    holiday = found("how many days of paid holiday do employees get", acme, fusion=fusion, top_k=5)
    assert holiday & ids(corpus["acme_docs"])
    assert holiday <= readable_by_acme
    assert found("how many days of paid holiday do employees get", zenith, fusion=fusion, top_k=5) & ids(
        corpus["zenith_docs"]
    )
    # Zenith's words find nothing of Zenith's from Acme, however close the match.
    assert found("Zenith sabbatical after five years of service", acme, fusion=fusion, top_k=5) <= readable_by_acme
    assert found("forgot my password reset link", acme, fusion=fusion) & ids(corpus["shared"])


def test_the_vector_store_scores_only_what_the_scope_reads(corpus: dict[str, Any]) -> None:
    [vector] = embed_queries(["Employees of Zenith get 30 days of paid holiday each year."], use_cache=False)
    store = get_vector_store()
    zenith_chunks = set(Chunk.objects.filter(document__workspace=corpus["zenith"]).values_list("id", flat=True))
    acme_chunks = set(Chunk.objects.filter(document__workspace=corpus["acme"]).values_list("id", flat=True))

    # Zenith's chunk is the nearest by far; top_k 1 in Acme must still find Acme's, inside the search.
    [match] = store.query(vector, top_k=1, scope=RetrievalScope(corpus["acme"].pk, include_shared=False))
    assert match.id in acme_chunks
    everything = store.query(vector, top_k=50, scope=RetrievalScope(corpus["acme"].pk))
    assert not {m.id for m in everything} & zenith_chunks
    assert {m.id for m in store.query(vector, top_k=50)} == set(
        Chunk.objects.filter(document__workspace__isnull=True).values_list("id", flat=True)
    )


def test_without_the_shared_base_only_the_workspace_is_read(corpus: dict[str, Any]) -> None:
    scope = RetrievalScope(corpus["acme"].pk, include_shared=False)
    for fusion in ("hybrid", "dense", "lexical"):
        assert not found("forgot my password reset link", scope, fusion=fusion) & ids(corpus["shared"])
        assert found("paid holiday days", scope, fusion=fusion) == ids(corpus["acme_docs"])


def test_the_default_scope_reads_the_shared_base_only(corpus: dict[str, Any]) -> None:
    assert found("how many days of paid holiday do employees get", RetrievalScope()) <= ids(corpus["shared"])
    assert not {d.document_id for d in retrieve(query="paid holiday days", use_cache=False).documents} & (
        ids(corpus["acme_docs"]) | ids(corpus["zenith_docs"])
    )


def test_spelling_is_corrected_only_with_words_the_scope_reads(corpus: dict[str, Any]) -> None:
    acme, zenith = RetrievalScope(corpus["acme"].pk), RetrievalScope(corpus["zenith"].pk)
    # "sabbatical" is a word of Zenith's handbook only.
    assert retrieve(query="sabatical leave", scope=zenith, use_cache=False).searched == "sabbatical leave"
    in_acme = retrieve(query="sabatical leave", scope=acme, use_cache=False)
    assert in_acme.searched == "sabatical leave"
    assert "sabat" in " ".join(in_acme.unknown_terms)
    # Even spelled right, Acme's knowledge base does not know the word: nothing says Zenith has it.
    assert retrieve(query="sabbatical", scope=acme, use_cache=False, fusion="lexical").unknown_terms == ("sabbatical",)
    acme_index = lexical_index.get(acme)
    assert acme_index is not None and acme_index.speller.correct("zenitth") == "zenitth"


def test_document_centroids_are_those_the_scope_reads(corpus: dict[str, Any]) -> None:
    """The document ranking by centroid, like BM25, is made of the scope's documents alone."""
    for name, other in (("acme", "zenith"), ("zenith", "acme")):
        centroids = lexical_index.documents(RetrievalScope(corpus[name].pk))
        assert centroids is not None
        assert set(centroids.ids.tolist()) == ids(corpus[f"{name}_docs"]) | ids(corpus["shared"])
        assert not set(centroids.ids.tolist()) & ids(corpus[f"{other}_docs"])


def test_an_answer_in_one_workspace_cites_nothing_of_another(corpus: dict[str, Any]) -> None:
    question = "How many days of paid holiday do employees get?"
    answer = answer_question(question=question, scope=RetrievalScope(corpus["acme"].pk))
    assert answer.sources, answer.text
    assert {s["document_id"] for s in answer.sources} <= ids(corpus["acme_docs"]) | ids(corpus["shared"])
    assert "Zenith" not in answer.text and "30 days" not in answer.text


def test_one_cache_per_scope_never_crosses(corpus: dict[str, Any]) -> None:
    question = "how many days of paid holiday do employees get"
    acme, zenith = RetrievalScope(corpus["acme"].pk), RetrievalScope(corpus["zenith"].pk)
    # Twice each, interleaved, with the query-embedding cache on: the embedding is shared, results are not.
    for _ in range(2):
        assert found(question, acme, use_cache=True) & ids(corpus["acme_docs"])
        assert not found(question, acme, use_cache=True) & ids(corpus["zenith_docs"])
        assert not found(question, zenith, use_cache=True) & ids(corpus["acme_docs"])
        assert found(question, zenith, use_cache=True) & ids(corpus["zenith_docs"])
    assert lexical_index.get(acme) is not lexical_index.get(zenith)


def test_the_same_source_in_two_workspaces_makes_two_documents(corpus: dict[str, Any]) -> None:
    acme, zenith = corpus["acme_docs"][0], corpus["zenith_docs"][0]
    assert acme.source == zenith.source and acme.pk != zenith.pk
    again = document_ingest(
        item=DocumentInput(title=HOLIDAYS, source=acme.source, content=ACME[0][2], workspace_id=corpus["acme"].pk)
    )
    assert (again.status, again.document.pk) == ("unchanged", acme.pk)
    changed = document_ingest(
        item=DocumentInput(
            title=HOLIDAYS, source=acme.source, content="Acme staff get 26 days.", workspace_id=corpus["acme"].pk
        )
    )
    assert (changed.status, changed.document.pk) == ("updated", acme.pk)
    zenith.refresh_from_db()
    assert "30 days" in zenith.content
    shared = document_ingest(item=DocumentInput(title=HOLIDAYS, source=acme.source, content="Shared holidays."))
    assert shared.status == "created" and shared.document.workspace_id is None
    assert Document.objects.filter(source=acme.source).count() == 3


def test_an_update_keeps_the_document_in_its_workspace(corpus: dict[str, Any]) -> None:
    document = corpus["acme_docs"][0]
    # An edit that names no workspace (as an API PATCH may) does not move the document to the shared base.
    edit = DocumentInput(title=HOLIDAYS, content="Acme staff get 27 days of paid holiday.")
    document_ingest(item=edit, document=document)
    document.refresh_from_db()
    assert document.workspace_id == corpus["acme"].pk
    assert found("27 days of paid holiday", RetrievalScope(corpus["acme"].pk, include_shared=False)) == {document.pk}
    assert not found("27 days of paid holiday", RetrievalScope(corpus["zenith"].pk)) & {document.pk}


def test_deleting_a_workspaces_documents_leaves_the_others(
    corpus: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    zenith_chunks = Chunk.objects.filter(document__workspace=corpus["zenith"]).count()
    before = get_vector_store().count()
    erased = documents_delete(documents=Document.objects.filter(workspace=corpus["zenith"]))

    assert (erased.documents, erased.vectors) == (2, zenith_chunks)
    assert get_vector_store().count() == before - zenith_chunks
    assert found("paid holiday days", RetrievalScope(corpus["acme"].pk)) & ids(corpus["acme_docs"])
    assert found("paid holiday days", RetrievalScope(corpus["zenith"].pk, include_shared=False)) == set()
    fake = getattr(request.node, "fake_pinecone", None)
    if fake is not None:  # Pinecone: only Zenith's namespace was emptied
        assert fake.stored(f"kb-ws-{corpus['zenith'].pk}") == {}
        assert (
            len(fake.stored(f"kb-ws-{corpus['acme'].pk}"))
            == Chunk.objects.filter(document__workspace=corpus["acme"]).count()
        )
        assert len(fake.stored("kb")) == Chunk.objects.filter(document__workspace__isnull=True).count()
        assert {r.body["namespace"] for r in fake.requests_to("/vectors/delete")} == {f"kb-ws-{corpus['zenith'].pk}"}


def test_a_rebuild_puts_every_vector_back_in_its_workspace(corpus: dict[str, Any]) -> None:
    assert index_rebuild(batch_size=2) == Chunk.objects.count()
    reset_providers()  # a fresh process: FAISS reads its workspaces back from disk
    lexical_index.reset()
    acme = RetrievalScope(corpus["acme"].pk, include_shared=False)
    assert found("paid holiday days", acme, fusion="dense") == ids(corpus["acme_docs"])
    assert not found("sabbatical service", RetrievalScope(corpus["acme"].pk), fusion="dense") & ids(
        corpus["zenith_docs"]
    )


def test_health_counts_every_vector_and_names_no_workspace(corpus: dict[str, Any]) -> None:
    details = check_vector_store()
    assert details["vectors"] == details["chunks"] == Chunk.objects.count()
    assert not any("workspace" in str(key) for key in details)


def test_the_ingest_command_files_documents_in_a_workspace(corpus: dict[str, Any], tmp_path: Any) -> None:
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook" / "holidays.md").write_text("# Paid holiday\n\nAcme staff may carry five days over.\n")
    out = io.StringIO()
    call_command("ingest", str(tmp_path), "--workspace", str(corpus["acme"].pk), stdout=out, stderr=io.StringIO())

    assert "1 updated" in out.getvalue()  # Acme's own handbook/holidays.md, not Zenith's nor a new one
    assert Document.objects.get(pk=corpus["acme_docs"][0].pk).content.endswith("carry five days over.")
    assert "30 days" in Document.objects.get(pk=corpus["zenith_docs"][0].pk).content
    with pytest.raises(CommandError, match="no workspace"):
        call_command("ingest", str(tmp_path), "--workspace", "999999")


def test_a_streamed_answer_cites_nothing_of_another_workspace(corpus: dict[str, Any]) -> None:
    events = list(
        answer_stream(
            question="How many days of paid holiday do employees get?", scope=RetrievalScope(corpus["zenith"].pk)
        )
    )
    sources = next(e.data for e in events if e.kind == "sources")
    assert sources and {s["document_id"] for s in sources} <= ids(corpus["zenith_docs"]) | ids(corpus["shared"])
    assert "Acme" not in "".join(e.data for e in events if e.kind == "delta")


def test_a_write_renews_only_the_lexical_indexes_of_the_scopes_that_read_it(corpus: dict[str, Any]) -> None:
    """A workspace's upload rebuilds that workspace's index, in its own scope only; the other
    workspace keeps its index (no rebuild over the shared base). A shared-base write renews both,
    and so does a deletion in the scope."""
    acme, zenith = RetrievalScope(corpus["acme"].pk), RetrievalScope(corpus["zenith"].pk)
    before = lexical_index.get(acme), lexical_index.get(zenith)
    parking = ingest([("Parking", "handbook/parking.md", "Acme staff park in the underground garage.")], corpus["acme"])

    after = lexical_index.get(acme), lexical_index.get(zenith)
    assert after[0] is not before[0] and after[1] is before[1]
    assert after[0] is not None and after[1] is not None
    assert after[0].unknown_terms("garage") == [] and after[1].unknown_terms("garage") == ["garag"]

    ingest([("Bikes", "shared/bikes.md", "Bike racks stand by the main entrance.")], None)
    shared_write = lexical_index.get(acme), lexical_index.get(zenith)
    assert shared_write[0] is not after[0] and shared_write[1] is not after[1]
    assert all(index is not None and index.unknown_terms("racks") == [] for index in shared_write)

    documents_delete(documents=Document.objects.filter(pk=parking[0].pk))
    deleted = lexical_index.get(acme), lexical_index.get(zenith)
    assert deleted[0] is not shared_write[0] and deleted[1] is shared_write[1]
    assert deleted[0] is not None and deleted[0].unknown_terms("garage") == ["garag"]
