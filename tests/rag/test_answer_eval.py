"""The answer evaluation: the shipped set and corpus, the loader, the metrics and the command."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rag.eval.answers import (
    KINDS,
    AnswerCase,
    evaluate,
    failures,
    is_abstained,
    knowledge_base_fingerprint,
    knowledge_base_load,
    load_cases,
    matched_facts,
    missing_documents,
    normalise,
    score,
    select,
    summarise,
)
from rag.management.commands import eval_answers
from rag.models import Document
from rag.services.ingestion import DocumentInput, document_ingest

EVAL_DIR = Path(__file__).resolve().parents[2] / "rag" / "eval" / "answers"
NO_INFO = "I don't have specific information about this topic."


def answer(text, *sources, status=None):
    fields = {"text": text, "sources": [{"document_id": i, "source": s} for i, s in enumerate(sources)]}
    if status is not None:
        fields["answer_status"] = status
    return SimpleNamespace(**fields)


def case(kind="factoid", facts=(r"\b48\s*(h|hours)\b",), docs=("a.md",), split="dev", q="how long?", history=()):
    return AnswerCase(q=q, kind=kind, split=split, expect_docs=tuple(docs), facts=tuple(facts), history=history)


UNANSWERABLE = case(kind="unanswerable", facts=(), docs=())


# --- the shipped question set and corpus -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_cases(EVAL_DIR / "questions.jsonl")


def test_the_shipped_set_has_enough_questions_of_every_kind_split_evenly(shipped):
    assert len(shipped) >= 120
    kinds = Counter(c.kind for c in shipped)
    assert set(kinds) == set(KINDS)
    assert kinds["unanswerable"] / len(shipped) >= 0.18
    for kind in KINDS:
        per_split = Counter(c.split for c in shipped if c.kind == kind)
        assert abs(per_split["dev"] - per_split["test"]) <= 2, kind
    domains = Counter((c.expect_docs[0].split("/")[0], c.split) for c in shipped if c.answerable)
    for domain in {d for d, _ in domains}:
        assert abs(domains[domain, "dev"] - domains[domain, "test"]) <= 2, domain
    assert all(c.history for c in shipped if c.kind == "follow-up")
    assert all(len(c.expect_docs) >= 2 for c in shipped if c.kind == "multi-document")


@pytest.mark.parametrize(
    ("questions", "corpus"),
    [
        ("questions.jsonl", "corpus"),
        ("fresh/questions.jsonl", "fresh/corpus"),
        ("fresh2/questions.jsonl", "fresh2/corpus"),
    ],
    ids=["shipped", "fresh", "fresh2"],
)
def test_every_expected_document_exists_and_states_the_facts(questions, corpus):
    cases, corpus = load_cases(EVAL_DIR / questions), EVAL_DIR / corpus
    assert cases and missing_documents(cases, corpus) == []
    for c in cases:
        text = normalise(" ".join((corpus / source).read_text(encoding="utf-8") for source in c.expect_docs))
        assert matched_facts(text, c.facts) == c.facts, (c.line, c.q)


def test_the_corpus_has_three_domains_of_help_centre_articles():
    domains = [d for d in (EVAL_DIR / "corpus").iterdir() if d.is_dir()]
    assert len(domains) >= 3
    for domain in domains:
        articles = sorted(domain.glob("*.md"))
        assert 10 <= len(articles) <= 14, domain.name
        texts = [a.read_text(encoding="utf-8") for a in articles]
        for article, text in zip(articles, texts, strict=True):
            assert re.match(r"---\ntitle: .+\ncategory: (Guide|FAQ|Policy|Other)\n---\n# ", text), article
        assert sum("\n| --- |" in t or "\n|---|" in t for t in texts) >= 3, domain.name  # tables
        assert sum("\n1. " in t for t in texts) >= 5, domain.name  # numbered steps
        assert sum(bool(re.search(r"^## FAQ$", t, flags=re.M)) for t in texts) >= 5, domain.name
        assert sum(bool(re.search(r":\n\n- ", t)) for t in texts) >= 3, domain.name  # lists after a colon


# --- loading ----------------------------------------------------------------------------------------


def write_lines(tmp_path, *rows):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


GOOD = {"q": "how long?", "kind": "factoid", "expect_docs": ["a.md"], "facts": ["48"], "split": "dev"}


def test_loader_reads_cases_with_their_line_numbers(tmp_path):
    follow = {**GOOD, "kind": "follow-up", "history": ["first question"], "split": "test"}
    none = {"q": "x?", "kind": "unanswerable", "expect_docs": [], "facts": [], "split": "test"}
    cases = load_cases(write_lines(tmp_path, GOOD, "", follow, none))
    expected = [("factoid", "dev", 1), ("follow-up", "test", 3), ("unanswerable", "test", 4)]
    assert [(c.kind, c.split, c.line) for c in cases] == expected
    assert cases[1].history == ("first question",) and not cases[2].answerable
    assert [c.q for c in select(cases, "test")] == ["how long?", "x?"] and len(select(cases, "all")) == 3


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ("{not json", "Expecting property name"),
        ({**GOOD, "kind": "trivia"}, "'kind' must be one of"),
        ({**GOOD, "split": "train"}, "'split' must be one of"),
        ({**GOOD, "q": " "}, "'q' must be"),
        ({**GOOD, "facts": []}, "needs at least one 'facts'"),
        ({**GOOD, "expect_docs": []}, "needs at least one 'facts'"),
        ({**GOOD, "kind": "unanswerable"}, "has empty 'facts'"),
        ({**GOOD, "facts": ["(unclosed"]}, "not a valid regex"),
        ({**GOOD, "facts": "48"}, "'facts' must be a list"),
        ({**GOOD, "kind": "follow-up"}, "needs a 'history'"),
    ],
)
def test_loader_rejects_bad_rows_naming_the_line(tmp_path, row, error):
    path = write_lines(tmp_path, GOOD, row)
    with pytest.raises(ValueError, match=re.escape(error)) as raised:
        load_cases(path)
    assert f"{path}:2:" in str(raised.value)


def test_missing_documents_are_named(tmp_path):
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    assert missing_documents([case(docs=("a.md", "b.md"))], tmp_path) == ["line 0: b.md"]


# --- scoring ----------------------------------------------------------------------------------------


def test_abstention_is_the_answer_status_else_the_no_information_sentence():
    assert is_abstained(answer("Anything", status="abstained"))
    assert not is_abstained(answer(NO_INFO, status="answered"))  # the status wins
    assert is_abstained(answer(NO_INFO + " These pages came closest: [1]", "a.md"))  # legacy, with sources
    assert is_abstained(answer("I don\u2019t have specific information about that."))
    assert not is_abstained(answer("The link is valid for 48 hours [1].", "a.md"))


def test_facts_are_case_insensitive_regexes_over_plain_text():
    facts = (r"\b48\s*(h|hours)\b", r"€\s*9\b", r"Account - Payments")
    assert matched_facts("Valid for 48\u00a0HOURS; costs €9 (Account \u2013 Payments).", facts) == facts
    assert matched_facts("costs €90", facts) == ()


def test_outcome_metrics():
    right = score(case(docs=("a.md", "b.md")), answer("Valid for 48 hours [1].", "a.md", "c.md"), ["c.md", "a.md"])
    assert (right.fact_recall, right.citation_precision, right.hit) == (1.0, 0.5, True)
    half = score(case(facts=("48", "email")), answer("48 [1]", "a.md"), ["x.md", "y.md", "z.md", "a.md"])
    assert (half.fact_recall, half.citation_precision, half.hit) == (0.5, 1.0, False)  # a.md ranked 4th
    refused = score(case(), answer(NO_INFO, "a.md"))
    assert refused.abstained and refused.fact_recall == 0.0 and refused.citation_precision is None
    uncited = score(case(), answer("48 hours"))
    assert uncited.citation_precision == 0.0
    declined = score(UNANSWERABLE, answer("", status="abstained"))
    assert declined.fact_recall is None and declined.hit is None and declined.correct_abstention


def test_summary_of_a_split():
    outcomes = [
        score(case(), answer("48 hours [1]", "a.md"), ["a.md"]),  # recall 1, precision 1
        score(case(facts=("48", "email")), answer("48 [1] [2]", "a.md", "b.md"), ["b.md"]),  # 0.5, 0.5, miss
        score(case(), answer(NO_INFO), []),  # false refusal: recall 0
        score(UNANSWERABLE, answer(NO_INFO)),  # right abstention
        score(UNANSWERABLE, answer("A confident guess that is far too long.", "a.md")),  # wrong
    ]
    summary = summarise("dev", outcomes)
    assert (summary.questions, summary.answerable, summary.unanswerable) == (5, 3, 2)
    assert summary.fact_recall == pytest.approx(0.5)
    assert (summary.abstention, summary.false_refusals) == (0.5, pytest.approx(1 / 3))
    assert summary.citation_precision == pytest.approx(0.75)
    assert summary.median_chars == len("48 hours [1]")  # of the three answers given: 10, 12 and 38 chars
    assert summary.hit3 == pytest.approx(1 / 3)  # only the first retrieved its expected document
    assert summary.line().startswith("[dev] questions: 5 (3 answerable, 2 unanswerable)  fact recall: 0.500")
    assert "abstention: 0.500  false refusals: 0.333  citation precision: 0.750" in summary.line()
    assert summarise("test", []).line().startswith("[test] questions: 0")


def test_failures_name_each_shortcoming():
    lines = failures(
        [
            score(case(facts=("48", "email")), answer("48 [1]", "b.md")),
            score(case(q="refused?"), answer(NO_INFO), ["a.md"]),
            score(UNANSWERABLE, answer("A guess.", "a.md")),
            score(case(q="fine"), answer("48 hours [1]", "a.md")),
        ]
    )
    assert len(lines) == 4
    assert "missed ['email']" in lines[0] and "cited ['b.md'], expected ['a.md']" in lines[1]
    assert "'refused?': abstained" in lines[2] and "answered an unanswerable question" in lines[3]


def test_evaluate_passes_history_as_user_turns():
    seen = []

    def fake_answer(question, history):
        seen.append((question, [(t.role, t.content) for t in history]))
        return answer("48 hours [1]", "a.md")

    outcomes = evaluate(
        [case(kind="follow-up", history=("first",))], answer_fn=fake_answer, retrieve_fn=lambda q, h: []
    )
    assert seen == [("how long?", [("user", "first")])] and outcomes[0].fact_recall == 1.0


# --- against the real service, on a small corpus --------------------------------------------------------


ARTICLE = """---
title: Return a rental kayak
category: Guide
---
# Return a rental kayak

