"""The answer service: offline extractive answers, Mistral through its SDK against a fake server,
and the degraded fallback when the generator fails."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from rag.providers.extractive import NO_INFORMATION_ANSWER, ExtractiveGenerator
from rag.providers.factory import get_embedder, get_passage_embedder, reset_providers
from rag.services.answering import answer_question, answer_stream

pytestmark = pytest.mark.django_db

_EXTRACTIVE_GENERATOR = ExtractiveGenerator()


def test_offline_answer_quotes_the_reset_guide_with_a_citation(knowledge_base):
    answer = answer_question(question="how do I reset my password")
    assert answer.provider == "extractive" and not answer.degraded
    assert answer.sources[0]["source"] == "guides/reset.md"
    assert "[1]" in answer.text and "/api/auth/password/reset/" in answer.text
    markers = {int(m) for m in __import__("re").findall(r"\[(\d)\]", answer.text)}
    assert markers <= set(range(1, len(answer.sources) + 1))


def test_no_information_answer_when_nothing_matches(knowledge_base):
    answer = answer_question(question="best temperature for baking sourdough bread")
    assert answer.text == NO_INFORMATION_ANSWER and answer.sources == []


@pytest.fixture
def mistral_generator(settings, fake_mistral):
    settings.RAG_GENERATOR = "mistral"
    settings.MISTRAL_API_KEY = "test-key"
    settings.MISTRAL_SERVER_URL = fake_mistral.url
    settings.RAG_TIMEOUT_S = 2.0
    settings.RAG_REQUEST_TIMEOUT_S = 0.5
    reset_providers()
    return fake_mistral


def chat_requests(fake) -> list[dict]:
    return [r.body for r in fake.requests if r.path.endswith("/chat/completions")]


def test_mistral_answer_is_grounded_in_fenced_documents(knowledge_base, mistral_generator):
    answer = answer_question(question="how do I reset my password")
    assert answer.provider == "mistral" and not answer.degraded
    assert answer.usage and answer.usage["total_tokens"] > 0
    sent = chat_requests(mistral_generator)
    assert len(sent) == 1
    prompt = json.dumps(sent[0]["messages"])
    assert "If you forgot your password" in prompt and "<document" in prompt
    assert sent[0]["messages"][-1]["content"].endswith("how do I reset my password")


@pytest.mark.parametrize("fault", ["500", "hang", "close", "invalid_json"])
def test_generator_failure_degrades_to_the_extractive_answer(knowledge_base, mistral_generator, fault):
    mistral_generator.fail_next(fault, count=50)
    started = time.monotonic()
    answer = answer_question(question="how do I reset my password")
    assert time.monotonic() - started < 2.0 + 0.5 + 1.5  # budget + one attempt + slack: a bound, not a benchmark
    assert answer.degraded and answer.provider == "extractive"
    assert "[1]" in answer.text and answer.sources[0]["source"] == "guides/reset.md"


def test_rate_limit_is_retried_then_answered(knowledge_base, mistral_generator):
    mistral_generator.fail_next("429", count=1)
    answer = answer_question(question="how do I reset my password")
    assert not answer.degraded and len(chat_requests(mistral_generator)) == 2


def test_stream_yields_sources_deltas_then_done(knowledge_base, mistral_generator):
    events = list(answer_stream(question="how do I reset my password"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and kinds.count("delta") >= 2
    done = events[-1].data
    assert "".join(e.data for e in events if e.kind == "delta") == done.text
    # A model's stream announces the retrieved documents; the stored answer lists those it cites.
    assert done.sources and all(source in events[0].data for source in done.sources) and done.usage


def test_no_documents_means_no_model_call(knowledge_base, mistral_generator):
    answer = answer_question(question="best temperature for baking sourdough bread")
    assert answer.text == NO_INFORMATION_ANSWER and chat_requests(mistral_generator) == []


def test_mistral_and_pinecone_end_to_end(settings, fake_mistral, fake_pinecone, db):
    settings.RAG_EMBEDDER, settings.RAG_VECTOR_STORE, settings.RAG_GENERATOR = "mistral", "pinecone", "mistral"
    settings.MISTRAL_API_KEY, settings.MISTRAL_SERVER_URL = "test-key", fake_mistral.url
    settings.PINECONE_API_KEY, settings.PINECONE_HOST = "pc-test-key", fake_pinecone.url
    settings.PINECONE_NAMESPACE = "kb"
    reset_providers()
    from rag.services.ingestion import DocumentInput, document_ingest

    doc = document_ingest(
        item=DocumentInput(
            title="Reset a forgotten password",
            category="Guide",
            source="guides/reset.md",
            content="Ask for a reset email at /api/auth/password/reset/.",
        )
    ).document
    upserts = [r.body for r in fake_pinecone.requests_to("/vectors/upsert") if r.body["namespace"] == "kb"]
    assert len(upserts) == 1
    vector = upserts[0]["vectors"][0]
    assert vector["metadata"] == {"document_id": doc.pk, "chunk_index": 0, "category": "Guide"}
    assert len(vector["values"]) == 1024
    # Its centroid comes from Mistral's vectors too, and hybrid retrieval ranks documents by it.
    doc.refresh_from_db()
    assert doc.centroid_model == get_embedder().name and len(bytes(doc.centroid or b"")) == 1024 * 4
    from rag.services.retrieval import lexical_index

    centroids = lexical_index.documents()
    assert centroids is not None and centroids.matrix.shape == (1, 1024)
    answer = answer_question(question="Ask for a reset email at /api/auth/password/reset/.")
    assert answer.provider == "mistral" and answer.sources[0]["document_id"] == doc.pk
    assert any(r.path == "/v1/embeddings" for r in fake_mistral.requests)


LONG_GUIDE = (
    "\n\n".join(
        f"## Section {n}\n\n"
        + ("The spare key for the bike shed hangs in the blue cabinet at reception. " if n == 1 else "")
        + " ".join(f"Topic {n} sentence {k} explains one more detail of area {n}." for k in range(30))
        for n in range(8)
    )
    + "\n\n## Prices\n\nThe Premium plan costs 12 EUR a month, billed on the first day of the month."
)


def test_the_extractive_answerer_reads_nearby_chunks_and_its_citations_are_verified(db):
    from rag.models import Chunk
    from rag.services.answering import NEARBY_CHUNKS, Answer, _contract, _for_extractive, _request
    from rag.services.ingestion import DocumentInput, document_ingest
    from rag.services.retrieval import retrieve
    from rag.types import ContextPassage

    item = DocumentInput(title="Plans", category="Guide", source="plans.md", content=LONG_GUIDE)
    document = document_ingest(item=item)
    chunks = list(Chunk.objects.filter(document=document.document).order_by("index"))
    assert len(chunks) > NEARBY_CHUNKS + 2
    retrieval = retrieve(query="How much does the Premium plan cost per month?")
    request = _request("How much does the Premium plan cost per month?", retrieval, ())
    # As if retrieval had handed over only the first chunk: the price is several chunks away.
    only_first = [
        type(d)(**{**d.__dict__, "passages": (ContextPassage(chunks[0].id, chunks[0].text, 0),)})
        for d in request.documents
    ]
    widened = _for_extractive(type(request)(**{**request.__dict__, "documents": only_first}))
    indexes = [p.index for p in widened.documents[0].passages]
    assert indexes == list(range(NEARBY_CHUNKS + 1))  # the chunk itself, then its neighbours in order
    assert all(p.unit_vectors is not None for p in widened.documents[0].passages[1:])
    generation = _EXTRACTIVE_GENERATOR.generate(widened)
    answer = _contract(Answer(generation.text, [], "extractive", "x"), generation, retrieval, widened)
    # The price is further than the nearby chunks reach: passages without a price do not answer
    # "how much", so the answerer declines rather than quote them.
    assert answer.answer_status == "abstained" and not answer.citations
    # A question the widened chunks do answer is cited from them, its citations verified.
    question = "Where is the spare key for the bike shed kept?"
    vector = get_passage_embedder().embed_query(question)
    asked = replace(widened, question=question, searched=question, question_vector=vector)
    generation = _EXTRACTIVE_GENERATOR.generate(asked)
    answer = _contract(Answer(generation.text, [], "extractive", "x"), generation, retrieval, asked)
    assert answer.answer_status == "answered"
    cited = {c["chunk_id"] for c in answer.citations}
    assert cited <= {p.chunk_id for p in widened.documents[0].passages}
    assert cited & {p.chunk_id for p in widened.documents[0].passages[1:]}  # from a nearby chunk
