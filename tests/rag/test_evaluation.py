"""Retrieval evaluation: metrics on hand-made rankings, the question-set loader, splits, the command."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from rag.eval.baselines import PROTOTYPES, Prototype, documents_in_order, pieces_of, run_prototype, split_characters
from rag.eval.corpora import CORPORA, DEFAULT_DEST, QUESTIONS_DIR, is_current
from rag.evaluation import (
    KINDS,
    Outcome,
    Question,
    after_unrelated,
    first_hit,
    hit_at,
    in_split,
    load_questions,
    ndcg_at,
    reciprocal_rank_at,
    select_split,
    splits_of,
    summarise,
)
from rag.management.commands import eval_retrieval
from rag.services.retrieval import FUSION_MODES

# --- metrics ----------------------------------------------------------------------------------

RANKED = ["a.rst", "b.rst", "c.rst", "d.rst"]


@pytest.mark.parametrize(
    ("relevant", "rank", "hit1", "hit3", "mrr3"),
    [
        ({"a.rst"}, 1, 1.0, 1.0, 1.0),
        ({"b.rst"}, 2, 0.0, 1.0, 0.5),
        ({"c.rst", "b.rst"}, 2, 0.0, 1.0, 0.5),  # the best-placed expected document counts
        ({"d.rst"}, None, 0.0, 0.0, 0.0),  # rank 4 is outside the top 3
        ({"z.rst"}, None, 0.0, 0.0, 0.0),
    ],
)
def test_hit_and_reciprocal_rank(relevant, rank, hit1, hit3, mrr3):
    assert first_hit(RANKED, relevant, 3) == rank
    assert hit_at(RANKED, relevant, 1) == hit1
    assert hit_at(RANKED, relevant, 3) == hit3
    assert reciprocal_rank_at(RANKED, relevant, 3) == mrr3


def test_ndcg_is_one_for_an_ideal_ranking_and_zero_without_a_hit():
    assert ndcg_at(RANKED, {"a.rst"}, 10) == 1.0
    assert ndcg_at(RANKED, {"a.rst", "b.rst"}, 10) == 1.0
    assert ndcg_at(RANKED, {"z.rst"}, 10) == 0.0
    assert ndcg_at([], {"a.rst"}, 10) == 0.0


def test_ndcg_discounts_lower_ranks_by_log2():
    assert ndcg_at(RANKED, {"c.rst"}, 10) == pytest.approx(1 / math.log2(4))
    # Two relevant documents at ranks 2 and 4 against the ideal ranks 1 and 2.
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(RANKED, {"b.rst", "d.rst"}, 10) == pytest.approx(expected)


def test_ndcg_stops_at_k_and_counts_a_repeated_source_once():
    ranked = ["x"] * 10 + ["a.rst"]
    assert ndcg_at(ranked, {"a.rst"}, 10) == 0.0
    assert ndcg_at(ranked, {"a.rst"}, 11) > 0.0
    assert ndcg_at(["a.rst", "a.rst"], {"a.rst", "b.rst"}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_summarise_averages_over_questions_and_lists_the_misses():
    first = Question(q="one", expect=("a.rst",))
    second = Question(q="two", expect=("c.rst",))
    report = summarise([Outcome(first, tuple(RANKED), 10.0), Outcome(second, tuple(RANKED), 30.0)])
    assert report.questions == 2
    assert (report.hit1, report.hit3) == (0.5, 1.0)
    assert report.mrr3 == pytest.approx((1 + 1 / 3) / 2)
    assert report.ndcg10 == pytest.approx((1 + 1 / math.log2(4)) / 2)
    assert report.p50_ms == 20.0
    assert report.misses == [("two", ["a.rst", "b.rst", "c.rst"])]
    assert summarise([]).questions == 0


# --- question sets ----------------------------------------------------------------------------


def write_set(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    return path


def test_loader_reads_split_kind_and_history(tmp_path):
    path = write_set(
        tmp_path / "set.jsonl",
        [
            {"q": "how do I reset it", "expect": ["a.rst", "b.rst"], "split": "dev", "kind": "howto"},
            {
                "q": "and how long?",
                "expect": ["a.rst"],
                "history": ["I forgot my password"],
                "kind": "follow_up",
                "split": "test",
            },
            {"q": "plain", "expect": ["c.md"]},
        ],
    )
    first, second, third = load_questions(path)
    assert first == Question(q="how do I reset it", expect=("a.rst", "b.rst"), split="dev", kind="howto")
    assert second.history == ("I forgot my password",)
    assert (second.split, second.kind) == ("test", "follow_up")
    assert (third.split, third.kind, third.history) == (None, None, ())


@pytest.mark.parametrize(
    "row",
    [
        {"q": "x", "expect": ["a"], "split": "train"},
        {"q": "x", "expect": ["a"], "kind": "riddle"},
        {"q": "x", "expect": []},
        {"q": "x", "expect": "a.rst"},
        {"q": "x", "expect": ["a"], "history": "previous question"},
        {"expect": ["a"]},
    ],
)
def test_loader_names_the_line_of_a_bad_entry(tmp_path, row):
    path = write_set(tmp_path / "bad.jsonl", [{"q": "fine", "expect": ["a"]}, row])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2:"):
        load_questions(path)


def test_loader_rejects_a_line_that_is_not_json(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"q": "fine", "expect": ["a"]}\n{"q": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2:"):
        load_questions(path)


def test_split_filter():
    dev = Question(q="d", expect=("a",), split="dev")
    test = Question(q="t", expect=("a",), split="test")
    questions = [dev, test, dev]
    assert select_split(questions, "dev") == [dev, dev]
    assert select_split(questions, "test") == [test]
    assert select_split(questions, "all") == questions
    assert in_split(test, "all") and not in_split(test, "dev")
    assert splits_of(questions, ["dev", "test"]) == ["dev", "test"]
    assert splits_of([dev], ["dev", "test", "all"]) == ["dev", "all"]


def test_a_set_without_splits_is_reported_whole():
    unsplit = [Question(q="q", expect=("a",))]
    assert splits_of(unsplit, ["dev", "test"]) == ["all"]
    assert select_split(unsplit, "all") == unsplit


@pytest.mark.parametrize("corpus", [corpus.name for corpus in CORPORA])
def test_shipped_sets_are_labelled_and_split(corpus):
    questions = load_questions(QUESTIONS_DIR / f"{corpus}.jsonl")
    assert len(questions) >= 45
    assert {q.split for q in questions} == {"dev", "test"}
    assert abs(len(select_split(questions, "dev")) - len(select_split(questions, "test"))) <= 5
    assert {q.kind for q in questions} == set(KINDS)
    follow_ups = [q for q in questions if q.kind == "follow_up"]
    assert follow_ups and all(q.history for q in follow_ups)
    assert len({q.q.lower() for q in questions}) == len(questions)
    assert all(not source.startswith("/") and ".." not in source for q in questions for source in q.expect)


@pytest.mark.parametrize("corpus", CORPORA, ids=[corpus.name for corpus in CORPORA])
def test_shipped_labels_name_pages_the_fetcher_keeps(corpus):
    """An expected file left out by the corpus's ``exclude`` patterns could never be retrieved."""
    expected = {source for q in load_questions(QUESTIONS_DIR / f"{corpus.name}.jsonl") for source in q.expect}
    assert [source for source in sorted(expected) if not corpus.wants(source)] == []


