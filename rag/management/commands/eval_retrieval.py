"""``manage.py eval_retrieval QUESTIONS.jsonl``: print hit@1, hit@3, MRR@3 and search latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.evaluation import evaluate, load_questions
from rag.services.retrieval import lexical_index


class Command(BaseCommand):
    help = 'Evaluate retrieval on a question set: lines of {"q": ..., "expect": [source, ...]}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("questions", type=Path)
        parser.add_argument(
            "--fusion",
            choices=["hybrid", "dense", "both"],
            default=None,
            help="Override RAG_FUSION; 'both' prints one line for each.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            questions = load_questions(options["questions"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        modes = ["dense", "hybrid"] if options["fusion"] == "both" else [options["fusion"] or settings.RAG_FUSION]
        for mode in modes:
            lexical_index.get()  # build outside the timed loop, as a warm server would have it
            report = evaluate(questions, fusion=mode)
            self.stdout.write(f"[{mode}] {report.summary()}")
            if options["verbosity"] >= 2:
                for question, got in report.misses:
                    self.stdout.write(f"  miss@1: {question!r} -> {got}")
