"""One index every process agrees on: the knowledge base's version lives in the database, the
index records the database (and embedder) it was built from, and health compares vectors with
chunks.

The last test is real: a gunicorn server and a `manage.py ingest` run as separate processes on a
temporary SQLite database, and the server finds the ingested document without a restart.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.db.models import F

from rag.models import Chunk, Document, KnowledgeBaseState
from rag.providers.factory import get_embedder, get_vector_store, reset_providers
from rag.providers.faiss_store import FaissVectorStore, LocalVersionBoard
from rag.services.ingestion import DocumentInput, document_ingest
from rag.versioning import KNOWLEDGE_BASE_VERSION, DatabaseVersionBoard, database_fingerprint
from tests.gunicorn_process import stop, wait_until_serving
from utils.exceptions import IndexMismatch

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "/api/rag/search/"
KAYAK = (
    "Kayak rentals",
    "Kayak rentals at the lake: single and tandem kayaks can be rented by the hour from the boathouse. "
    "A rental includes a paddle and a life jacket; bring a photo ID as a deposit.",
)
GARDEN = (
    "Growing tomatoes",
    "Tomatoes want six hours of sun, deep watering twice a week and a stake or cage once the plants "
    "reach knee height. Pinch the side shoots for bigger fruit.",
)


def _other_database() -> dict[str, str]:
    return {"engine": "sqlite", "name": "/elsewhere/db.sqlite3", "database_id": str(uuid.uuid4())}


def _chunk_in_db(title: str, text: str) -> Chunk:
    """A document and its chunk written straight to the database (the source of truth), not indexed."""
    document = Document.objects.create(title=title, content=text, category="Other", content_hash=uuid.uuid4().hex)
    return Chunk.objects.create(document=document, index=0, text=f"{title}\n\n{text}")


def _foreign_index(*, database: dict[str, str] | None, embedder_name: str | None = None) -> None:
    """An index in this process's VECTOR_INDEX_DIR built from another database (or by another embedder)."""
    embedder = get_embedder()
    # A store told no database records none (as an index written before databases were recorded).
    owner = None if database is None else (lambda: database)
    store = FaissVectorStore(settings.VECTOR_INDEX_DIR, version_board=LocalVersionBoard(), database=owner)
    store.ensure_compatible(embedder_name=embedder_name or embedder.name, dimension=embedder.dimension)
    vector = embedder.embed_documents([f"{GARDEN[0]}\n\n{GARDEN[1]}"])
    store.upsert([1], vector, [{"document_id": 1, "chunk_index": 0, "category": "Guide"}])


# --- the version in the database --------------------------------------------------------------


@pytest.fixture
def state_row(transactional_db: None) -> None:
    """A transactional test before this one flushed the tables, the row made by the migration too."""
    database_fingerprint()  # creates it again, as a flushed database would on first use


@pytest.mark.django_db
def test_the_first_migrate_draws_the_database_id_and_writes_move_the_version():
    state = KnowledgeBaseState.objects.get()
    assert state.database_id is not None
    assert database_fingerprint()["database_id"] == str(state.database_id)
    before = KNOWLEDGE_BASE_VERSION.get()
    document_ingest(item=DocumentInput(title=KAYAK[0], content=KAYAK[1]))
    after = KNOWLEDGE_BASE_VERSION.get()
    assert before is not None and after is not None and after[0] > before[0]
    assert KnowledgeBaseState.objects.get().version == after[0]


def test_a_process_reads_the_version_at_most_once_per_interval(state_row, django_assert_num_queries):
    board = DatabaseVersionBoard(interval_s=3600)
    first = board.get()
    # Another process changes the knowledge base: this one does not look again within the interval ...
    KnowledgeBaseState.objects.update(version=F("version") + 1, token=uuid.uuid4().hex)
    with django_assert_num_queries(0):
        assert board.get() == first
    # ... but a process that looks every time (or after the interval) sees it.
    assert DatabaseVersionBoard(interval_s=0).get() != first
    board.expire()
    assert board.get() != first


