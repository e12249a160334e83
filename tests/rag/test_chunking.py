"""Chunking: sizes, boundaries, whole-sentence overlap, titles, determinism, the content hash."""

from __future__ import annotations

import itertools
import re

import pytest

from rag.ingestion.chunking import content_hash, split_into_chunks, split_sentences

SENTENCES = [f"Sentence number {i} explains one more detail about refunds and delivery." for i in range(40)]
TEXT = "\n\n".join(" ".join(SENTENCES[p * 5 : p * 5 + 5]) for p in range(8))


def bodies(chunks: list[str], title: str = "Refund policy") -> list[str]:
    prefix = f"{title}\n\n"
    assert all(chunk.startswith(prefix) for chunk in chunks)
    return [chunk[len(prefix) :] for chunk in chunks]


def test_empty_text_gives_no_chunks():
    assert split_into_chunks(title="T", text="") == []
    assert split_into_chunks(title="T", text="  \n\n \t ") == []


def test_short_text_is_one_titled_chunk():
    assert split_into_chunks(title="  Refund   policy ", text="Refunds take 14 days.") == [
        "Refund policy\n\nRefunds take 14 days."
    ]


def test_chunks_respect_the_target_and_cover_every_sentence():
    chunks = split_into_chunks(title="Refund policy", text=TEXT, target_chars=400, overlap_chars=100)
    texts = bodies(chunks)
    assert len(texts) > 5
    assert all(len(body) <= 400 for body in texts)
    assert all(len(body) >= 150 for body in texts[:-1])  # no degenerate slivers
    joined = "\n".join(texts)
    for sentence in SENTENCES:
        assert sentence in joined


def test_chunks_end_on_sentence_boundaries_and_overlap_by_whole_sentences():
    texts = bodies(split_into_chunks(title="Refund policy", text=TEXT, target_chars=400, overlap_chars=100))
    for body in texts:
        pieces = re.split(r"(?<=\.)\s+", body)
        assert all(piece in SENTENCES for piece in pieces)  # only whole sentences
    overlaps = 0
    for previous, current in itertools.pairwise(texts):
        first = re.split(r"(?<=\.)\s+", current)[0]
        if first in previous:
            overlaps += 1
            assert len(first) <= 100
    assert overlaps >= len(texts) // 2


def test_zero_overlap_repeats_nothing():
    texts = bodies(split_into_chunks(title="Refund policy", text=TEXT, target_chars=400, overlap_chars=0))
    pieces = [p for body in texts for p in re.split(r"(?<=\.)\s+", body)]
    assert len(pieces) == len(set(pieces)) == len(SENTENCES)


def test_paragraph_breaks_are_preferred_and_kept():
    text = "First paragraph sentence one. First paragraph sentence two.\n\nSecond paragraph here."
    (only,) = split_into_chunks(title="T", text=text, target_chars=800)
    assert only == "T\n\nFirst paragraph sentence one. First paragraph sentence two.\n\nSecond paragraph here."
    para = "A sentence of about fifty characters, give or take. " * 6
    chunks = split_into_chunks(title="T", text=f"{para.strip()}\n\n{para.strip()}", target_chars=400, overlap_chars=0)
    assert len(chunks) == 2 and chunks[0] == f"T\n\n{para.strip()}"


def test_a_huge_sentence_is_split_between_words():
    words = [f"word{i}" for i in range(600)]
    texts = bodies(split_into_chunks(title="T", text=" ".join(words), target_chars=200, overlap_chars=50), "T")
    assert all(len(body) <= 200 for body in texts)
    assert " ".join(texts).split() == words  # nothing lost, nothing cut mid-word


def test_list_items_and_soft_wraps():
    text = "Steps:\n- open settings\n- click reset\nThis line is\nsoft wrapped."
    (only,) = split_into_chunks(title="T", text=text)
    assert only == "T\n\nSteps:\n- open settings\n- click reset This line is soft wrapped."


def test_deterministic():
    first = split_into_chunks(title="Refund policy", text=TEXT, target_chars=300, overlap_chars=120)
    assert first == split_into_chunks(title="Refund policy", text=TEXT, target_chars=300, overlap_chars=120)


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError):
        split_into_chunks(title="T", text="x", target_chars=0)


def test_sentence_splitter_keeps_abbreviations_and_numbers():
    text = "Refunds take 3.5 days, e.g. for cards. Mr. Smith agrees! Is it free? Yes. approx. two days later."
    assert split_sentences(text) == [
        "Refunds take 3.5 days, e.g. for cards.",
        "Mr. Smith agrees!",
        "Is it free?",
        "Yes. approx. two days later.",
    ]


def test_content_hash_ignores_only_cosmetic_whitespace():
    base = content_hash("Refund policy", "Refunds take 14 days.\n\nShipping is free.")
    assert len(base) == 64 and int(base, 16) >= 0
    assert content_hash(" Refund policy ", "Refunds  take 14 days.\r\n\r\n\r\nShipping is free.  ") == base
    assert content_hash("Refund policy", "Refunds take 15 days.\n\nShipping is free.") != base
    assert content_hash("Refund Policy", "Refunds take 14 days.\n\nShipping is free.") != base
    moved = content_hash("Refund policy\nRefunds take", "14 days.")
    assert moved != content_hash("Refund policy", "Refunds take 14 days.")
