"""Retrieval over a small knowledge base with the local embedder, FAISS and BM25 fusion."""

from __future__ import annotations

import pytest

from rag.models import Chunk
from rag.providers.factory import get_embedder
from rag.services.retrieval import retrieve
from rag.types import Turn, Vectors

pytestmark = pytest.mark.django_db


def sources(result) -> list[str]:
    return [d.source for d in result.documents]


@pytest.mark.parametrize("fusion", ["dense", "hybrid"])
def test_reset_question_finds_the_reset_guide_first(knowledge_base, fusion):
    result = retrieve(query="how do I reset my password", fusion=fusion)
    assert sources(result)[0] == "guides/reset.md"
    top = result.documents[0]
    assert top.title == "Reset a forgotten password" and top.category == "Guide"
    assert 0 < top.score <= 1 and "reset" in top.snippet.lower()
    assert len(result.documents) <= 3


def test_top_k_and_minimum_score(knowledge_base, settings):
    assert len(retrieve(query="password reset email link", top_k=1).documents) == 1
    settings.RAG_MIN_SCORE = 0.99
    assert retrieve(query="how do I reset my password").documents == []


def test_unrelated_question_finds_nothing(knowledge_base):
    assert retrieve(query="best temperature for baking sourdough bread").documents == []


def test_follow_up_uses_the_previous_question(knowledge_base):
    history = [
        Turn(role="user", content="I forgot my password, how do I get back in?"),
        Turn(role="assistant", content="Ask for a reset email [1]."),
    ]
    result = retrieve(query="how long is the link valid?", history=history)
    assert sources(result)[0] == "guides/reset.md"


def test_query_embedding_is_cached(knowledge_base, monkeypatch):
    retrieve(query="how do I reset my password")
    embedder = get_embedder()
    monkeypatch.setattr(embedder, "embed_query", lambda text: pytest.fail("embedded a cached query"))
    assert sources(retrieve(query="how do I reset my password"))[0] == "guides/reset.md"


def test_vectors_of_chunks_missing_from_the_database_are_ignored(knowledge_base):
    reset_doc = knowledge_base[0]
    Chunk.objects.filter(document=reset_doc).delete()  # the vectors stay behind
    assert "guides/reset.md" not in sources(retrieve(query="how do I reset my password"))


def test_a_new_topic_in_the_same_session_is_not_dragged_back(knowledge_base):
    history = [Turn(role="user", content="I forgot my password, how do I get back in?")]
    result = retrieve(query="What is an AI chatbot and how does retrieval-augmented generation work?", history=history)
    assert sources(result)[0] == "faq/chatbot.md"


def test_a_follow_up_costs_one_model_run_and_reuses_the_previous_question(knowledge_base, monkeypatch):
    embedder = get_embedder()
    calls: list[list[str]] = []
    batch, single = embedder.embed_documents, embedder.embed_query

    def recording_batch(texts: list[str]) -> Vectors:
        calls.append(list(texts))
        return batch(texts)

    def recording_single(text: str) -> Vectors:
        calls.append([text])
        return single(text)

    monkeypatch.setattr(embedder, "embed_documents", recording_batch)
    monkeypatch.setattr(embedder, "embed_query", recording_single)
    history = [Turn(role="user", content="I forgot my password, how do I get back in?")]
    retrieve(query="how long is the link valid?", history=history)
    # Nothing cached yet: the question and the previous one share a single model run.
    assert calls == [["how long is the link valid?", "I forgot my password, how do I get back in?"]]
    calls.clear()
    retrieve(query="and can I ask for another one?", history=history)
    # The previous question's vector comes from the cache: only the new question is embedded.
    assert calls == [["and can I ask for another one?"]]


def test_lexical_mode_ranks_by_bm25_alone(knowledge_base):
    result = retrieve(query="verification link expires", fusion="lexical")
    assert sources(result)[0] == "guides/verify.md"


def test_an_unknown_fusion_mode_is_refused(knowledge_base):
    with pytest.raises(ValueError, match="fusion"):
        retrieve(query="reset", fusion="bogus")


@pytest.mark.parametrize("fusion", ["lexical", "hybrid"])
def test_typos_are_corrected_against_the_corpus_vocabulary(knowledge_base, fusion):
    result = retrieve(query="chnage my pasword", fusion=fusion)
    assert sources(result)[0] == "guides/reset.md"
    assert result.query == "chnage my pasword"  # the user's words are reported as typed


