from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "rag"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from rag import health
        from utils.health import register_check

        register_check("vector_store", health.check_vector_store)
        register_check("embedder", health.check_embedder)
        register_check("generator", health.check_generator)
