"""What int8 arithmetic would buy the local embedder: throughput per CPU-second and drift of the vectors.

    PYTHONPATH=var/onnx-tools .venv/bin/python bench/bench_quantized_embedder.py [--chunks 300] [--runs 3]

The shipped model stores int8 weights but computes in float32: onnxruntime folds the weights back
to float32 at load, so 58% of a run is float32 MatMul (profile of a 6x160-token batch). This script
builds, in a temporary folder, the same model with dynamic int8 quantization (int8 weights per
channel, activations quantized at run time: MatMulInteger, which uses VNNI/AMX where the CPU has
them) and compares it with the shipped one on the same ~800-character synthetic chunks as
bench_embedder.py, one single-threaded session each, alternating runs. The figure is chunks per
CPU-second of the process, which a CPU shared with other processes disturbs much less than wall
time. Quantization needs the ``onnx`` package, which the application does not depend on:
``.venv/bin/pip install --target var/onnx-tools onnx==1.23.2 ml_dtypes==0.7.0`` (nothing else changes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedder import synthetic_chunks, write

from rag.providers import local_embedder


def quantized_model(folder: Path) -> Path:
    """The shipped model, constant-folded by onnxruntime, then dynamically quantized per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folded, quantized = folder / "folded.onnx", folder / "dynamic-int8.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(local_embedder._model_file()), sess_options=options, providers=["CPUExecutionProvider"])
    quantize_dynamic(str(folded), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
    return quantized


def embedder_for(model: Path) -> local_embedder.LocalEmbedder:
    """A single-threaded LocalEmbedder reading ``model`` (the process-wide runtime is rebuilt)."""
    local_embedder._RUNTIMES.clear()
    local_embedder._model_file = lambda: model  # type: ignore[assignment]
    embedder = local_embedder.LocalEmbedder(threads=1)
    embedder.warm_up()
    return embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    chunks = synthetic_chunks(args.chunks)
    shipped = local_embedder._model_file()
    with tempfile.TemporaryDirectory(prefix="bench-quantized-") as folder:
        models = {"shipped (float32 compute)": shipped, "dynamic int8": quantized_model(Path(folder))}
        rates: dict[str, list[float]] = {name: [] for name in models}
        vectors: dict[str, np.ndarray] = {}
        for run in range(1, args.runs + 1):
            for name, model in models.items():
                embedder = embedder_for(model)
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