def test_results_are_ordered_by_the_score_they_show(knowledge_base):
    result = retrieve(query="how long are messages and backups kept?", top_k=3)
    scores = [d.score for d in result.documents]
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)


FOLLOW_UP_DOCS = [
    (
        "Autumn harvest show",
        "garden/harvest-show.md",
        "The community garden holds its autumn harvest show on the first Saturday of October. Members "
        "exhibit vegetables, flowers and preserves. Entry to the harvest show costs 4 euros for visitors "
        "and is free for garden members. Children under 12 enter for free.",
    ),
    (
        "Bike-share prices",
        "bikes/prices.md",
        "A single bike-share ride costs 2 euros for the first 30 minutes, then 1 euro for every further "
        "30 minutes. A day pass costs 12 euros and a yearly membership costs 90 euros. Prices include VAT.",
    ),
    (
        "Bike-share stations",
        "bikes/stations.md",
        "There are 140 bike-share stations across the city. Each station shows how many bikes are free. "
        "Return a bike to any station with a free dock.",
    ),
]


@pytest.fixture
def two_domains(db):
    from rag.services.ingestion import DocumentInput, documents_ingest

    return documents_ingest(
        items=[DocumentInput(title=t, content=c, source=s) for t, s, c in FOLLOW_UP_DOCS],
    )


def test_a_follow_up_about_money_stays_with_the_conversations_document(two_domains):
    history = [Turn(role="user", content="When is the autumn harvest show at the community garden?")]
    result = retrieve(query="how much does it cost to enter?", history=history)
    assert sources(result)[0] == "garden/harvest-show.md"


def test_without_the_conversation_the_same_words_find_prices(two_domains):
    assert sources(retrieve(query="how much does a bike ride cost?"))[0] == "bikes/prices.md"


@pytest.mark.parametrize("fusion", ["dense", "hybrid"])
def test_a_follow_up_of_a_follow_up_reads_the_question_they_both_lean_on(two_domains, fusion):
    # "is it every year?" leaned on the harvest show; the question after it is read with both.
    history = [
        Turn(role="user", content="When is the autumn harvest show at the community garden?"),
        Turn(role="user", content="is it every year?"),
    ]
    result = retrieve(query="how much does it cost to enter?", history=history, fusion=fusion)
    assert sources(result)[:1] == ["garden/harvest-show.md"]


def test_a_chain_of_follow_ups_stops_at_a_question_that_stands_alone(two_domains):
    # The bike question matches on its own: the garden before it is not read with "and for a day?".
    history = [
        Turn(role="user", content="When is the autumn harvest show at the community garden?"),
        Turn(role="user", content="How much does a bike-share ride cost?"),
    ]
    result = retrieve(query="and for a whole day?", history=history)
    assert sources(result)[0] == "bikes/prices.md"


FORMAT_DOCS = [
    (
        "Export a conversation",
        "guides/export.md",
        "Open a session and choose Export in its menu. The conversation is downloaded as a Markdown or "
        "JSON file with every question, answer and cited source, so you can keep it or share it.",
    ),
    (
        "Uploading documents",
        "guides/formats.md",
        "Supported formats: the knowledge base accepts Markdown, plain text, HTML and PDF files up to "
        "10 MB each. Other file types are rejected at upload with a clear message.",
    ),
]


@pytest.fixture
def export_and_formats(db):
    from rag.services.ingestion import DocumentInput, documents_ingest

    return documents_ingest(items=[DocumentInput(title=t, content=c, source=s) for t, s, c in FORMAT_DOCS])


@pytest.mark.parametrize("fusion", ["dense", "hybrid"])
def test_a_short_follow_up_is_not_captured_by_a_page_that_shares_its_words(export_and_formats, fusion):
    # "which formats?" alone is the formats page, word for word; after a question about exporting a
    # conversation it asks about the export.
    history = [Turn(role="user", content="How do I export a conversation?")]
    result = retrieve(query="which formats?", history=history, fusion=fusion)
    assert sources(result)[0] == "guides/export.md"
    assert sources(retrieve(query="which formats?", fusion=fusion))[0] == "guides/formats.md"


