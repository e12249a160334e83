"""What int8 arithmetic buys the local embedder: throughput per CPU-second and drift of the vectors.

    .venv/bin/python bench/bench_quantized_embedder.py [--chunks 300] [--runs 3]

The shipped model stores int8 weights but computes in float32: onnxruntime folds the weights back
to float32 at load, so 58% of a run is float32 MatMul (profile of a 6x160-token batch). The
``local-fast`` embedder runs the same model with dynamic int8 quantization instead (int8 weights
per channel, activations quantized at run time: MatMulInteger, which uses VNNI/AMX where the CPU
has them), built once per installation by rag/providers/quantized_model.py (``make setup``). This
script compares the two variants on the same ~800-character synthetic chunks as bench_embedder.py,
one single-threaded embedder each, alternating runs. The figure is chunks per CPU-second of the
process, which a CPU shared with other processes disturbs much less than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedder import synthetic_chunks, write

from rag.providers import local_embedder


def embedder_for(fast: bool) -> local_embedder.LocalEmbedder:
    """A single-threaded LocalEmbedder of one variant, its model loaded."""
    embedder = local_embedder.LocalEmbedder(threads=1, fast=fast)
    embedder.warm_up()
    return embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    chunks = synthetic_chunks(args.chunks)
    models = {"shipped (float32 compute)": False, "dynamic int8": True}
    rates: dict[str, list[float]] = {name: [] for name in models}
    vectors: dict[str, np.ndarray] = {}
    for run in range(1, args.runs + 1):
        for name, fast in models.items():
            embedder = embedder_for(fast)
            started = time.process_time()
            vectors[name] = embedder.embed_documents(chunks)
            rates[name].append(len(chunks) / (time.process_time() - started))
            write(f"  run {run}: {name}: {rates[name][-1]:.1f} chunks per CPU-second")
    base, fast = (statistics.median(rates[name]) for name in models)
    cosine = (vectors["shipped (float32 compute)"] * vectors["dynamic int8"]).sum(axis=1)
    write(f"Median of {args.runs} runs over {len(chunks)} chunks, chunks per CPU-second:")
    write(f"  shipped {base:.1f}, dynamic int8 {fast:.1f}")
    write(f"  ratio: {fast / base:.2f}x")
    write(f"  cosine of the two models' vectors: mean {cosine.mean():.4f}, min {cosine.min():.4f}")


if __name__ == "__main__":
    main()
