"""Static files: after collectstatic no misleading warnings; before it, one warning per process."""

from __future__ import annotations

import logging

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]

from utils import staticfiles

WARNING_TEXT = "run collectstatic"


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(staticfiles, "_warned", False)


def test_after_collectstatic_whitenoise_starts_without_warnings(settings, tmp_path, caplog, fresh_warning):
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    with caplog.at_level(logging.WARNING, logger="utils.staticfiles"):
        WhiteNoiseMiddleware(lambda request: None)  # asks the storage for every file's URL
        url = staticfiles_storage.url("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert WARNING_TEXT not in caplog.text
    assert url.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.")
    assert url != "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"  # hashed
    with pytest.raises(ValueError):
        staticfiles_storage.url("no/such/file.css")


def test_without_collectstatic_plain_urls_and_one_warning(settings, tmp_path, caplog, fresh_warning):
    settings.STATIC_ROOT = tmp_path / "empty"
    with caplog.at_level(logging.WARNING, logger="utils.staticfiles"):
        first = staticfiles_storage.url("admin/css/base.css")
        staticfiles_storage.url("rest_framework/css/bootstrap.min.css")
    assert first == "/static/admin/css/base.css"
    assert caplog.text.count(WARNING_TEXT) == 1
