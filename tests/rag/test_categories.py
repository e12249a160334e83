"""Categories: free names an owner chooses, validated the same way everywhere, never silently
changed; GET /api/rag/categories/ lists those in use."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from rag.categories import InvalidCategory, check_category
from rag.models import Document

pytestmark = pytest.mark.django_db

DOCS = "/api/rag/documents/"
CATEGORIES = "/api/rag/categories/"


@pytest.mark.parametrize("name", ["FAQ", "Garden", "Release notes", "How-to", "a", "x" * 50, "2026 Q4"])
def test_valid_names(name):
    assert check_category(name) == name


@pytest.mark.parametrize("name", ["", " Garden", "Garden ", "-x", "x-", "x" * 51, "Gärten", "a/b", "a\u0000", 5, None])
def test_invalid_names(name):
    with pytest.raises(InvalidCategory):
        check_category(name)


def test_json_api_takes_any_valid_category_and_refuses_others(staff_client):
    created = staff_client.post(DOCS, {"title": "Roses", "content": "Prune roses in March.", "category": "Garden"})
    assert created.status_code == 201, created.content
    assert created.json()["category"] == "Garden"
    refused = staff_client.post(DOCS, {"title": "Roses", "content": "Prune.", "category": "Garden!"}, format="json")
    assert refused.status_code == 400 and "category" in refused.json()["errors"]
    patched = staff_client.patch(f"{DOCS}{created.json()['id']}/", {"category": "Outdoor"}, format="json")
    assert patched.status_code == 200 and patched.json()["category"] == "Outdoor"


def test_front_matter_category_is_kept(staff_client):
    md = b"---\ntitle: Tomatoes\ncategory: Garden\n---\nTomatoes want sun and water every day."
    response = staff_client.post(DOCS, {"file": SimpleUploadedFile("tomatoes.md", md)}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["category"] == "Garden"


def test_an_invalid_front_matter_category_is_refused_not_replaced(staff_client):
    md = b"---\ntitle: Tomatoes\ncategory: Garden & Balcony\n---\nTomatoes want sun."
    response = staff_client.post(DOCS, {"file": SimpleUploadedFile("tomatoes.md", md)}, format="multipart")
    assert response.status_code == 400
    assert "Garden & Balcony" in response.json()["errors"]["category"][0]
    assert not Document.objects.exists()


def test_ingest_keeps_front_matter_categories_and_reports_invalid_ones(tmp_path):
    (tmp_path / "tomatoes.md").write_text("---\ntitle: Tomatoes\ncategory: Garden\n---\nTomatoes want sun.")
    (tmp_path / "bad.md").write_text("---\ntitle: Bad\ncategory: Not/valid\n---\nSome text here.")
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", str(tmp_path), stdout=out, stderr=err)
    assert Document.objects.get().category == "Garden"
    assert "bad.md" in err.getvalue() and "Not/valid" in err.getvalue()
    assert "1 failed" in out.getvalue()


def test_ingest_category_option_is_validated(tmp_path):
    with pytest.raises(CommandError, match="not a valid category"):
        call_command("ingest", str(tmp_path), "--category", "No/pe")


def test_categories_in_use_with_counts(api_client):
    for title, category in [("A", "Guide"), ("B", "Guide"), ("C", "Garden"), ("D", "FAQ")]:
        Document.objects.create(title=title, content="x", category=category, content_hash=title)
    response = api_client.get(CATEGORIES)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["results"] == [
        {"name": "FAQ", "document_count": 1},
        {"name": "Garden", "document_count": 1},
        {"name": "Guide", "document_count": 2},
    ]
    assert api_client.get(DOCS, {"category": "Garden", "workspace": "shared"}).json()["count"] == 1
    assert api_client.get(DOCS, {"category": "Gar/den"}).status_code == 400


def test_categories_need_a_login(anon_client):
    assert anon_client.get(CATEGORIES).status_code == 401


def test_ingest_reports_a_file_too_large_and_keeps_the_others(tmp_path, settings):
    """A changelog over INGEST_MAX_CHARS in a docs folder used to end the command in a traceback,
    with none of the folder's other files ingested."""
    settings.INGEST_MAX_CHARS = 1_000
    (tmp_path / "guide.md").write_text("# Guide\n\nTomatoes want sun and water.")
    (tmp_path / "changelog.md").write_text("# Changelog\n\n" + "Fixed a bug in the scheduler. " * 100)
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", str(tmp_path), stdout=out, stderr=err)
    assert list(Document.objects.values_list("source", flat=True)) == ["guide.md"]
    assert "changelog.md" in err.getvalue() and "INGEST_MAX_CHARS" in err.getvalue()
    assert "1 created" in out.getvalue() and "1 failed" in out.getvalue()


def test_ingest_leaves_out_hidden_files_and_build_folders(tmp_path):
    """A docs folder after `make html` holds every page again under _build/, and a theme's Jinja
    templates under _templates/; a checkout holds .git/ and a virtualenv."""
    (tmp_path / "guide.md").write_text("# Guide\n\nTomatoes want sun and water.")
    for junk in ["_build/html/guide.html", "_templates/layout.html", ".git/notes.md", ".draft.md", "venv/README.md"]:
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("<h1>Tomatoes</h1><p>Tomatoes want sun and water.</p>")
    out = io.StringIO()
    call_command("ingest", str(tmp_path), stdout=out, stderr=io.StringIO())
    assert list(Document.objects.values_list("source", flat=True)) == ["guide.md"]
    # A file named on its own is taken whatever its folder.
    call_command("ingest", str(tmp_path / "_build/html/guide.html"), stdout=out, stderr=io.StringIO())
    assert Document.objects.filter(source="guide.html").exists()