Kayaks must be returned to the boathouse by 18:00 on the day of rental.
A late return costs a fee of 15 euros per hour, charged to the card on file.
"""


@pytest.fixture
def small_eval(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "kayaks").mkdir(parents=True)
    (corpus / "kayaks" / "return-a-kayak.md").write_text(ARTICLE, encoding="utf-8")
    rows = [
        {"q": "What is the fee for returning a kayak late?", "kind": "factoid", "split": "dev"}
        | {"expect_docs": ["kayaks/return-a-kayak.md"], "facts": [r"\b15 euros"]},
        {"q": "best temperature for baking sourdough bread", "kind": "unanswerable", "split": "dev"}
        | {"expect_docs": [], "facts": []},
    ]
    return corpus, write_lines(tmp_path, *rows)


@pytest.mark.django_db
def test_knowledge_base_becomes_exactly_the_corpus_and_the_service_is_scored(small_eval):
    corpus, questions = small_eval
    stale = DocumentInput(title="Old", content="An old page about kayaks.", category="Other", source="stale/old.md")
    document_ingest(item=stale)
    assert "1 created" in knowledge_base_load(corpus=corpus)
    assert list(Document.objects.values_list("source", flat=True)) == ["kayaks/return-a-kayak.md"]
    assert "1 unchanged" in knowledge_base_load(corpus=corpus)
    kayak, sourdough = evaluate(load_cases(questions))
    assert kayak.fact_recall == 1.0 and kayak.sources == ("kayaks/return-a-kayak.md",) and kayak.hit
    assert sourdough.abstained and sourdough.correct_abstention


@pytest.mark.django_db
def test_command_prints_one_line_per_split_in_the_isolated_process(small_eval, monkeypatch, tmp_path):
    corpus, questions = small_eval
    kb = tmp_path / "kb"
    monkeypatch.setenv(eval_answers.KB_MARKER, str(kb.resolve()))
    out = io.StringIO()
    args = ["--questions", str(questions), "--corpus", str(corpus), "--kb-dir", str(kb)]
    call_command("eval_answers", *args, stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("[test] questions: 0")
    assert lines[0].startswith(
        "[dev] questions: 2 (1 answerable, 1 unanswerable)  fact recall: 1.000  abstention: 1.000"
    )
    out = io.StringIO()
    call_command("eval_answers", *args, "--split", "dev", "-v", stdout=out, stderr=io.StringIO())
    summary, kinds = out.getvalue().splitlines()  # nothing failed: -v adds only the breakdown by kind
    assert summary.startswith("[dev] questions: 2")
    assert kinds == "  fact recall by kind: factoid 1.00 (1), unanswerable abstained 1.00 (1)"


def test_command_reruns_itself_on_its_own_knowledge_base(monkeypatch, tmp_path):
    monkeypatch.delenv(eval_answers.KB_MARKER, raising=False)
    calls = []

    def fake_run(command, env, check):
        calls.append((command, env))
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(eval_answers.subprocess, "run", fake_run)
    call_command("eval_answers", "--split", "test", "--kb-dir", str(tmp_path / "kb"), stdout=io.StringIO())
    [(command, env)] = calls
    kb = str((tmp_path / "kb").resolve())
    assert command[1].endswith("manage.py") and command[2:5] == ["eval_answers", "--split", "test"]
    assert env[eval_answers.KB_MARKER] == kb and env["VAR_DIR"] == kb
    assert env["DATABASE_URL"] == f"sqlite:///{kb}/db.sqlite3" and env["RAG_VECTOR_STORE"] == "faiss"
    monkeypatch.setattr(eval_answers.subprocess, "run", lambda command, env, check: SimpleNamespace(returncode=3))
    with pytest.raises(CommandError, match="exit status 3"):
        call_command("eval_answers", "--kb-dir", str(tmp_path / "kb"), stdout=io.StringIO())


def test_plain_v_means_verbosity_two():
    parser = eval_answers.Command().create_parser("manage.py", "eval_answers")
    assert parser.parse_args(["-v"]).verbosity == 2
    assert parser.parse_args(["-v", "--split", "test"]).verbosity == 2
    assert parser.parse_args(["-v", "0"]).verbosity == 0 and parser.parse_args([]).verbosity == 1


@pytest.mark.django_db
def test_command_rejects_a_bad_question_file(tmp_path, monkeypatch):
    kb = tmp_path / "kb"
    monkeypatch.setenv(eval_answers.KB_MARKER, str(kb.resolve()))
    bad = write_lines(tmp_path, {**GOOD, "kind": "trivia"})
    with pytest.raises(CommandError, match="'kind' must be one of"):
        call_command("eval_answers", "--questions", str(bad), "--kb-dir", str(kb), stdout=io.StringIO())
    missing = write_lines(tmp_path, GOOD)
    with pytest.raises(CommandError, match="expect_docs not in"):
        call_command(
            "eval_answers",
            "--questions",
            str(missing),
            "--corpus",
            str(tmp_path),
            "--kb-dir",
            str(kb),
            stdout=io.StringIO(),
        )


def test_the_knowledge_base_is_rebuilt_when_chunking_or_the_embedder_changed(monkeypatch, tmp_path, settings):
    monkeypatch.delenv(eval_answers.KB_MARKER, raising=False)
    kb = tmp_path / "kb"
    seen = []

    def fake_run(command, env, check):
        seen.append(sorted(p.name for p in kb.iterdir()) if kb.exists() else [])
        (kb / "index").mkdir(parents=True, exist_ok=True)
        (kb / "db.sqlite3").write_text("db", encoding="utf-8")
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(eval_answers.subprocess, "run", fake_run)
    run = lambda *extra: call_command("eval_answers", "--kb-dir", str(kb), *extra, stdout=io.StringIO())  # noqa: E731
    run()
    (kb / "mail").mkdir()  # not the evaluation's: never removed
    run()
    assert seen == [[], ["db.sqlite3", "fingerprint", "index", "mail"]]  # same code and embedder: kept
    run("--rebuild")
    settings.MISTRAL_EMBED_MODEL = "another-model"
    run()
    assert seen[2:] == [["mail"], ["mail"]]
    assert (kb / "fingerprint").read_text(encoding="utf-8") == knowledge_base_fingerprint(
        base_dir=Path(settings.BASE_DIR), settings=settings
    )
