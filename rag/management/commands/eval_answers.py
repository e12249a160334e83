"""``manage.py eval_answers [--split dev|test|all] [-v]``: score answers on the answer-evaluation set.

The evaluation runs against its own knowledge base (``var/eval/answers-kb``: SQLite database and
FAISS index), never the deployment's: the command re-runs itself in a child process whose
``VAR_DIR`` points there, migrates it and loads the corpus into it (unchanged files are skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from argparse import Action
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.eval.answers import (
    by_kind,
    evaluate,
    failures,
    knowledge_base_fingerprint,
    knowledge_base_load,
    load_cases,
    missing_documents,
    select,
    summarise,
)

EVAL_DIR = Path(settings.BASE_DIR) / "rag" / "eval" / "answers"
KB_MARKER = "EVAL_ANSWERS_KB"  # set in the child process: the knowledge base it runs on
FINGERPRINT = "fingerprint"  # in the knowledge base folder: what built it (see knowledge_base_fingerprint)
KB_FILES = ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "index", FINGERPRINT)


class Command(BaseCommand):
    help = "Score the answerer on rag/eval/answers (fact recall, abstention, citations) in its own knowledge base."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Plain ``-v`` (no number) means ``-v 2``: also print each question's failures.
        verbosity: Action = next(a for a in parser._actions if a.dest == "verbosity")
        verbosity.nargs, verbosity.const = "?", 2
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--split", choices=["dev", "test", "all"], default="all", help="Default: all (dev and test)."
        )
        parser.add_argument("--questions", type=Path, default=EVAL_DIR / "questions.jsonl")
        parser.add_argument("--corpus", type=Path, default=EVAL_DIR / "corpus")
        parser.add_argument(
            "--kb-dir",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "eval" / "answers-kb",
            help="VAR_DIR of the evaluation's knowledge base (default var/eval/answers-kb).",
        )
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Build the knowledge base from scratch (done anyway when chunking or the embedder changed).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kb_dir: Path = options["kb_dir"].resolve()
        if os.environ.get(KB_MARKER) != str(kb_dir):
            self._run_isolated(kb_dir, options)
            return
        try:
            cases = load_cases(options["questions"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        missing = missing_documents(cases, options["corpus"])
        if missing:
            raise CommandError(f"expect_docs not in {options['corpus']}: {'; '.join(missing[:5])}")
        call_command("migrate", verbosity=0, interactive=False)
        try:
            loaded = knowledge_base_load(corpus=options["corpus"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 2:
            self.stderr.write(f"knowledge base {kb_dir}: {loaded}")
        outcomes = evaluate(select(cases, options["split"]))
        splits = ["dev", "test"] if options["split"] == "all" else [options["split"]]
        for split in splits:
            chosen = [o for o in outcomes if o.case.split == split]
            self.stdout.write(summarise(split, chosen).line())
            if options["verbosity"] >= 2:
                self.stdout.write(f"  {by_kind(chosen)}")
                for line in failures(chosen):
                    self.stdout.write(f"  {line}")

    def _run_isolated(self, kb_dir: Path, options: dict[str, Any]) -> None:
        """Run this same command again in a child process on the evaluation's own knowledge base."""
        fingerprint = knowledge_base_fingerprint(base_dir=Path(settings.BASE_DIR), settings=settings)
        stamp = kb_dir / FINGERPRINT
        if options["rebuild"] or not stamp.is_file() or stamp.read_text(encoding="utf-8") != fingerprint:
            for name in KB_FILES:  # only what the evaluation itself writes there
                path = kb_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        env = {
            **os.environ,
            KB_MARKER: str(kb_dir),
            "VAR_DIR": str(kb_dir),
            "DATABASE_URL": f"sqlite:///{kb_dir / 'db.sqlite3'}",
            "VECTOR_INDEX_DIR": str(kb_dir / "index"),
            "RAG_VECTOR_STORE": "faiss",  # never write the corpus into a shared (Pinecone) index
            "USE_FAKE_REDIS": "true",  # nor read retrieval caches filled from another knowledge base
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),  # the summary lines, not the logs
        }
        command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "eval_answers"]
        command += ["--split", options["split"], "--verbosity", str(options["verbosity"]), "--kb-dir", str(kb_dir)]
        command += ["--questions", str(options["questions"].resolve()), "--corpus", str(options["corpus"].resolve())]
        self.stdout.flush()
        returncode = subprocess.run(command, env=env, check=False).returncode
        if returncode:
            raise CommandError(f"the evaluation failed (exit status {returncode})")
        kb_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint, encoding="utf-8")