def test_a_short_question_on_a_new_topic_is_not_dragged_back_to_the_previous_one(export_and_formats):
    # It matches the knowledge base about as well as the previous question did: not a follow-up, so
    # its own rankings keep their full weight (were they cut like a follow-up's, the export would win).
    # (Best-match ratio 0.75 with the int8 embedder, 0.76 with the float32 one: clear of the 0.7
    # line. "Can I upload PDF or HTML files?" sat on it, 0.706 and 0.692, and flipped with the model.)
    history = [Turn(role="user", content="How do I export a conversation?")]
    result = retrieve(query="Does upload accept PDF and HTML files?", history=history, fusion="hybrid")
    assert sources(result)[0] == "guides/formats.md"


def test_follow_up_weights_for_a_leaning_a_long_and_a_new_topic_question(export_and_formats, monkeypatch, settings):
    from rag.services import retrieval

    seen: list[list[float]] = []
    fuse = retrieval.score_fusion

    def spy(lists, weights, group=None):
        if group is None:  # the chunks' fusion, not the documents' (RAG_DOCUMENT_FUSION)
            seen.append(list(weights))
        return fuse(lists, weights=weights, group=group)

    monkeypatch.setattr(retrieval, "score_fusion", spy)
    history = [Turn(role="user", content="How do I export a conversation?")]
    retrieve(query="which formats?", history=history, fusion="hybrid")
    retrieve(query="which formats does the export of a whole conversation offer to its users?", history=history)
    retrieve(query="Does upload accept PDF and HTML files?", history=history, fusion="hybrid")
    retrieve(query="which formats?", history=history, fusion="lexical")
    lexical = settings.RAG_LEXICAL_WEIGHT
    follow_up = settings.RAG_FOLLOW_UP_WEIGHT
    own = retrieval.FOLLOW_UP_OWN_WEIGHT
    alone = retrieval.STANDALONE_CONTEXT_WEIGHT
    # Own dense, own BM25, then the dense and BM25 rankings read with the previous question.
    assert seen[0] == pytest.approx([own, own * lexical, follow_up, follow_up * lexical])
    assert own < 1
    # A long question stands alone: its own rankings count in full, its conversation half.
    assert alone == 0.5
    assert seen[1] == pytest.approx([1.0, lexical, alone, alone * lexical])
    # So does a short one that matches on its own (a new topic, the test below).
    assert follow_up > 1
    assert seen[2] == pytest.approx([1.0, lexical, alone, alone * lexical])
    # Without a dense ranking whether it leans is unknown: the conversation keeps its weight.
    assert seen[3] == pytest.approx([lexical, follow_up * lexical])


def test_under_rrf_a_new_topic_questions_conversation_counts_as_much_as_its_own_rankings(
    export_and_formats, monkeypatch, settings
):
    from rag.services import retrieval

    settings.RAG_FUSION_METHOD = "rrf"
    seen: list[list[float]] = []
    fuse = retrieval.reciprocal_rank_fusion

    def spy(lists, k, weights):
        seen.append(list(weights))
        return fuse(lists, k=k, weights=weights)

    monkeypatch.setattr(retrieval, "reciprocal_rank_fusion", spy)
    history = [Turn(role="user", content="How do I export a conversation?")]
    result = retrieve(query="Does upload accept PDF and HTML files?", history=history, fusion="hybrid")
    lexical = settings.RAG_LEXICAL_WEIGHT
    assert seen == [pytest.approx([1.0, lexical, 1.0, lexical])]
    assert sources(result)[0] == "guides/formats.md"


def test_only_a_short_question_that_matches_worse_than_the_previous_one_is_a_follow_up():
    from rag.services.retrieval import _leans_on_conversation

    assert _leans_on_conversation("and for A3?", own_best=0.18, previous_best=0.64)
    assert not _leans_on_conversation("How do I unlock a bike?", own_best=0.68, previous_best=0.55)
    long_question = "what exactly happens to all of my data when I close the account for good?"
    assert not _leans_on_conversation(long_question, own_best=0.1, previous_best=0.9)


def test_workspaces_without_documents_share_the_shared_base_lexical_index(db):
    """Every new personal workspace reads exactly the shared base: one index serves them all, and a
    workspace gets its own only once it has documents."""
    from rag.services.ingestion import DocumentInput, document_ingest
    from rag.services.retrieval import lexical_index
    from rag.types import RetrievalScope
    from tests.factories import UserFactory
    from workspaces.services import workspace_personal_get

    document_ingest(item=DocumentInput(title="Shared", content="Tokens expire after seven days.", source="s.md"))
    first, second = (workspace_personal_get(user=UserFactory.create()) for _ in range(2))
    shared = lexical_index.get(RetrievalScope())
    assert lexical_index.get(RetrievalScope(workspace_id=first.pk)) is shared
    assert lexical_index.get(RetrievalScope(workspace_id=second.pk)) is shared
    assert lexical_index.get(RetrievalScope(workspace_id=first.pk, include_shared=False)) is None
    document_ingest(item=DocumentInput(title="Own", content="Badges open the east door.", workspace_id=first.pk))
    own = lexical_index.get(RetrievalScope(workspace_id=first.pk))
    assert own is not None and own is not lexical_index.get(RetrievalScope()) and len(own) == 2