@pytest.mark.parametrize("corpus", CORPORA, ids=[corpus.name for corpus in CORPORA])
def test_shipped_labels_exist_in_the_fetched_corpus(corpus):
    folder = DEFAULT_DEST / corpus.name
    if not is_current(corpus, folder):
        pytest.skip(f"{corpus.name} is not fetched (python -m rag.eval.corpora fetch {corpus.name})")
    expected = {source for q in load_questions(QUESTIONS_DIR / f"{corpus.name}.jsonl") for source in q.expect}
    assert [source for source in sorted(expected) if not (folder / source).is_file()] == []


# --- the command ------------------------------------------------------------------------------


def rows_of(output: str) -> dict[tuple[str, str, str], list[str]]:
    """{(set, split, mode): [n, hit@1, hit@3, MRR@3, nDCG@10, p50]} from the printed table."""
    lines = output.strip().splitlines()
    assert lines[0].split()[:4] == ["set", "split", "n", "mode"]
    return {(cells[0], cells[1], cells[3]): [cells[2], *cells[4:]] for cells in map(str.split, lines[1:])}


@pytest.fixture
def split_set(tmp_path: Path) -> Path:
    return write_set(
        tmp_path / "kb.jsonl",
        [
            {
                "q": "I can't remember my password, what now?",
                "expect": ["guides/reset.md"],
                "split": "dev",
                "kind": "paraphrase",
            },
            {
                "q": "how many messages can I send each day",
                "expect": ["policies/limits.md"],
                "split": "test",
                "kind": "factoid",
            },
            {
                "q": "and how long is the link good for?",
                "expect": ["guides/verify.md"],
                "split": "test",
                "history": ["I never got the email to confirm my address after signing up"],
                "kind": "follow_up",
            },
        ],
    )


