"""``manage.py eval_retrieval SET.jsonl...``: hit@1, hit@3, MRR@3 and nDCG@10 per set, split and mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.eval.baselines import PROTOTYPES, Prototype, run_prototype
from rag.eval.replay import record
from rag.evaluation import ALL, SPLITS, Outcome, after_unrelated, in_split, load_questions, run, splits_of, summarise
from rag.services.retrieval import lexical_index

MODES = ("dense", "lexical", "hybrid")  # retrieve()'s FUSION_MODES, in table order; hybrid: the two fused
MODE_CHOICES = {"every": list(MODES), "both": ["dense", "hybrid"]} | {mode: [mode] for mode in MODES}
ROW = "{:<17} {:<5} {:>4}  {:<11} {:>6} {:>6} {:>6} {:>8} {:>7}"
HEADER = ROW.format("set", "split", "n", "mode", "hit@1", "hit@3", "MRR@3", "nDCG@10", "p50 ms")


class Command(BaseCommand):
    help = (
        'Evaluate retrieval on question sets: lines of {"q": ..., "expect": [source, ...]} with optional '
        '"history", "split" (dev/test) and "kind". Prints one row per set, split and fusion mode.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("questions", type=Path, nargs="+", help="JSON-lines question sets.")
        parser.add_argument(
            "--split",
            action="append",
            choices=[*SPLITS, ALL],
            help="Split to report (repeatable; default: dev and test). Sets without splits report 'all'.",
        )
        parser.add_argument(
            "--fusion",
            choices=list(MODE_CHOICES),
            default="every",
            help="Mode to evaluate: one of them, 'both' (dense and hybrid) or 'every' (default: all three).",
        )
        parser.add_argument(
            "--topic-switches",
            action="store_true",
            help="Also ask each set's questions that have no history after an unrelated question of the same set "
            "(rag.evaluation.after_unrelated), reported as the set <name>~switch.",
        )
        parser.add_argument(
            "--by-kind",
            action="store_true",
            help="Also report each kind of question (paraphrase, typo, follow_up, ...) on its own, as the set "
            "<name>:<kind>.",
        )
        parser.add_argument(
            "--record",
            type=Path,
            metavar="FOLDER",
            help="Also record each set's hybrid rankings to FOLDER/<set>.json, for manage.py eval_replay.",
        )
        parser.add_argument(
            "--baselines",
            type=Path,
            metavar="FOLDER",
            help="Also rank with issue 11's two untuned prototypes (rag/eval/baselines.py), built in memory "
            "from the documents under FOLDER (the folder that was ingested).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sets = {}
        for path in options["questions"]:
            try:
                sets[path] = load_questions(path)
            except (OSError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
            switched = after_unrelated(sets[path]) if options["topic_switches"] else []
            if switched:  # a set of follow-ups has no question to ask after another
                sets[path.with_stem(f"{path.stem}~switch")] = switched
        wanted = options["split"] or list(SPLITS)
        modes = MODE_CHOICES[options["fusion"]]
        lexical_index.get()  # build outside the timed loop, as a warm server would have it
        prototypes = []
        if options["baselines"] is not None:
            if not options["baselines"].is_dir():
                raise CommandError(f"{options['baselines']} is not a folder")
            prototypes = [Prototype(name, options["baselines"]) for name in PROTOTYPES]
        if options["record"] is not None:
            # A pass of its own: recording queries the database per question, which the timed
            # hybrid pass below must not pay for.
            options["record"].mkdir(parents=True, exist_ok=True)
            for path, questions in sets.items():
                recorded = record(questions)
                (options["record"] / f"{path.stem}.json").write_text(json.dumps(recorded), encoding="utf-8")
        self.stdout.write(HEADER)
        for path, questions in sets.items():
            outcomes = {mode: run(questions, fusion=mode) for mode in modes}
            outcomes |= {prototype.name: run_prototype(prototype, questions) for prototype in prototypes}
            for split in splits_of(questions, wanted):
                for mode in outcomes:
                    chosen = [outcome for outcome in outcomes[mode] if in_split(outcome.question, split)]
                    self._report(path.stem, split, mode, chosen, verbose=options["verbosity"] >= 2)
                    kinds = sorted({o.question.kind for o in chosen if o.question.kind}) if options["by_kind"] else []
                    for kind in kinds:
                        of_kind = [outcome for outcome in chosen if outcome.question.kind == kind]
                        self._report(f"{path.stem}:{kind}", split, mode, of_kind, verbose=False)

    def _report(self, name: str, split: str, mode: str, outcomes: list[Outcome], *, verbose: bool) -> None:
        report = summarise(outcomes)
        figures = [f"{value:.3f}" for value in (report.hit1, report.hit3, report.mrr3, report.ndcg10)]
        self.stdout.write(ROW.format(name, split, report.questions, mode, *figures, f"{report.p50_ms:.1f}"))
        if verbose:
            for question, got in report.misses:
                self.stdout.write(f"    miss@1: {question!r} -> {got}")