def test_a_change_made_by_this_process_is_seen_at_once(state_row):
    board = DatabaseVersionBoard(interval_s=3600)
    first = board.get()
    assert first is not None
    bumped = board.bump()
    assert board.get() == bumped and bumped[0] == first[0] + 1


def test_a_rolled_back_change_is_never_mistaken_for_a_later_one(state_row):
    board = DatabaseVersionBoard(interval_s=0)
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = board.bump()
        raise RuntimeError("the ingest failed")
    committed = board.bump()
    # Same counter (the rollback undid the first), but not the same version: a process that
    # glimpsed the rolled-back change inside its transaction still reloads for this one.
    assert committed[0] == rolled_back[0] and committed != rolled_back


# --- an index that belongs to another database or embedder ------------------------------------


@pytest.mark.django_db
def test_an_index_from_another_database_is_refused_until_reindex(api_client, staff_client, anon_client):
    _chunk_in_db(*KAYAK)
    _foreign_index(database=_other_database())

    response = api_client.get(SEARCH, {"q": "kayak rentals"})
    assert response.status_code == 503
    body = response.json()
    # Users get the fix, staff the reason too (no internal detail to users).
    assert body["code"] == "index_mismatch" and "manage.py reindex" in body["detail"]
    staff_body = staff_client.get(SEARCH, {"q": "kayak rentals"}).json()
    assert "another database" in staff_body["detail"] and "manage.py reindex" in staff_body["detail"]
    health = anon_client.get("/api/health/")
    assert health.status_code == 503 and "vector_store" in health.json()["down"]
    assert "reindex" in staff_client.get("/api/health/").json()["checks"]["vector_store"]["error"]
    with pytest.raises(IndexMismatch, match="another database"):
        document_ingest(item=DocumentInput(title=GARDEN[0], content=GARDEN[1]))

    call_command("reindex")
    meta = json.loads((Path(settings.VECTOR_INDEX_DIR) / "meta.json").read_text())
    assert meta["database"] == database_fingerprint()
    results = api_client.get(SEARCH, {"q": "kayak rentals"}).json()["results"]
    assert [r["title"] for r in results] == ["Kayak rentals"]


@pytest.mark.django_db
def test_chat_does_not_answer_from_an_index_of_another_database(api_client):
    _chunk_in_db(*KAYAK)
    _foreign_index(database=_other_database())
    session = api_client.post("/api/chat/sessions/", {"title": "Boats"}, format="json").json()
    response = api_client.post(
        f"/api/chat/sessions/{session['id']}/messages/", {"content": "Can I rent a kayak?"}, format="json"
    )
    # Refused (the chat's own error: the message is kept, the answer can be retried after reindex) ...
    assert response.status_code == 503 and response.json()["code"] == "answer_unavailable"
    # ... and nothing was answered from the garden article.
    messages = api_client.get(f"/api/chat/sessions/{session['id']}/messages/").json()["results"]
    assert [m["sender"] for m in messages] == ["user"]


@pytest.mark.django_db
def test_an_index_that_records_no_database_is_refused(api_client):
    _chunk_in_db(*KAYAK)
    _foreign_index(database=None)
    response = api_client.get(SEARCH, {"q": "kayak rentals"})
    assert response.status_code == 503 and "manage.py reindex" in response.json()["detail"]


@pytest.mark.django_db
def test_an_index_built_by_another_embedder_is_refused_by_searches(staff_client):
    _chunk_in_db(*KAYAK)
    _foreign_index(database=database_fingerprint(), embedder_name="local:another-model")
    response = staff_client.get(SEARCH, {"q": "kayak rentals"})
    assert response.status_code == 503
    assert "local:another-model" in response.json()["detail"] and "reindex" in response.json()["detail"]