def test_command_reports_each_split_and_mode(knowledge_base, split_set):
    out = StringIO()
    call_command("eval_retrieval", str(split_set), stdout=out)
    rows = rows_of(out.getvalue())
    modes = ("dense", "lexical", "hybrid")
    assert list(rows) == [("kb", split, mode) for split in ("dev", "test") for mode in modes]
    for mode in modes:
        assert rows[("kb", "dev", mode)][:5] == ["1", "1.000", "1.000", "1.000", "1.000"]
        assert rows[("kb", "test", mode)][0] == "2"


def test_command_modes_are_the_ones_retrieve_knows():
    assert set(eval_retrieval.MODES) == set(FUSION_MODES)


def test_command_reports_each_kind_of_question_on_request(knowledge_base, split_set):
    out = StringIO()
    call_command("eval_retrieval", str(split_set), "--fusion", "hybrid", "--by-kind", stdout=out)
    rows = rows_of(out.getvalue())
    assert list(rows) == [
        ("kb", "dev", "hybrid"),
        ("kb:paraphrase", "dev", "hybrid"),
        ("kb", "test", "hybrid"),
        ("kb:factoid", "test", "hybrid"),
        ("kb:follow_up", "test", "hybrid"),
    ]
    assert rows[("kb:follow_up", "test", "hybrid")][0] == "1"


def test_command_reports_a_set_without_splits_as_all_and_several_sets(knowledge_base, split_set, tmp_path):
    unsplit = write_set(tmp_path / "help.jsonl", [{"q": "what is this chatbot", "expect": ["faq/chatbot.md"]}])
    out = StringIO()
    call_command("eval_retrieval", str(unsplit), str(split_set), "--split", "all", "--fusion", "dense", stdout=out)
    rows = rows_of(out.getvalue())
    assert set(rows) == {("help", "all", "dense"), ("kb", "all", "dense")}
    assert rows[("kb", "all", "dense")][0] == "3"


def test_command_rejects_a_bad_set(db, tmp_path):
    with pytest.raises(CommandError, match=r"missing\.jsonl"):
        call_command("eval_retrieval", str(tmp_path / "missing.jsonl"))
    bad = write_set(tmp_path / "bad.jsonl", [{"q": "x", "expect": ["a"], "split": "train"}])
    with pytest.raises(CommandError, match=r"bad\.jsonl:1:"):
        call_command("eval_retrieval", str(bad))


# --- issue 11's untuned prototypes beside the product's rankings ------------------------------


