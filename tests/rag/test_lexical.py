"""Lexical ranking: tokenizer and stemmer, BM25 search over chunk ids, reciprocal rank fusion."""

from __future__ import annotations

import pytest

from rag.lexical import (
    LexicalIndex,
    index_terms,
    reciprocal_rank_fusion,
    score_fusion,
    stem,
    tokenize,
    with_word_parts,
)

TEXTS = {
    101: "Refunds are issued within 14 days of receiving the returned item.",
    102: "Shipping is free for orders above 50 euros; express shipping costs extra.",
    103: "To reset your password, open the login page and click 'Forgot password'.",
    104: "The warranty lasts two years and covers manufacturing defects.",
    105: "Refund requests for custom products are refused; refunds otherwise take two weeks.",
}


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(list(TEXTS), list(TEXTS.values()))


@pytest.mark.parametrize(
    "forms",
    [
        ("refund", "refunds", "refunded", "refunding"),
        ("ship", "ships", "shipped", "shipping"),
        ("cancel", "cancels", "cancelled", "cancellation"),
        ("policy", "policies"),
        ("charge", "charges", "charged"),
    ],
)
def test_stemmer_conflates_inflections(forms):
    assert len({stem(form) for form in forms}) == 1


def test_tokenize_drops_stop_words_and_keeps_numbers():
    assert tokenize("How do I reset my Password within 5 days?") == ["reset", "password", "within", "5", "day"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ImageDraw.rounded_rectangle()", "ImageDraw Image Draw rounded rectangle"),
        ("HTTPResponse and getHTTPResponse", "HTTPResponse HTTP Response and getHTTPResponse get HTTP Response"),
        ("open at 10am, utf8 only", "open at 10am 10 am utf8 utf 8 only"),
        ("RGBA 2FA A3 plain words", "RGBA 2FA A3 plain words"),  # capitals and plain words stay whole
        ("Müller in Linköping, ÉtatCivil", "Müller in Linköping ÉtatCivil État Civil"),  # cases by Unicode
    ],
)
def test_compound_words_are_followed_by_their_parts(text, expected):
    assert with_word_parts(text) == expected


def test_identifiers_match_their_words_either_way():
    texts = {
        1: "Call QuerySet.filter() to narrow the rows a model returns.",
        2: "A query string is sent in the URL; sets of rows are not.",
        3: "The shop opens at 10 am on Sundays and public holidays.",
        4: "The office opens on Sundays.",
    }
    index = LexicalIndex.build(list(texts), list(texts.values()))
    assert index.search("filter a query set", top_k=3)[0][0] == 1
    assert index.search("queryset filter", top_k=3)[0][0] == 1
    assert index.search("open 10am sunday", top_k=3)[0][0] == 3
    # The answerer's tokenizer keeps whole words.
    assert tokenize("QuerySet") == ["queryset"] and index_terms("QuerySet") == ["queryset", "query", "set"]


def test_search_ranks_matching_chunks_by_bm25(index):
    results = index.search("how long do refunds take", top_k=5)
    assert [chunk_id for chunk_id, _ in results] == [105, 101]  # 105 says "refund" twice
    assert results[0][1] > results[1][1] > 0


def test_search_matches_inflected_forms(index):
    assert index.search("resetting passwords", top_k=3)[0][0] == 103
    assert index.search("shipped", top_k=3)[0][0] == 102


def test_search_returns_only_matches_and_respects_top_k(index):
    assert index.search("baking sourdough bread", top_k=5) == []
    assert index.search("the and of", top_k=5) == []  # only stop words
    assert len(index.search("refunds shipping password warranty", top_k=2)) == 2
    assert index.search("refunds", top_k=0) == []


def test_empty_index():
    empty = LexicalIndex.build([], [])
    assert len(empty) == 0 and empty.search("refund", top_k=3) == []


def test_build_checks_lengths():
    with pytest.raises(ValueError):
        LexicalIndex.build([1, 2], ["only one text"])


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion([[1, 2, 3], [4, 2, 5]])
    ids = [item for item, _ in fused]
    assert ids[0] == 2  # second in both beats first in one only
    assert set(ids) == {1, 2, 3, 4, 5}
    assert dict(fused)[2] == pytest.approx(1 / 62 + 1 / 62)


def test_rrf_weights_and_k():
    fused = dict(reciprocal_rank_fusion([[1, 2], [2, 1]], k=10, weights=[2.0, 1.0]))
    assert fused[1] == pytest.approx(2 / 11 + 1 / 12)
    assert fused[1] > fused[2]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], weights=[1.0, 1.0])


def test_rrf_is_deterministic_and_counts_duplicates_once():
    assert reciprocal_rank_fusion([[5, 5, 6]]) == reciprocal_rank_fusion([[5, 6]])
    assert [i for i, _ in reciprocal_rank_fusion([[7], [8]])] == [7, 8]  # ties: first seen first
    assert reciprocal_rank_fusion([]) == []


