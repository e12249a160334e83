"""Benchmark of the local embedder: document throughput against a naive baseline, query latency, RSS.

    .venv/bin/python bench/bench_embedder.py [--chunks 2000] [--runs 3]

The baseline is the obvious loop: padded batches of 32 in input order on a session with default
options. Both see the same ~800-character chunks, cut by the project's own chunker from synthetic
support articles. Runs alternate between the two so background load hits both alike; the figure
reported is the median run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.ingestion.chunking import split_into_chunks
from rag.providers.local_embedder import LocalEmbedder, _model_file, _tokenizer_file

SUBJECTS = ["Customers", "The support team", "Your account", "Every order", "A refund request", "The warranty",
            "Premium members", "The billing system", "Our courier partner", "The mobile app", "An invoice",
            "The subscription", "Two-factor authentication", "The returns portal", "A replacement device"]  # fmt: skip
VERBS = ["is processed within", "must be confirmed before", "can be cancelled during", "is reviewed after",
         "receives an update within", "is eligible for a discount for", "is shipped to the address on file within",
         "expires automatically after", "can be extended once for", "is locked for security reasons for"]  # fmt: skip
OBJECTS = ["five business days", "the end of the billing cycle", "thirty days of purchase", "two weeks",
           "the next working day", "48 hours", "the trial period", "one calendar month", "the first login",
           "the holiday season", "three failed attempts", "a written request"]  # fmt: skip
TAILS = ["unless the item was damaged in transit", "provided the original receipt is available",
         "and a confirmation email is sent", "as described in the terms of service",
         "for orders placed in the European Union", "if the payment method supports it",
         "although exceptions apply to custom products", "so please keep your tracking number",
         "which you can check under Settings > Billing", "and the change appears on your next invoice"]  # fmt: skip


def write(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def synthetic_chunks(count: int, seed: int = 7) -> list[str]:
    """Chunks as ingestion makes them: articles of 3-5 paragraphs cut at ~800 characters, titled."""
    rng = random.Random(seed)
    chunks: list[str] = []
    while len(chunks) < count:
        paragraphs = []
        for _ in range(rng.randint(3, 5)):
            sentences = []
            for _ in range(rng.randint(4, 9)):
                sentence = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}, {rng.choice(TAILS)}."
                if rng.random() < 0.3:
                    sentence += f" Reference {rng.randint(100, 99999)} applies to model X-{rng.randint(1, 900)}."
                sentences.append(sentence)
            paragraphs.append(" ".join(sentences))
        title = f"{rng.choice(['Billing', 'Shipping', 'Returns', 'Accounts', 'Devices'])} guide {len(chunks)}"
        chunks.extend(split_into_chunks(title=title, text="\n\n".join(paragraphs)))
    return chunks[:count]


class NaiveEmbedder:
    """The baseline: default session options, padded batches of 32 in input order."""

    def __init__(self) -> None:
        self.session = ort.InferenceSession(str(_model_file(fast=False)), providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding()  # to the longest text of each batch

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 32):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + 32]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, feeds)[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def bench_throughput(chunks: list[str], runs: int, ours: LocalEmbedder, naive: NaiveEmbedder) -> None:
    ours.embed_documents(chunks[:64])  # warm both sessions (first runs allocate)
    naive.embed_documents(chunks[:64])
    ours_s, naive_s = [], []
    for run in range(1, runs + 1):
        naive_s.append(timed(lambda: naive.embed_documents(chunks)))
        ours_s.append(timed(lambda: ours.embed_documents(chunks)))
        naive_rate, ours_rate = len(chunks) / naive_s[-1], len(chunks) / ours_s[-1]
        write(f"  run {run}: naive {naive_rate:6.1f} chunks/s   local {ours_rate:6.1f} chunks/s")
    naive_rate, ours_rate = len(chunks) / statistics.median(naive_s), len(chunks) / statistics.median(ours_s)
    write(f"Throughput, median of {runs} runs over {len(chunks)} chunks:")
    write(f"  naive baseline (batches of 32, input order, default options): {naive_rate:6.1f} chunks/s")
    write(f"  LocalEmbedder (length-sorted, token budget, parallel runs):  {ours_rate:6.1f} chunks/s")
    write(f"  ratio: {ours_rate / naive_rate:.2f}x")
    difference = np.abs(ours.embed_documents(chunks[:100]) - naive.embed_documents(chunks[:100])).max()
    write(f"  max |difference| between the two on 100 chunks: {difference:.2e}")


def bench_queries(ours: LocalEmbedder, rounds: int, count: int = 300) -> None:
    questions = [f"How long does a refund take for order {i} with {SUBJECTS[i % len(SUBJECTS)]}?" for i in range(count)]
    p50s, p95s = [], []
    for _ in range(rounds):
        for question in questions[:20]:
            ours.embed_query(question)
        latencies = [timed(lambda q=q: ours.embed_query(q)) * 1000 for q in questions]
        p50s.append(float(np.percentile(latencies, 50)))
        p95s.append(float(np.percentile(latencies, 95)))
    write(
        f"Single query, {ours.query_threads} intra-op thread(s) ({count} distinct questions, median of {rounds} "
        f"rounds): p50 {statistics.median(p50s):.2f} ms, p95 {statistics.median(p95s):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    baseline_rss, _ = rss_mb()
    started = time.perf_counter()
    ours = LocalEmbedder(threads=args.threads)
    ours.warm_up()
    load_s = time.perf_counter() - started
    loaded_rss, _ = rss_mb()
    chunks = synthetic_chunks(args.chunks)
    lengths = [len(chunk) for chunk in chunks]
    write(f"LocalEmbedder: {ours.threads} batch workers, {ours.query_threads} query thread(s)")
    write(f"Cold load + first query: {load_s * 1000:.0f} ms")
    write(f"Process RSS: {baseline_rss:.0f} MB after imports, {loaded_rss:.0f} MB after loading the model")
    mean = statistics.mean(lengths)
    write(f"Chunks: {len(chunks)}, {mean:.0f} characters on average (min {min(lengths)}, max {max(lengths)})")
    bench_queries(ours, args.runs)
    # The alternative setting, for comparison (a second session: about 95 MB more).
    bench_queries(LocalEmbedder(threads=args.threads, query_threads=2), args.runs)
    bench_throughput(chunks, args.runs, ours, NaiveEmbedder())
    current, peak = rss_mb()
    write(f"Process RSS at the end: {current:.0f} MB (peak {peak:.0f} MB, both sessions loaded)")


if __name__ == "__main__":
    main()