@pytest.mark.django_db
def test_switching_the_local_embedder_to_the_fast_variant_needs_a_reindex(staff_client, settings):
    # The int8-arithmetic variant's vectors differ a little from the default's: an index built by
    # one is refused by the other rather than searched with mixed vectors, until ``reindex``.
    _chunk_in_db(*KAYAK)
    _foreign_index(database=database_fingerprint(), embedder_name="local:all-MiniLM-L6-v2-int8")
    settings.RAG_EMBEDDER = "local-fast"
    assert get_embedder().name == "local:all-MiniLM-L6-v2-int8-smoothquant"
    response = staff_client.get(SEARCH, {"q": "kayak rentals"})
    assert response.status_code == 503
    assert "local:all-MiniLM-L6-v2-int8" in response.json()["detail"] and "reindex" in response.json()["detail"]
    call_command("reindex")
    results = staff_client.get(SEARCH, {"q": "kayak rentals"}).json()["results"]
    assert [r["title"] for r in results] == ["Kayak rentals"]


@pytest.mark.django_db
def test_a_fresh_store_adopts_this_database():
    document_ingest(item=DocumentInput(title=KAYAK[0], content=KAYAK[1]))
    meta = json.loads((Path(settings.VECTOR_INDEX_DIR) / "meta.json").read_text())
    assert meta["database"] == database_fingerprint()
    assert meta["embedder_name"] == get_embedder().name
    reset_providers()  # a new process: it loads the index and accepts it
    assert get_vector_store().count() == Chunk.objects.count() == 1


# --- health -----------------------------------------------------------------------------------


def test_health_reports_vectors_and_chunks_and_degrades_when_they_differ(staff_client, anon_client, knowledge_base):
    chunks = Chunk.objects.count()
    body = staff_client.get("/api/health/").json()
    store = body["checks"]["vector_store"]
    assert body["status"] == "ok" and body["degraded"] == []
    assert store["vectors"] == store["chunks"] == chunks and "hint" not in store

    lost = list(knowledge_base[0].chunks.values_list("id", flat=True))
    get_vector_store().delete(lost)  # vectors lost behind the database's back
    public = anon_client.get("/api/health/").json()  # anyone sees the state and the fix ...
    assert public["status"] == "degraded" and "manage.py reindex" in public["checks"]["vector_store"]["hint"]
    response = staff_client.get("/api/health/")  # ... staff the counts too
    assert response.status_code == 200
    body = response.json()
    store = body["checks"]["vector_store"]
    assert body["status"] == "degraded" and body["degraded"] == ["vector_store"] and body["down"] == []
    assert (store["vectors"], store["chunks"]) == (chunks - len(lost), chunks)
    assert "manage.py reindex" in store["hint"]

    call_command("reindex")
    assert anon_client.get("/api/health/").json()["status"] == "ok"


def test_health_degrades_until_every_document_has_its_centroid(staff_client, anon_client, knowledge_base):
    assert staff_client.get("/api/health/").json()["checks"]["vector_store"]["documents_without_centroid"] == 0
    Document.objects.filter(pk=knowledge_base[0].pk).update(centroid=None, centroid_model="")  # from before them
    public = anon_client.get("/api/health/").json()
    assert public["status"] == "degraded"
    assert "1 documents have no centroid" in public["checks"]["vector_store"]["hint"]
    assert staff_client.get("/api/health/").json()["checks"]["vector_store"]["documents_without_centroid"] == 1
    call_command("reindex")
    assert anon_client.get("/api/health/").json()["status"] == "ok"


# --- two real processes -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port, self.env, self.log = port, env, log
        self.token = ""

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One request on its own connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Connection": "close", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        body = json.loads(response.read() or b"null")
        conn.close()
        return response.status, body

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def search_titles(self, query: str) -> list[str]:
        status, body = self.get(f"{SEARCH}?q={query.replace(' ', '+')}")
        assert status == 200, body
        return [result["title"] for result in body["results"]]


