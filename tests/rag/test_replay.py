"""The offline replay of hybrid fusion (rag.eval.replay, manage.py eval_replay): its default must give
what retrieve() gives, or every figure it prints for a variant is about some other code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from rag.eval.replay import Variant, load, record, replay, separation
from rag.evaluation import load_questions, run

EVAL_DIR = Path(django_settings.BASE_DIR) / "rag" / "eval"
# The help-centre sets: 107 questions, follow-ups with their history and topic switches among them.
SETS = ("questions.jsonl", "follow_ups.jsonl", "topic_switches.jsonl")


@pytest.fixture
def help_centre(db):
    call_command("populate_documents", stdout=io.StringIO())


def questions():
    found = [q for name in SETS for q in load_questions(EVAL_DIR / name)]
    assert any(q.history for q in found)
    return found


def recorded(tmp_path: Path, asked) -> Path:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record(asked)), encoding="utf-8")
    return path


@pytest.mark.parametrize("method", ["scores", "rrf"])
def test_the_default_replay_gives_what_retrieve_gives(help_centre, tmp_path, settings, method):
    settings.RAG_FUSION_METHOD = method
    asked = questions()
    corpus = load(recorded(tmp_path, asked))
    live = [list(outcome.sources) for outcome in run(asked, fusion="hybrid")]
    assert [row.sources for row in corpus.questions] == live
    assert [replay(corpus, row) for row in corpus.questions] == live
    assert any(len(row.lists) == 4 for row in corpus.questions)  # follow-ups: the conversation's rankings too
    assert all(row.lexical == [False, True, False, True][: len(row.lists)] for row in corpus.questions)


def test_a_variant_reorders_and_rrf_records_take_none(help_centre, tmp_path, settings):
    asked = questions()
    corpus = load(recorded(tmp_path, asked))
    dense_only = [replay(corpus, row, Variant(lexical=0.0)) for row in corpus.questions]
    assert dense_only != [row.sources for row in corpus.questions]  # BM25 at weight 0 changes rankings
    settings.RAG_FUSION_METHOD = "rrf"
    rrf = load(recorded(tmp_path, asked[:3]))
    with pytest.raises(ValueError, match="score fusion"):
        replay(rrf, rrf.questions[0], Variant(second=0.1))


def test_variants_parse_from_their_names():
    assert Variant.parse("default") == Variant()
    assert Variant.parse("second=0.1,lexical=1.5") == Variant(second=0.1, lexical=1.5)
    assert Variant.parse("separation") == Variant(separation=10)
    assert Variant.parse("separation=5,document=0.5,zscore,floor=0") == Variant(
        separation=5, document=0.5, zscore=True, floor=0.0
    )
    with pytest.raises(ValueError, match="unknown variant"):
        Variant.parse("boost=2")


def test_separation_is_how_far_the_best_stands_out_from_the_next_ones():
    assert separation([0.9, 0.5, 0.5, 0.1], 10) == pytest.approx(1 - 1 / 3)
    assert separation([1.0, 0.99, 0.98, 0.0], 10) < separation([0.9, 0.5, 0.5, 0.1], 10)
    assert separation([10.0] + [5.0] * 9 + [0.0] * 40, 10) == pytest.approx(0.5)
    assert separation([3.0], 10) == 1.0 and separation([2.0, 2.0], 10) == 0.0


def test_the_command_prints_each_variant_and_refuses_a_stale_record(help_centre, tmp_path, capsys):
    asked = [q for q in questions() if q.split is None][:20]
    split = [q.__class__(**{**q.__dict__, "split": "dev"}) for q in asked]
    path = recorded(tmp_path, split)
    call_command("eval_replay", str(path), "--variant", "default", "--variant", "second=0.5,centroid=0.5")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["set", "dev"] and "second=0.5,centroid=" in lines[0]
    assert lines[1].startswith("record ") and lines[2].startswith("mean of 1 ")
    assert len(lines[1].split()) == 2 + 2 * 3  # set, split, then hit@3 / MRR@3 for each variant
    assert lines[3].startswith("sets up / down") and "MRR@3 +0 -0" in lines[3]  # the baseline against itself
    data = json.loads(path.read_text())
    data["questions"][0]["sources"] = ["not/what/it/gave.md"]
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError, match="differs from the recorded retrieval"):
        call_command("eval_replay", str(path))
