"""Unit vectors from the chunk's own model run: each unit's tokens (with its section's name) pooled
out of the chunk's token embeddings; a unit beyond the model's window embedded on its own."""

from __future__ import annotations

import numpy as np
import pytest

from rag.ingestion.units import chunk_units
from rag.providers.local_embedder import MAX_TOKENS, LocalEmbedder, load_runtime
from rag.services.ingestion import _unit_spans, unit_vectors

CHUNK = (
    "Bike share \u203a Plans and prices\n\n"
    "A day pass costs 9 euros and includes unlimited rides of up to 45 minutes. "
    "Monthly members pay 19 euros a month.\n\n"
    "The plans are:\n| plan | price |\n| Day | 9 EUR |\n| Month | 19 EUR |\n\n"
    "Lost bikes are charged to the account holder after 24 hours."
)


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=2)


def _vectors(packed: bytes) -> np.ndarray:
    return np.frombuffer(packed, dtype=np.float16).reshape(-1, 384).astype(np.float32)


def test_each_unit_is_located_exactly_in_its_chunk_after_its_section_name():
    units = chunk_units(CHUNK)
    spans, fallbacks = _unit_spans(CHUNK)
    assert len(spans) == len(units) == len(fallbacks) > 4
    for unit, pieces, fallback in zip(units, spans, fallbacks, strict=True):
        (section_start, section_end), (start, end) = pieces
        assert CHUNK[section_start:section_end] == unit.section == "Plans and prices"
        assert CHUNK[start:end] == unit.quote and fallback == unit.embed_text
    # The table's rows lie inside the table unit, each at its own place.
    rows = [pieces[-1] for unit, pieces in zip(units, spans, strict=True) if unit.kind == "row"]
    assert len(rows) == 2 and rows[0] != rows[1]


def test_a_repeated_sentence_is_placed_twice():
    sentence = "Please bring your membership card to every visit."
    chunk = f"Library \u203a Visits\n\n{sentence}\n\nOpening hours vary by branch and by season.\n\n{sentence}"
    spans, _ = _unit_spans(chunk)
    quotes = [pieces[-1] for pieces in spans if chunk[pieces[-1][0] : pieces[-1][1]] == sentence]
    assert len(quotes) == 2 and quotes[0] != quotes[1]


def test_unit_vectors_are_the_chunks_token_embeddings_pooled_over_each_unit(embedder):
    packed = unit_vectors([CHUNK])[0]
    vectors = _vectors(packed)
    units = chunk_units(CHUNK)
    assert vectors.shape == (len(units), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)  # float16 storage
    # Recomputed independently: the chunk's own run, the tokens whose offsets fall in the spans.
    runtime = load_runtime(1)
    encoding = runtime.tokenizer.encode(CHUNK)
    hidden = embedder._hidden(encoding.ids, runtime)
    spans, _ = _unit_spans(CHUNK)
    for row, pieces in zip(vectors, spans, strict=True):
        inside = [
            k
            for k, (start, end) in enumerate(encoding.offsets)
            if encoding.special_tokens_mask[k] == 0 and any(s <= start and end <= e for s, e in pieces)
        ]
        expected = hidden[inside].mean(axis=0)
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(row, expected, atol=2e-3)


def test_each_unit_vector_stays_near_its_own_text(embedder):
    vectors = _vectors(unit_vectors([CHUNK])[0])
    units = chunk_units(CHUNK)
    fresh = embedder.embed_documents([u.embed_text for u in units])
    own = (vectors * fresh).sum(axis=1)
    assert own.min() > 0.6  # table units read with their header lowest (0.64)
    # Read in context, two sentences about the same prices blur together (the day pass and the
    # monthly price are nearest each other's text); a sentence on another topic stays apart.
    lost = next(i for i, u in enumerate(units) if u.quote.startswith("Lost bikes"))
    assert int((vectors[lost] @ fresh.T).argmax()) == lost


def test_units_beyond_the_window_are_embedded_on_their_own(embedder):
    filler = " ".join(f"Paragraph sentence number {i} talks about opening hours." for i in range(40))
    tail = "Late returns cost 20 cents per item and day."
    chunk = f"Library \u203a Fees\n\n{filler}\n\n{tail}"
    assert len(load_runtime(1).tokenizer.encode(chunk).ids) == MAX_TOKENS  # truncated
    units = chunk_units(chunk)
    vectors = _vectors(unit_vectors([chunk])[0])
    assert units[-1].quote == tail
    alone = embedder.embed_documents([units[-1].embed_text])[0]
    np.testing.assert_allclose(vectors[-1], alone, atol=2e-3)
    # The first sentence is inside the window: pooled from the chunk, so not its text alone.
    first_alone = embedder.embed_documents([units[0].embed_text])[0]
    assert float(vectors[0] @ first_alone) < 0.999


def test_the_chunk_vectors_are_unchanged_by_pooling_units(embedder):
    chunk_vector, units = embedder.embed_with_spans([CHUNK], [_unit_spans(CHUNK)[0]], [_unit_spans(CHUNK)[1]])
    np.testing.assert_array_equal(chunk_vector[0], embedder.embed_documents([CHUNK])[0])
    assert units[0].shape == (len(chunk_units(CHUNK)), 384)


@pytest.mark.django_db
def test_ingestion_with_unit_vectors_is_timed_as_embedding_documents():
    """The local model's chunks-with-units call is the ingestion's embedding: the embedding
    histogram counts it like any provider's embed_documents."""
    from rag.providers.factory import get_embedder
    from rag.services.ingestion import DocumentInput, document_ingest
    from tests.observability.conftest import sample

    def count() -> float:
        return sample("ragchat_retrieval_duration_seconds_count", provider="local", operation="embed_documents")

    get_embedder()
    before = count()
    document_ingest(item=DocumentInput(title="Lockers", content="Lockers by the entrance take a one-euro coin."))
    assert count() > before