GUIDE = """# Periodic tasks

## Crontab schedules

A crontab schedule fires at fixed times: give it the day of the week, the hour and the minute, as a cron
table line would.

## Intervals

An interval schedule runs a task every few seconds or minutes, counted from when the scheduler started.

## The beat scheduler

The beat process reads the schedule and sends each task to the workers when it is due. Run exactly one
beat process.
"""

CHANGES = """# Change history

## 2.1.1

- Have a task run every Monday morning at 7:30: fixed, such a task ran at 7:00.

## 2.1.0

- Fixed a memory leak in the Redis result backend.
- The SQS transport accepts a region option.

## 2.0.3

- Pickle is no longer the default serializer.
- The AMQP connection is retried on startup.

## 2.0.2

- Worker log lines show the process id.
- Documentation: the installation page lists the supported Python versions.
"""


@pytest.fixture
def guide_and_changelog(knowledge_base):
    from rag.services.ingestion import DocumentInput, document_ingest

    for title, source, text in [("Change history", "changes.md", CHANGES), ("Periodic tasks", "guide.md", GUIDE)]:
        document_ingest(item=DocumentInput(title=title, source=source, content=text))


def test_the_page_about_a_topic_outranks_a_changelog_that_mentions_it_in_passing(guide_and_changelog, settings):
    """The changelog's one-line section is the closest chunk, and chunks alone put it first; the
    guide's centroid is about scheduling tasks, the changelog's about nothing in particular."""
    settings.RAG_RELEASE_NOTES_LAST = False  # centroids alone (the next test: release notes last)
    question = "how do I run a task every week"
    settings.RAG_DOCUMENT_WEIGHT = 0.0
    assert sources(retrieve(query=question))[:2] == ["changes.md", "guide.md"]
    settings.RAG_DOCUMENT_WEIGHT = 1.0
    assert sources(retrieve(query=question))[:2] == ["guide.md", "changes.md"]
    assert sources(retrieve(query=question, fusion="dense"))[:2] == ["changes.md", "guide.md"]  # chunks alone


def test_a_page_whose_chunks_lead_different_rankings_passes_a_chunk_second_in_both(knowledge_base, settings):
    """Per chunk, the page's best chunk (first by meaning) and the other page's chunk (second in both
    rankings) are close; counting the page's other chunk, first by its words, settles it."""
    from rag.services.ingestion import DocumentInput, document_ingest
    from rag.services.retrieval import _group_by_document, _Rankings

    words = " ".join(f"word{i}" for i in range(180))
    page = document_ingest(
        item=DocumentInput(title="Page", source="page.md", content=f"# Page\n\n## One\n\n{words}\n\n## Two\n\n{words}")
    ).document
    first, second = Chunk.objects.filter(document=page).order_by("index").values_list("id", flat=True)[:2]
    other, filler, more = Chunk.objects.exclude(document=page).values_list("id", flat=True)[:3]
    rankings = _Rankings()
    rankings.lists = [[(first, 0.9), (other, 0.72), (filler, 0.5)], [(second, 10.0), (other, 7.0), (more, 4.0)]]
    rankings.weights = [1.0, 1.0]

    def ranked() -> list[int]:
        found = _group_by_document(
            rankings.fuse(),
            dict.fromkeys([first, second, other, filler, more], 0.9),
            3,
            rankings.ideal(),
            lambda document_id: 0.0,
            rankings.document_fusion,
            check_similarity=True,
            scope=rankings.scope,
        )
        return [document.document_id for document in found]

    other_page = Chunk.objects.get(id=other).document_id
    settings.RAG_DOCUMENT_FUSION = 0.0  # the other page's chunk: 0.55 + 0.5 against 1 + 0
    assert ranked()[:2] == [other_page, page.id]
    settings.RAG_DOCUMENT_FUSION = 0.25  # the page: 1 + 0.25 x (2 - 1)
    assert ranked()[:2] == [page.id, other_page]
    settings.RAG_FUSION_METHOD = "rrf"  # RRF ranks documents by their best chunk alone
    assert rankings.document_fusion({first: page.id}) == {}


