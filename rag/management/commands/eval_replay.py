"""``manage.py eval_replay RECORD.json... --variant V``: hit@3 and MRR@3 of recorded rankings fused
again under other choices (``rag.eval.replay``; record them with ``EVAL_RECORD=1 make eval-retrieval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.eval.replay import Corpus, Figures, Variant, figures, load, replay
from rag.evaluation import SPLITS


class Command(BaseCommand):
    help = (
        "Fuse recorded rankings again under each --variant and print hit@3 / MRR@3 per set and split, their means "
        "over the sets, and on how many sets each variant's MRR@3 is above or below the first's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("records", type=Path, nargs="+", help="Recordings (eval_retrieval --record).")
        parser.add_argument("--split", action="append", choices=list(SPLITS), help="Default: dev only.")
        parser.add_argument(
            "--variant",
            action="append",
            help="'default' (as recorded) or comma-separated name[=value]: second=X, separation[=N], document=X, "
            "lexical=X, centroid=X, floor=X, zscore (rag/eval/replay.py). Repeatable; the first is the baseline "
            "(default: 'default').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            corpora = {path.stem: load(path) for path in options["records"]}
            texts = options["variant"] or ["default"]
            variants = [Variant.parse(text) for text in texts]
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        self._check(corpora)
        for split in options["split"] or ["dev"]:
            table: dict[str, list[Figures | None]] = {
                name: [figures(corpus, split, variant) for variant in variants] for name, corpus in corpora.items()
            }
            self.stdout.write(f"{'set':<22} {split:<5} " + "  ".join(f"{text[:20]:>20}" for text in texts))
            for name, row in table.items():
                if row[0] is not None:
                    cells = "  ".join(f"{f.hit3:>10.3f} / {f.mrr3:.3f}" for f in row if f is not None)
                    self.stdout.write(f"{name:<22} {split:<5} {cells}")
            present = [row for row in table.values() if row[0] is not None]
            if not present:
                continue
            means = []
            for i in range(len(variants)):
                column = [f for row in present if (f := row[i]) is not None]
                hit3, mrr3 = (sum(f.hit3 for f in column) / len(column), sum(f.mrr3 for f in column) / len(column))
                means.append(f"{hit3:>10.3f} / {mrr3:.3f}")
            self.stdout.write(f"{f'mean of {len(present)}':<22} {split:<5} " + "  ".join(means))
            moves = []
            for i in range(len(variants)):
                up = sum(1 for row in present if _mrr(row[i]) > _mrr(row[0]) + 1e-9)
                down = sum(1 for row in present if _mrr(row[i]) < _mrr(row[0]) - 1e-9)
                moves.append(f"{f'MRR@3 +{up} -{down}':>18}")
            self.stdout.write(f"{'sets up / down':<22} {split:<5} " + "  ".join(moves))

    def _check(self, corpora: dict[str, Corpus]) -> None:
        """The default replay must give what retrieve() gave when recorded, or the figures mean nothing."""
        for name, corpus in corpora.items():
            wrong = [row.question.q for row in corpus.questions if replay(corpus, row) != row.sources]
            if wrong:
                raise CommandError(
                    f"{name}: the replay differs from the recorded retrieval on {len(wrong)} question(s), e.g. "
                    f"{wrong[0]!r}: the code changed since recording (record again), or rag.eval.replay no longer "
                    "mirrors rag.services.retrieval."
                )


def _mrr(value: Figures | None) -> float:
    return value.mrr3 if value is not None else 0.0
