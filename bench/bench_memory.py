"""Resident memory of a serving process with the embedder and a 10k-chunk index loaded.

Usage: .venv/bin/python bench/bench_memory.py [--chunks 10000]

Builds the index (as bench_search.py does), then starts a fresh Python process that boots
Django, loads the local embedder, the FAISS index and the lexical index, answers one search,
and reports its VmRSS: the memory a web worker holds. Target: 400 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import _django

CHILD = """
import os, sys
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from rag.services.retrieval import retrieve
retrieve(query="how do I reset my password")
rss = next(line for line in open("/proc/self/status") if line.startswith("VmRSS"))
sys.stdout.write(str(int(rss.split()[1]) // 1024))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    args = parser.parse_args()
    work = _django.setup("memory")
    import bench_search

    bench_search.build(args.chunks, random.Random(3))
    root = str(Path(__file__).resolve().parents[1])
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=root)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
    )
    sys.stdout.write(f"chunks: {args.chunks}  serving-process RSS: {child.stdout.strip()} MB  (data in {work})\n")


if __name__ == "__main__":
    main()