RELEASE = """# 2.1.1

## Bugs fixed

- A task scheduled to run every Monday morning at 7:30 ran at 7:00 instead.
"""


@pytest.fixture
def guide_and_release_note(knowledge_base):
    from rag.services.ingestion import DocumentInput, document_ingest

    for title, source, text in [("2.1.1", "releases/2.1.1.md", RELEASE), ("Periodic tasks", "guide.md", GUIDE)]:
        document_ingest(item=DocumentInput(title=title, source=source, content=text))


def test_release_notes_come_after_the_pages_unless_the_question_is_about_changes(guide_and_release_note, settings):
    """A one-section release note is all about the feature it fixed, so its centroid cannot tell it
    from the guide; a how-to question gets the guide first, a question about versions the note."""
    question = "how do I run a task every monday morning"
    settings.RAG_RELEASE_NOTES_LAST = False
    assert sources(retrieve(query=question))[:2] == ["releases/2.1.1.md", "guide.md"]
    settings.RAG_RELEASE_NOTES_LAST = True
    result = retrieve(query=question)
    assert sources(result)[:2] == ["guide.md", "releases/2.1.1.md"]
    assert result.documents[0].score >= result.documents[1].score  # still ordered by the score shown
    assert sources(retrieve(query="which version fixed tasks running at the wrong time on monday"))[0] == (
        "releases/2.1.1.md"
    )
    # A follow-up of a question about changes is about changes too.
    history = [Turn(role="user", content="what changed in the scheduler in 2.1.1?")]
    assert sources(retrieve(query="the monday morning task?", history=history))[0] == "releases/2.1.1.md"


def test_document_vectors_rank_by_centroid_and_ignore_another_dimension():
    import numpy as np

    from rag.services.retrieval import DocumentVectors

    vectors = DocumentVectors(
        np.asarray([7, 3, 5, 9]), np.asarray([[1, 0], [0, 1], [0.6, 0.8], [0.6, 0.8]], dtype=np.float32)
    )
    ranking = vectors.ranking(np.asarray([0, 1], dtype=np.float32))
    assert ranking is not None
    assert [ranking.rank(document_id) for document_id in (3, 5, 9, 7, 4)] == [1, 2, 2, 4, None]  # 4: no centroid
    # Normalised over the best `depth` documents: the closest 1, the depth-th and those below it 0.
    assert [ranking.share(document_id, depth=4) for document_id in (3, 5, 7, 4)] == pytest.approx([1, 0.8, 0, None])
    assert [ranking.share(document_id, depth=2) for document_id in (3, 5, 7)] == pytest.approx([1, 0, 0])
    assert vectors.ranking(np.asarray([1, 0, 0], dtype=np.float32)) is None  # another embedder's dimension
    assert (
        DocumentVectors(np.asarray([], dtype=np.int64), np.zeros((0, 2), np.float32)).ranking(np.ones(2, np.float32))
        is None
    )


def test_centroids_written_by_a_reindex_are_used_without_a_restart(knowledge_base, caplog):
    """A document from before centroids existed gets one from ``reindex`` (in any process): the
    chunks stay the same, and the next search sees the new centroid all the same. Until then no
    document gets centroid votes, or the others would be favoured over it."""
    from rag.models import Document
    from rag.services.ingestion import index_rebuild
    from rag.services.retrieval import knowledge_base_changed, lexical_index

    Document.objects.filter(pk=knowledge_base[0].pk).update(centroid=None, centroid_model="")
    knowledge_base_changed()
    assert lexical_index.documents() is None
    assert "1 of 5 documents have no centroid" in caplog.text and "manage.py reindex" in caplog.text
    index_rebuild()
    found = lexical_index.documents()
    assert found is not None and sorted(found.ids.tolist()) == sorted(d.pk for d in knowledge_base)


def test_a_question_announcing_a_new_topic_is_not_read_with_the_previous_one(two_domains):
    history = [Turn(role="user", content="When is the autumn harvest show at the community garden?")]
    result = retrieve(query="Totally unrelated: how much does it cost?", history=history)
    assert sources(result)[0] == "bikes/prices.md"
    assert result.searched == "how much does it cost?"  # the cue is not searched for
    # Without the cue the same words are a follow-up about the show.
    assert sources(retrieve(query="how much does it cost?", history=history))[0] == "garden/harvest-show.md"