def test_character_splitter_cuts_at_the_coarsest_boundary_that_fits():
    text = "First paragraph here.\n\nSecond one, a bit longer.\n\n" + "word " * 30
    pieces = split_characters(text, 60)
    assert pieces[0] == "First paragraph here.\n\nSecond one, a bit longer."
    assert all(len(piece) <= 60 for piece in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())  # no word lost or repeated
    assert split_characters("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_characters("  \n\n ", 10) == []


def test_documents_come_in_the_order_of_their_best_piece():
    sources = ["a.md", "b.md", "a.md", "c.md"]
    assert documents_in_order([2, 1, 0, 3], sources) == ("a.md", "b.md", "c.md")
    assert documents_in_order([3, 1, 0], sources, depth=2) == ("c.md", "b.md")


@pytest.fixture
def documents_folder(tmp_path: Path) -> Path:
    from tests.conftest import KB_DOCUMENTS

    for title, _category, source, body in KB_DOCUMENTS:
        path = tmp_path / "docs" / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return tmp_path / "docs"


def test_command_ranks_with_the_prototypes_too(knowledge_base, split_set, documents_folder):
    out = StringIO()
    call_command(
        "eval_retrieval", str(split_set), "--fusion", "dense", "--baselines", str(documents_folder), stdout=out
    )
    rows = rows_of(out.getvalue())
    assert list(rows) == [("kb", split, mode) for split in ("dev", "test") for mode in ("dense", *PROTOTYPES)]
    for mode in PROTOTYPES:
        assert rows[("kb", "dev", mode)][:5] == ["1", "1.000", "1.000", "1.000", "1.000"]


def test_prototype_pieces_carry_their_title_and_source(documents_folder):
    pieces = pieces_of(documents_folder, 800)
    assert "guides/reset.md" in pieces.sources
    reset = pieces.texts[pieces.sources.index("guides/reset.md")]
    assert reset.startswith("Reset a forgotten password\n\n# Reset a forgotten password")


def test_the_prototype_keeps_no_conversation(knowledge_base, documents_folder):
    prototype = Prototype("proto-rrf", documents_folder)
    follow_up = Question(q="and how long is it good for?", expect=("guides/verify.md",), history=("verify email",))
    (outcome,) = run_prototype(prototype, [follow_up])
    assert outcome.sources == prototype.rank("and how long is it good for?")
    assert prototype._lexical("the and of") == []  # stop words only: no BM25 ranking, dense alone
    assert prototype._lexical("verification link") != []


def test_command_refuses_baselines_that_are_not_a_folder(db, split_set, tmp_path):
    with pytest.raises(CommandError, match="not a folder"):
        call_command("eval_retrieval", str(split_set), "--baselines", str(tmp_path / "nowhere"))


def test_after_unrelated_asks_each_standalone_question_after_another_topic():
    questions = [
        Question(q="reset my password", expect=("reset.md",), split="dev"),
        Question(q="forgot password again", expect=("reset.md", "login.md"), split="test"),
        Question(q="and for how long?", expect=("verify.md",), history=("verify email",)),
        Question(q="delete my account", expect=("delete.md",), split="dev"),
    ]
    switched = after_unrelated(questions)
    # The follow-up is left out; the second question skips the first (it shares reset.md) and
    # wraps round to the last; each keeps its split.
    assert [(q.q, q.history, q.split) for q in switched] == [
        ("reset my password", ("delete my account",), "dev"),
        ("forgot password again", ("delete my account",), "test"),
        ("delete my account", ("forgot password again",), "dev"),
    ]
    assert after_unrelated(questions[:1]) == []  # nothing unrelated to ask first


def test_command_reports_topic_switches_as_a_set_of_their_own(knowledge_base, split_set):
    out = StringIO()
    call_command("eval_retrieval", str(split_set), "--fusion", "hybrid", "--topic-switches", stdout=out)
    rows = rows_of(out.getvalue())
    assert rows[("kb~switch", "dev", "hybrid")][:2] == ["1", "1.000"]  # found despite the unrelated turn
    assert rows[("kb~switch", "test", "hybrid")][0] == "1"  # the follow-up has a history: not switched
