"""Search latency through the retrieval service at 1k, 10k and 100k chunks.

Usage: .venv/bin/python bench/bench_search.py [--sizes 1000 10000 100000] [--queries 50] [--runs 3]

The chunk texts are synthetic help-centre sentences. To reach 100k chunks without embedding them
all (about 40 minutes on this machine), 500 chunks are embedded for real and the rest get
those vectors with small random perturbations, so the index has the realistic density of
neighbours that exact search cost depends on. Each timed search includes the query embedding
(a cache miss: every query text is new), the FAISS search, the BM25 ranking, fusion and the
database read of the winning chunks. Prints p50/p95 (median over runs) and the process RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time

import _django
import numpy as np

WORDS = [
    "password",
    "reset",
    "token",
    "session",
    "history",
    "export",
    "feedback",
    "quota",
    "throttle",
    "verify",
    "email",
    "login",
    "refresh",
    "logout",
    "retention",
    "backup",
    "restore",
    "admin",
    "report",
    "document",
    "source",
    "citation",
    "stream",
    "answer",
    "upload",
    "search",
    "limit",
    "error",
    "status",
    "health",
    "schema",
    "swagger",
    "account",
    "profile",
    "privacy",
    "delete",
    "index",
    "embedding",
    "model",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."


def chunk_text(rng: random.Random, n: int) -> str:
    return f"Synthetic article {n}\n\n" + " ".join(sentence(rng) for _ in range(8))


def build(size: int, rng: random.Random, *, reset: bool = True) -> None:
    """Make the knowledge base ``size`` chunks big (``reset=False`` pads what is there)."""
    from rag.models import Chunk, Document
    from rag.providers.factory import get_embedder, get_vector_store

    embedder, store = get_embedder(), get_vector_store()
    if reset:
        store.reset(embedder_name=embedder.name, dimension=embedder.dimension)
        Chunk.objects.all().delete()
        Document.objects.all().delete()
    size -= Chunk.objects.count()
    if size <= 0:
        return
    per_doc = 5
    docs = Document.objects.bulk_create(
        [
            Document(title=f"Synthetic article {n}", content="-", content_hash=f"{n:064d}", category="Other")
            for n in range(-(-size // per_doc))
        ]
    )
    base_texts = [chunk_text(rng, n) for n in range(min(size, 500))]
    base = embedder.embed_documents(base_texts)
    np_rng = np.random.default_rng(7)
    for start in range(0, size, 10_000):
        count = min(10_000, size - start)
        rows = [
            Chunk(
                document=docs[(start + i) // per_doc],
                index=(start + i) % per_doc,
                text=base_texts[(start + i) % len(base_texts)],
            )
            for i in range(count)
        ]
        chunks = Chunk.objects.bulk_create(rows)
        vectors = base[[(start + i) % len(base) for i in range(count)]] + np_rng.normal(0, 0.02, (count, base.shape[1]))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        meta = [{"document_id": c.document_id, "chunk_index": c.index, "category": "Other"} for c in chunks]
        store.upsert([c.pk for c in chunks], vectors, meta)


def measure(queries: list[str]) -> list[float]:
    from rag.services.retrieval import retrieve

    latencies = []
    for query in queries:
        started = time.perf_counter()
        retrieve(query=query)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    _django.setup("search")
    from rag.services.retrieval import lexical_index
    from utils.stats import percentile

    rng = random.Random(42)
    sys.stdout.write(
        f"{'chunks':>8} {'p50 ms':>8} {'p95 ms':>8}  (median of {args.runs} runs, {args.queries} queries)\n"
    )
    for size in args.sizes:
        build(size, rng)
        lexical_index.get()  # a warm server has its lexical index built
        p50s, p95s = [], []
        for run in range(args.runs):
            queries = [f"{sentence(rng)} (run {run} query {q})" for q in range(args.queries)]
            latencies = measure(queries)
            p50s.append(statistics.median(latencies))
            p95s.append(percentile(latencies, 95))
        sys.stdout.write(f"{size:>8} {statistics.median(p50s):>8.1f} {statistics.median(p95s):>8.1f}\n")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(f"peak RSS: {rss_mb:.0f} MB\n")


if __name__ == "__main__":
    main()
