"""Search latency through the retrieval service at 1k, 10k and 100k chunks.

Usage: .venv/bin/python bench/bench_search.py [--sizes 1000 10000 100000] [--queries 50] [--runs 3]
       .venv/bin/python bench/bench_search.py --workspaces 100 --sizes 10000 [--queries 50] [--runs 5]

The chunk texts are synthetic help-centre sentences. To reach 100k chunks without embedding them
all (about 40 minutes on this machine), 500 chunks are embedded for real and the rest get
those vectors with small random perturbations, so the index has the realistic density of
neighbours that exact search cost depends on. Each timed search includes the query embedding
(a cache miss: every query text is new), the FAISS search, the BM25 ranking, fusion and the
database read of the winning chunks. Prints p50/p95 (median over runs) and the process RSS.

``--workspaces N`` (issue 15) measures, in one run, the same chunks as one shared base (today's
figure) and spread over N workspaces, searched in one workspace's scope (its chunks plus the
empty shared base; each query in the next workspace, so every scope is used), and prints the
ratio. It also times the two FAISS layouts on the same vectors, the search alone: one index with
an ``IDSelectorBatch`` of the scope's ids (what the store does) and one index per workspace.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from typing import Any

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


def build(size: int, rng: random.Random, *, reset: bool = True, workspaces: list[int] | None = None) -> None:
    """Make the knowledge base ``size`` chunks big (``reset=False`` pads what is there); with
    ``workspaces``, documents are dealt out to them in turn instead of the shared base."""
    from rag.models import Chunk, Document
    from rag.providers.factory import get_embedder, get_vector_store
    from rag.services.ingestion import write_centroids

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
            Document(
                title=f"Synthetic article {n}",
                content="-",
                content_hash=f"{n:064d}",
                category="Other",
                workspace_id=workspaces[n % len(workspaces)] if workspaces else None,
            )
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
        owner = {d.pk: d.workspace_id for d in docs}
        meta = [
            {
                "document_id": c.document_id,
                "chunk_index": c.index,
                "category": "Other",
                "workspace_id": owner[c.document_id],
            }
            for c in chunks
        ]
        store.upsert([c.pk for c in chunks], vectors, meta)
        # Each document's centroid, as ``reindex`` stores it (a document's chunks are in one batch).
        sums: dict[int, Any] = {}
        for chunk, vector in zip(chunks, np.asarray(vectors, dtype=np.float32), strict=True):
            sums[chunk.document_id] = sums.get(chunk.document_id, 0.0) + vector
        write_centroids(sums, embedder.name)


def measure(queries: list[str], scopes: list[Any] | None = None) -> list[float]:
    """Latency of each search, in ms; query ``i`` runs in ``scopes[i % len(scopes)]`` if given."""
    from rag.services.retrieval import retrieve
    from rag.types import RetrievalScope

    latencies = []
    for i, query in enumerate(queries):
        scope = scopes[i % len(scopes)] if scopes else RetrievalScope()
        started = time.perf_counter()
        retrieve(query=query, scope=scope)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def p50_of_runs(args: argparse.Namespace, rng: random.Random, scopes: list[Any] | None = None) -> float:
    from rag.services.retrieval import lexical_index

    for scope in scopes or [None]:
        if scope is not None:
            lexical_index.get(scope)  # a warm server has its lexical indexes built
    p50s = []
    for run in range(args.runs):
        queries = [f"{sentence(rng)} (run {run} query {q})" for q in range(args.queries)]
        p50s.append(statistics.median(measure(queries, scopes)))
    return statistics.median(p50s)


def workspace_search(args: argparse.Namespace, size: int) -> None:
    """Today's single shared base against the same chunks over ``args.workspaces`` workspaces."""
    from rag.services.retrieval import lexical_index
    from rag.types import RetrievalScope
    from workspaces.models import Workspace

    build(size, random.Random(42))
    lexical_index.get()
    single = p50_of_runs(args, random.Random(1))
    workspaces = Workspace.objects.bulk_create(
        [
            Workspace(
                name=f"ws {n}", slug=f"bench-ws-{n}", max_documents=10**6, max_bytes=10**12, max_messages_per_day=10**6
            )
            for n in range(args.workspaces)
        ]
    )
    build(size, random.Random(42), workspaces=[w.pk for w in workspaces])
    # Other query texts: the query-embedding cache (shared by scopes) must not serve these.
    scoped = p50_of_runs(args, random.Random(2), [RetrievalScope(w.pk) for w in workspaces])
    sys.stdout.write(
        f"retrieve p50 at {size} chunks: single shared base {single:.2f} ms; in one of {args.workspaces} "
        f"workspaces {scoped:.2f} ms; ratio {scoped / single:.2f} "
        f"(median of {args.runs} runs, {args.queries} queries)\n"
    )
    faiss_layouts(args, size)


def faiss_layouts(args: argparse.Namespace, size: int, dimension: int = 384, queries: int = 2000) -> None:
    """The FAISS search alone: no filter, one index with an ID selector, one index per workspace."""
    import faiss

    np_rng = np.random.default_rng(3)
    vectors = np_rng.normal(size=(size, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, size + 1, dtype=np.int64)
    owner = ids % args.workspaces
    whole = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    whole.add_with_ids(vectors, ids)
    per_workspace = {}
    for w in range(args.workspaces):
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        index.add_with_ids(vectors[owner == w], ids[owner == w])
        per_workspace[w] = index
    allowed = {w: np.sort(ids[owner == w]) for w in range(args.workspaces)}
    probes = np_rng.normal(size=(queries, dimension)).astype(np.float32)
    faiss.omp_set_num_threads(1)  # as the store searches

    def single(q: int) -> None:
        whole.search(probes[q : q + 1], 40)

    def selector(q: int) -> None:
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(allowed[q % args.workspaces])
        whole.search(probes[q : q + 1], 40, params=params)

    def split(q: int) -> None:
        per_workspace[q % args.workspaces].search(probes[q : q + 1], 40)

    results = {}
    for name, search in (
        ("one index, no filter", single),
        ("one index + IDSelectorBatch", selector),
        ("one index per workspace", split),
    ):
        p50s = []
        for _ in range(args.runs):
            latencies = []
            for q in range(queries):
                started = time.perf_counter()
                search(q)
                latencies.append((time.perf_counter() - started) * 1000)
            p50s.append(statistics.median(latencies))
        results[name] = statistics.median(p50s)
    base = results["one index, no filter"]
    for name, p50 in results.items():
        sys.stdout.write(f"FAISS search alone, {name:<28} p50 {p50 * 1000:7.1f} µs  ratio {p50 / base:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workspaces", type=int, default=0, help="compare with chunks over this many workspaces")
    args = parser.parse_args()
    _django.setup("search")
    if args.workspaces:
        for size in args.sizes:
            workspace_search(args, size)
        return
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