def test_score_fusion_adds_scores_normalised_over_each_rankings_candidates():
    dense = [(1, 0.80), (2, 0.70), (3, 0.40)]  # cosines: 2 is close behind 1
    bm25 = [(3, 12.0), (2, 11.0), (4, 2.0)]  # BM25, another scale
    fused = dict(score_fusion([dense, bm25]))
    assert fused[1] == pytest.approx(1.0)  # first in one, absent from the other
    assert fused[2] == pytest.approx(0.75 + 0.9)  # near the top of both: first
    assert fused[3] == pytest.approx(0.0 + 1.0)
    assert fused[4] == pytest.approx(0.0)  # last of its ranking: returned, but worth nothing
    assert [item for item, _ in score_fusion([dense, bm25])] == [2, 1, 3, 4]
    # Unlike ranks, scores keep the gaps: far ahead in one ranking beats a distant second in both,
    # where reciprocal rank fusion puts the second first.
    rankings = [[(5, 0.9), (6, 0.3), (8, 0.1)], [(7, 3.0), (6, 1.0), (9, 0.0)]]
    assert [item for item, _ in score_fusion(rankings)][:3] == [5, 7, 6]
    assert reciprocal_rank_fusion([[item for item, _ in ranking] for ranking in rankings], k=20)[0][0] == 6


def test_score_fusion_weights_ties_and_degenerate_rankings():
    fused = dict(score_fusion([[(1, 2.0), (2, 1.0)], [(2, 5.0), (1, 4.0)]], weights=[2.0, 1.0]))
    assert fused == pytest.approx({1: 2.0, 2: 1.0})
    with pytest.raises(ValueError):
        score_fusion([[(1, 1.0)]], weights=[1.0, 1.0])
    # One candidate, or candidates all scored alike: each counts as the best.
    assert score_fusion([[(9, 0.3)]]) == [(9, 1.0)]
    assert score_fusion([[(7, 0.5), (8, 0.5)]]) == [(7, 1.0), (8, 1.0)]  # ties: first seen first
    assert score_fusion([[(5, 3.0), (5, 1.0), (6, 1.0)]]) == score_fusion([[(5, 3.0), (6, 1.0)]])  # repeats once
    assert score_fusion([]) == [] and score_fusion([[]]) == []


def test_score_fusion_by_group_counts_each_groups_best_item_once_per_ranking():
    dense, bm25 = [(1, 0.9), (3, 0.72), (4, 0.5)], [(2, 10.0), (3, 7.0), (4, 4.0)]
    document_of = {1: 10, 2: 10, 3: 30, 4: 10}  # 1, 2 and 4 are chunks of one document
    assert [item for item, _ in score_fusion([dense, bm25])][:3] == [3, 1, 2]
    grouped = dict(score_fusion([dense, bm25], group=document_of))
    assert grouped == pytest.approx({10: 2.0, 30: 0.55 + 0.5})  # 4 is not counted again for 10
    assert dict(score_fusion([dense, bm25], group={3: 30})) == pytest.approx({30: 1.05})  # ungrouped: left out


def test_bm25s_logs_at_the_configured_level_after_its_import(monkeypatch):
    import logging
    import sys

    from rag.lexical import LexicalIndex

    monkeypatch.delitem(sys.modules, "bm25s", raising=False)  # its import is what set DEBUG
    logger = logging.getLogger("bm25s")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    LexicalIndex.build([1], ["refunds take five days"])
    assert logger.level == logging.WARNING


def test_heading_words_count_heading_weight_times():
    # The same word once in each chunk, of the same length: in the body of the first, in the
    # heading path of the second. Counted once, the tie goes to the first; counted three
    # times, the section named by it comes first.
    texts = [
        "Deployment › Servers\n\nThe session cookie is signed with the secret key.",
        "Deployment › Session\n\nThe servers cookie is signed with the secret key.",
    ]
    plain = LexicalIndex.build([1, 2], texts)
    weighted = LexicalIndex.build([1, 2], texts, heading_weight=3)
    assert [chunk_id for chunk_id, _ in plain.search("session", top_k=2)] == [1, 2]
    assert [chunk_id for chunk_id, _ in weighted.search("session", top_k=2)] == [2, 1]
    assert weighted.search("deployment", top_k=2)  # the repeated heading is still found


def test_heading_weight_must_be_positive():
    with pytest.raises(ValueError, match="heading_weight"):
        LexicalIndex.build([1], ["Title\n\nbody"], heading_weight=0)


def test_another_form_of_a_word_the_corpus_uses_keeps_its_stem():
    speller = LexicalIndex.build([1, 2], ["Find the kinds of books.", "Look it up in the catalogue."]).speller
    # "finds" is one edit from "kinds" and "looks" from "books", but their stems are known words:
    # they may only become a word of the same stem.
    assert speller.correct("finds looks") == "find look"
    assert speller.correct("look in the catalouge") == "look in the catalogue"
