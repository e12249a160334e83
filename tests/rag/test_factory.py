"""The provider factory: built once, forgotten when a setting it reads changes (``setting_changed``)."""

from __future__ import annotations

from django.test import override_settings

from rag.providers.factory import get_embedder, get_generator, get_passage_embedder, get_vector_store
from tests.fakes.mistral_server import FakeMistral

API_KEY = "sk-mistral-test-0123456789"


def test_providers_are_built_once():
    assert get_embedder() is get_embedder()
    assert get_generator() is get_generator()


def test_a_provider_setting_change_rebuilds_the_providers(settings, fake_mistral: FakeMistral):
    assert get_embedder().name.startswith("local:")
    settings.MISTRAL_API_KEY, settings.MISTRAL_SERVER_URL = API_KEY, fake_mistral.url
    settings.RAG_EMBEDDER, settings.RAG_GENERATOR = "mistral", "mistral"  # no reset_providers() called
    assert get_embedder().name == "mistral:mistral-embed"
    assert get_generator().name == "mistral"
    settings.MISTRAL_EMBED_MODEL = "mistral-embed-2312"
    assert get_embedder().name == "mistral:mistral-embed-2312"


def test_the_answerers_passage_model_is_the_offline_default_whatever_embeds_for_retrieval(
    settings, fake_mistral: FakeMistral
):
    settings.RAG_EMBEDDER = "local"
    assert get_passage_embedder() is get_embedder()  # a local embedder's own vectors serve both
    settings.MISTRAL_API_KEY, settings.MISTRAL_SERVER_URL = API_KEY, fake_mistral.url
    settings.RAG_EMBEDDER = "mistral"
    passages = get_passage_embedder()
    # With Mistral, the units are embedded by the int8 model the offline default runs (twice the
    # chunks per second of float32), on which the answerer's constants were chosen.
    assert passages is not get_embedder()
    assert passages.name == "local:all-MiniLM-L6-v2-int8-smoothquant"
    assert passages.embed_query("how do I reset my password?").shape == (384,)


def test_override_settings_rebuilds_on_entry_and_on_exit(tmp_path):
    store = get_vector_store()
    with override_settings(VECTOR_INDEX_DIR=tmp_path / "elsewhere"):
        inside = get_vector_store()
        assert inside is not store
    assert get_vector_store() is not inside


def test_an_unrelated_setting_keeps_the_providers(settings):
    embedder, generator = get_embedder(), get_generator()
    settings.LANGUAGE_CODE = "fr"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
    assert get_embedder() is embedder and get_generator() is generator
