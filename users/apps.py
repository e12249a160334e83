from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from users import lockout  # noqa: F401 (connects the failed-login counter)