MAKE_USER = (
    "from users.models import User; from users.services import tokens_for; "
    "u = User.objects.create_user(username='reader', email='reader@example.com', password='x-Pass-12345', "
    "is_verified=True, is_staff=True); print(tokens_for(u).access)"
)


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """gunicorn on a fresh SQLite database (no Redis: the in-process fakeredis).

    One worker, so that the write below is certainly its own: a process that wrote to the index
    itself is the one that used to miss another process's writes (its own version board moved).
    """
    tmp_path = tmp_path_factory.mktemp("indexver")
    port, log = _free_port(), tmp_path / "gunicorn.log"
    prefixes = ("DATABASE_", "REDIS_", "GUNICORN_", "PROMETHEUS_", "MISTRAL_", "PINECONE_", "OPENAI_", "RAG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "VECTOR_INDEX_DIR"}
    env.update(
        DEBUG="false",
        SECRET_KEY="index-version-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        VAR_DIR=str(tmp_path / "var"),
        RAG_EMBEDDER="local",
        RAG_VECTOR_STORE="faiss",
        RAG_GENERATOR="extractive",
        LOG_LEVEL="WARNING",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="1",
        GUNICORN_CMD_ARGS="--no-control-socket",
    )
    server = LiveServer(port, env, log)
    server.manage("migrate", "--noinput", "-v", "0")
    garden = tmp_path / "garden" / "tomatoes.md"
    garden.parent.mkdir()
    garden.write_text(f"# {GARDEN[0]}\n\n{GARDEN[1]}\n")
    server.manage("ingest", str(garden.parent))
    server.token = server.manage("shell", "-c", MAKE_USER).strip().splitlines()[-1]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(lambda: server.get("/api/health/"), process, log, timeout_s=60, interval_s=0.2)
        yield server
    finally:
        stop(process)


def test_a_cli_ingest_is_found_by_the_next_search_without_a_restart(gunicorn_server, tmp_path):
    # The server writes to the index itself (an admin adds a document), and has loaded it as it
    # is: the garden article and the opening hours, no kayaks.
    document = {"title": "Opening hours", "content": "The boathouse office opens at nine.", "category": "FAQ"}
    assert gunicorn_server.request("POST", "/api/rag/documents/", document)[0] == 201
    assert "Kayak rentals" not in gunicorn_server.search_titles("kayak rentals")
    assert gunicorn_server.get("/api/health/")[1]["checks"]["vector_store"]["vectors"] == 2

    kayak = tmp_path / "kayak" / "rentals.md"
    kayak.parent.mkdir()
    kayak.write_text(f"# {KAYAK[0]}\n\n{KAYAK[1]}\n")
    gunicorn_server.manage("ingest", str(kayak.parent))
    # Each worker looks at the version at most every RAG_INDEX_CHECK_S (0.5 s): let that pass.
    time.sleep(1.0)

    assert gunicorn_server.search_titles("kayak rentals")[0] == "Kayak rentals"
    status, health = gunicorn_server.get("/api/health/")
    store = health["checks"]["vector_store"]
    assert status == 200 and health["status"] == "ok"
    assert store["vectors"] == store["chunks"] == 3


# --- make run and make serve keep their data apart --------------------------------------------


def test_make_serve_keeps_its_data_in_var_serve(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "VAR_DIR", "DEBUG"))}
    # A database that refuses at once: the script stops at its first step, after saying where its data is.
    env.update(SECRET_KEY="x" * 50, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="postgres://u:p@127.0.0.1:1/none")
    result = subprocess.run(
        ["scripts/serve.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "serve: data (FAISS index, mail, backups) in var/serve\n" in result.stderr + result.stdout


def test_a_relative_var_dir_is_relative_to_the_checkout(tmp_path):
    code = "from django.conf import settings; print(settings.VAR_DIR); print(settings.VECTOR_INDEX_DIR)"
    env = {**os.environ, "VAR_DIR": "var/serve", "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env["DATABASE_URL"] = "sqlite:///:memory:"  # creates no directory in the checkout
    env.pop("VECTOR_INDEX_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=tmp_path,  # not the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.split() == [str(ROOT / "var" / "serve"), str(ROOT / "var" / "serve" / "index")]
