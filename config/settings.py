"""The one settings module, read from environment variables (see ``.env.example``).

With no environment at all the service runs on the embedded default: a SQLite file under
``var/``, fakeredis in-process, the local embedder and FAISS. Production is selected only by
environment variables, never by code elsewhere asking which mode it is in.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from config.env import env_admins, env_bool, env_float, env_int, env_list, env_str, load_env_file, local_base_url
from config.startup import embedded_secret_key

django_stubs_ext.monkeypatch()  # lets annotations like ModelAdmin[User] run

BASE_DIR = Path(__file__).resolve().parent.parent
load_env_file(BASE_DIR)  # .env, when present; the environment wins over it
# A relative VAR_DIR is relative to the checkout, not to the directory a command is run from:
# `make serve` (var/serve) and `make run` (var) must always find their own data.
VAR_DIR = BASE_DIR / (env_str("VAR_DIR") or "var")

# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
# The embedded default: no database or Redis named in the environment (SQLite under VAR_DIR and
# in-process fakeredis), as `make run` and any bare `manage.py` command run.
EMBEDDED_DEFAULT = not (env_str("DATABASE_URL") or env_str("REDIS_URL") or env_str("REDIS_HOST"))
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or EMBEDDED_DEFAULT):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    # Never a key written in the source: this installation's own random key, kept in VAR_DIR (0600).
    SECRET_KEY = embedded_secret_key(VAR_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Base of the links in emails. Unset: the address the server listens on (HOST, PORT), so
# `PORT=9000 make run` mails links to port 9000; a wildcard host means this machine's loopback.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/") or local_base_url(env_str("HOST"), env_int("PORT", 8000))
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # First, so that its `runserver` (which also starts the dev scheduler) wins over staticfiles'.
    "background_tasks",
    "users.admin_config.LockoutAdminConfig",  # django.contrib.admin, its login behind the lockout
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "utils",
    "users",
    "rag",
    "chat",
    "workspaces",
]

MIDDLEWARE = [
    # First: the request id and the request timing cover every response, errors included.
    "utils.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "utils.api_routes.ApiCommonMiddleware",  # Django's CommonMiddleware; JSON 404s, no slash redirects under /api/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A host that never answers must fail the request in seconds, not hold a worker thread.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT_S", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions: concurrent readers, no "database is locked" upgrades,
    # and one fsync per commit instead of two (see PROVIDER-NOTES, "SQLite on these disks").
    # Connections persist (DB_CONN_MAX_AGE) as on PostgreSQL: opening one and running these
    # PRAGMAs was a tenth of a history read's CPU time.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, throttles, locks, scheduler job store ---------------------------------------
REDIS_HOST = env_str("REDIS_HOST")
REDIS_PORT = env_int("REDIS_PORT", 6379)
REDIS_DB = env_int("REDIS_DB", 0)
REDIS_PASSWORD = env_str("REDIS_PASSWORD")
REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL and REDIS_HOST:
    auth = f":{quote(REDIS_PASSWORD, safe='')}@" if REDIS_PASSWORD else ""
    REDIS_URL = f"redis://{auth}{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
USE_FAKE_REDIS = env_bool("USE_FAKE_REDIS", not REDIS_URL)
if USE_FAKE_REDIS:
    REDIS_URL = "redis://fakeredis:6379/0"
REDIS_SOCKET_TIMEOUT_S = env_float("REDIS_SOCKET_TIMEOUT_S", 1.0)
CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "ragchat")

CACHES = {
    "default": {
        "BACKEND": "utils.cache.RedisCache",  # Django's, reusing one client per pool
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
        "OPTIONS": {
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_S,
            "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        },
    }
}
if USE_FAKE_REDIS:
    from utils.redis import fake_connection_options

    CACHES["default"]["OPTIONS"] = fake_connection_options()

# --- Auth and accounts ------------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["users.backends.UsernameOrEmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
REQUIRE_EMAIL_VERIFICATION = env_bool("REQUIRE_EMAIL_VERIFICATION", True)
EMAIL_VERIFICATION_TTL_HOURS = env_int("EMAIL_VERIFICATION_TTL_HOURS", 24)
PASSWORD_RESET_TTL_HOURS = env_int("PASSWORD_RESET_TTL_HOURS", 1)
# Optional front-end page for reset links, e.g. "https://app.example.com/reset?token={token}".
PASSWORD_RESET_URL_TEMPLATE = env_str("PASSWORD_RESET_URL_TEMPLATE")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY") or SECRET_KEY,
    "ISSUER": env_str("JWT_ISSUER", "ragchat"),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "LEEWAY": 0,
}

# --- REST framework, throttles, docs ----------------------------------------------------------
THROTTLE_RATES = {
    "login": env_str("THROTTLE_LOGIN", "5/min"),
    "register": env_str("THROTTLE_REGISTER", "20/hour"),
    "password_reset": env_str("THROTTLE_PASSWORD_RESET", "5/hour"),
    "account_token": env_str("THROTTLE_ACCOUNT_TOKEN", "20/hour"),
    "chat": env_str("THROTTLE_CHAT", "30/min"),
    "session_create": env_str("THROTTLE_SESSION_CREATE", "60/hour"),
    "search": env_str("THROTTLE_SEARCH", "60/min"),
    "export": env_str("THROTTLE_EXPORT", "10/hour"),
    "workspace_create": env_str("THROTTLE_WORKSPACE_CREATE", "20/hour"),
    "invitation": env_str("THROTTLE_INVITATION", "30/hour"),
    "api_key": env_str("THROTTLE_API_KEY", "120/min"),
}
CHAT_DAILY_QUOTA = env_int("CHAT_DAILY_QUOTA", 500)
# Workspace API keys (DESIGN §8): live (unrevoked, unexpired) keys per workspace, and the
# longest expiry a key may be given.
API_KEYS_MAX_PER_WORKSPACE = env_int("API_KEYS_MAX_PER_WORKSPACE", 50)
API_KEYS_MAX_DAYS = env_int("API_KEYS_MAX_DAYS", 365)
# Workspace quotas by plan (DESIGN §8), copied onto a workspace when it is made; staff may change a
# workspace's own limits in the admin. Bytes count the documents' extracted text.
WORKSPACE_PLANS = {
    "free": {
        "max_documents": env_int("WORKSPACE_FREE_MAX_DOCUMENTS", 200),
        "max_bytes": env_int("WORKSPACE_FREE_MAX_BYTES", 50 * 1024 * 1024),
        "max_messages_per_day": env_int("WORKSPACE_FREE_MAX_MESSAGES_PER_DAY", 2000),
    },
    "team": {
        "max_documents": env_int("WORKSPACE_TEAM_MAX_DOCUMENTS", 5000),
        "max_bytes": env_int("WORKSPACE_TEAM_MAX_BYTES", 1024 * 1024 * 1024),
        "max_messages_per_day": env_int("WORKSPACE_TEAM_MAX_MESSAGES_PER_DAY", 50000),
    },
}
# Workspaces one user may own besides their personal one (each holds documents and vectors).
WORKSPACE_MAX_OWNED = env_int("WORKSPACE_MAX_OWNED", 20)
# Invitations by email: single use, expiring; the optional front-end page replaces {token}.
WORKSPACE_INVITATION_TTL_HOURS = env_int("WORKSPACE_INVITATION_TTL_HOURS", 72)
WORKSPACE_INVITATION_URL_TEMPLATE = env_str("WORKSPACE_INVITATION_URL_TEMPLATE")
# Failed logins (admin and API) counted per client address and per account in the shared cache;
# at the limit, logins from that address or for that account are refused until the window ends.
LOGIN_LOCKOUT_CLIENT_FAILURES = env_int("LOGIN_LOCKOUT_CLIENT_FAILURES", 20)
LOGIN_LOCKOUT_ACCOUNT_FAILURES = env_int("LOGIN_LOCKOUT_ACCOUNT_FAILURES", 5)
LOGIN_LOCKOUT_WINDOW_MINUTES = env_int("LOGIN_LOCKOUT_WINDOW_MINUTES", 15)
# Answer streams one user may have open at once (each holds a worker thread); 0 = no limit.
CHAT_MAX_CONCURRENT_STREAMS = env_int("CHAT_MAX_CONCURRENT_STREAMS", 2)
# Seconds after which a stream's slot expires if its worker died without releasing it.
CHAT_STREAM_SLOT_TTL = env_int("CHAT_STREAM_SLOT_TTL", 300)
# Cache GET /api/chat/history/ per user until their next write (keyed by a version token kept in
# the database, so it is exact on a shared Redis and on each worker's own fakeredis alike).
CHAT_HISTORY_CACHE = env_bool("CHAT_HISTORY_CACHE", True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.authentication.JWTAuthentication",  # simplejwt + revocation; first, so 401s say Bearer
        "workspaces.authentication.ApiKeyAuthentication",  # Authorization: Api-Key …, scoped (DESIGN §8)
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["utils.parsers.JSONParser"],  # DRF's, with a nesting bound
    "DEFAULT_PAGINATION_CLASS": "utils.pagination.StandardPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "utils.exception_handler.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    # Number of trusted reverse proxies in front of the app; 0 ignores X-Forwarded-For, which a
    # client could otherwise forge to dodge per-client throttles.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # OPTIONS is answered 405 instead of with view metadata: every method is in the OpenAPI schema,
    # and none outside it answers (CORS preflights are answered by corsheaders before any view).
    "DEFAULT_METADATA_CLASS": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RAG Chatbot API",
    "DESCRIPTION": (
        "Grounded chat over a curated knowledge base. Authenticate with `POST /api/auth/login/`, "
        "then press **Authorize** and paste the `access` token."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # The schema and docs are public and the same for everyone: credentials sent along (a stale
    # token, an API key, which is refused off its endpoints) are not read, so they cannot fail.
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the workspace roles wherever a serializer lists them (members, invitations, export).
    "ENUM_NAME_OVERRIDES": {"WorkspaceRoleEnum": "workspaces.models.Membership.Role"},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayRequestDuration": True},
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = False
CORS_URLS_REGEX = r"^/api/.*$"

# --- Email ------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "RAG Chatbot <no-reply@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# Account mail (verification, password reset) goes out from a background thread after the
# response, so a known and an unknown address take the same time (users/outbox.py).
EMAIL_SEND_IN_BACKGROUND = env_bool("EMAIL_SEND_IN_BACKGROUND", True)
EMAIL_QUEUE_SIZE = env_int("EMAIL_QUEUE_SIZE", 1000)
EMAIL_DRAIN_SECONDS = env_int("EMAIL_DRAIN_SECONDS", 10)
ADMINS = env_admins("ADMINS")

# --- Security (production values unless DEBUG; each overridable) --------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Bodies: JSON up to 2.5 MB; uploads are limited to 10 MB by the knowledge-base API.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 2_621_440)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
# What one document may cost (rag/ingestion/limits.py): over these it is a 413 document_too_large.
INGEST_MAX_CHARS = env_int("INGEST_MAX_CHARS", 500_000)
INGEST_MAX_PAGES = env_int("INGEST_MAX_PAGES", 300)
INGEST_MAX_CHUNKS = env_int("INGEST_MAX_CHUNKS", 800)
# PDFs are parsed in a child process, killed past this time or memory (422 document_too_complex).
PDF_PARSE_TIMEOUT_S = env_float("PDF_PARSE_TIMEOUT_S", 20.0)
PDF_PARSE_MEMORY_MB = env_int("PDF_PARSE_MEMORY_MB", 512)

# --- Retrieval and answers (rag) ---------------------------------------------------------------
# Each provider is chosen once, here. "auto" picks the production provider when its key is set.
MISTRAL_API_KEY = env_str("MISTRAL_API_KEY")
MISTRAL_SERVER_URL = env_str("MISTRAL_SERVER_URL")  # empty: Mistral's public API
MISTRAL_EMBED_MODEL = env_str("MISTRAL_EMBED_MODEL", "mistral-embed")
MISTRAL_CHAT_MODEL = env_str("MISTRAL_CHAT_MODEL", "mistral-small-latest")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")  # e.g. http://127.0.0.1:11434/v1 for Ollama
OPENAI_MODEL = env_str("OPENAI_MODEL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
PINECONE_API_KEY = env_str("PINECONE_API_KEY")
PINECONE_INDEX_NAME = env_str("PINECONE_INDEX_NAME", "ragchat")
PINECONE_HOST = env_str("PINECONE_HOST")  # an index host URL, or Pinecone Local
PINECONE_NAMESPACE = env_str("PINECONE_NAMESPACE", "default")

RAG_EMBEDDER = env_str("RAG_EMBEDDER", "auto").lower()
RAG_VECTOR_STORE = env_str("RAG_VECTOR_STORE", "auto").lower()
RAG_GENERATOR = env_str("RAG_GENERATOR", "auto").lower()
if RAG_EMBEDDER == "auto":
    # local-fast (int8 arithmetic, smoothed) over local (float32): twice the ingestion speed, and
    # retrieval and answers on the dev splits within a question of float32 (README, "Choosing the
    # local embedder").
    RAG_EMBEDDER = "mistral" if MISTRAL_API_KEY else "local-fast"
if RAG_VECTOR_STORE == "auto":
    RAG_VECTOR_STORE = "pinecone" if PINECONE_API_KEY else "faiss"
if RAG_GENERATOR == "auto":
    RAG_GENERATOR = "mistral" if MISTRAL_API_KEY else "openai" if OPENAI_BASE_URL else "extractive"
_RAG_CHOICES = {
    "RAG_EMBEDDER": (RAG_EMBEDDER, {"local", "local-fast", "mistral"}),
    "RAG_VECTOR_STORE": (RAG_VECTOR_STORE, {"faiss", "pinecone"}),
    "RAG_GENERATOR": (RAG_GENERATOR, {"extractive", "mistral", "openai"}),
}
for _name, (_value, _allowed) in _RAG_CHOICES.items():
    if _value not in _allowed:
        raise ImproperlyConfigured(f"{_name} must be auto or one of {sorted(_allowed)}, got {_value!r}.")
if "mistral" in (RAG_EMBEDDER, RAG_GENERATOR) and not MISTRAL_API_KEY:
    raise ImproperlyConfigured("MISTRAL_API_KEY must be set to use Mistral (RAG_EMBEDDER or RAG_GENERATOR).")
if RAG_VECTOR_STORE == "pinecone" and not PINECONE_API_KEY:
    raise ImproperlyConfigured("PINECONE_API_KEY must be set when RAG_VECTOR_STORE is pinecone.")
if RAG_GENERATOR == "openai" and not (OPENAI_BASE_URL and OPENAI_MODEL):
    raise ImproperlyConfigured("OPENAI_BASE_URL and OPENAI_MODEL must be set when RAG_GENERATOR is openai.")

VECTOR_INDEX_DIR = Path(env_str("VECTOR_INDEX_DIR", str(VAR_DIR / "index")))
# How often (seconds) a process looks at the knowledge base's version in the database, at most,
# to reload its FAISS and lexical indexes after another process changed them.
RAG_INDEX_CHECK_S = env_float("RAG_INDEX_CHECK_S", 0.5)
LOCAL_EMBEDDER_THREADS = env_int("LOCAL_EMBEDDER_THREADS", 0)  # 0: one per core
FAISS_THREADS = env_int("FAISS_THREADS", 1)  # OpenMP threads per search
EMBED_BATCH_SIZE = env_int("EMBED_BATCH_SIZE", 64)
RAG_TOP_K = env_int("RAG_TOP_K", 3)
RAG_CANDIDATES = env_int("RAG_CANDIDATES", 50)  # chunks taken from each ranking before fusion
RAG_MIN_SCORE = env_float("RAG_MIN_SCORE", 0.25)  # cosine; below it a document is not used
RAG_FUSION = env_str("RAG_FUSION", "hybrid").lower()  # hybrid (dense + BM25 fused), dense or lexical
# How hybrid fuses its rankings: "scores" (since session 17), a weighted sum of each ranking's
# scores normalised over its candidates (best 1, last 0; rag.lexical.score_fusion), or "rrf",
# reciprocal rank fusion with k=RAG_RRF_K, the method of sessions 6-16. Scores gained on the dev
# splits of all twenty-one corpora (mean MRR@3 .867 to .884) and held on their test splits (.867 to
# .879) and on seven corpora written after the choice (test .899 to .923), with no constant to
# choose (README "Retrieval quality").
RAG_FUSION_METHOD = env_str("RAG_FUSION_METHOD", "scores").lower()
if RAG_FUSION_METHOD not in {"scores", "rrf"}:
    raise ImproperlyConfigured(f"RAG_FUSION_METHOD must be scores or rrf, got {RAG_FUSION_METHOD!r}.")
# BM25 counts as much as the dense ranking (at half weight it lost on test splits). Under RRF, k=20
# since session 11: chosen on twelve dev evaluations (six documentation corpora, each alone and all
# in one 10k-chunk knowledge base), where MRR@3 rose as k fell from 60 (Cormack et al.'s constant)
# on every corpus at 10k chunks (mean .803 to .829); 10 went further but lost more help-centre
# topic switches (README "Retrieval quality").
RAG_LEXICAL_WEIGHT = env_float("RAG_LEXICAL_WEIGHT", 1.0)
RAG_RRF_K = env_int("RAG_RRF_K", 20)
# Weight of the document rankings by centroid that go with each dense ranking in hybrid retrieval,
# as a share of that ranking's weight (rag.services.retrieval; 0: chunks alone rank documents).
RAG_DOCUMENT_WEIGHT = env_float("RAG_DOCUMENT_WEIGHT", 1.0)
if RAG_DOCUMENT_WEIGHT < 0:
    raise ImproperlyConfigured(f"RAG_DOCUMENT_WEIGHT must not be negative, got {RAG_DOCUMENT_WEIGHT}.")
# Share of a document's per-document fusion (each ranking counting its best chunk of the document)
# added over its best chunk's fused score, so a page whose different chunks lead different rankings
# is not passed by a chunk that was second in both (0: documents by their best chunk alone; score
# fusion only; rag.services.retrieval._group_by_document, README "How the default ranks"). Session
# 20, on the dev splits of the 32 corpora: every share from 0.1 to 0.5 gained (mean MRR@3 .873 to
# .878-.881; 1, documents fused per document alone, .874), 0.25 most, and on the 14 with release
# notes too (.857 to .863); test .882 to .883, the four largest corpora .847 to .861.
RAG_DOCUMENT_FUSION = env_float("RAG_DOCUMENT_FUSION", 0.25)
if not 0 <= RAG_DOCUMENT_FUSION <= 1:
    raise ImproperlyConfigured(f"RAG_DOCUMENT_FUSION must be between 0 and 1, got {RAG_DOCUMENT_FUSION}.")
# How many times the words of a chunk's heading path count in BM25 (field weighting, as BM25F
# weights a title). Before the centroid ranking, 3 gained on the four documentation dev splits
# (mean hybrid MRR@3 .797 to .812; BM25 alone on every one) but not on their test splits (mean
# MRR@3 .838 either way, hit@3 .950 to .942, Scrapy's fusion falling behind dense), so the
# unweighted count stays (README "Retrieval quality").
RAG_HEADING_WEIGHT = env_int("RAG_HEADING_WEIGHT", 1)
if RAG_HEADING_WEIGHT < 1:
    raise ImproperlyConfigured(f"RAG_HEADING_WEIGHT must be at least 1, got {RAG_HEADING_WEIGHT}.")
# Release notes and changelogs after the other pages, unless the question is about versions or
# changes (rag/release_notes.py).
RAG_RELEASE_NOTES_LAST = env_bool("RAG_RELEASE_NOTES_LAST", True)
# Weight of the rankings of a short follow-up read together with the previous question, when it
# leans on it (it matches the knowledge base worse than the previous question did); a short
# question that matches on its own stands alone and gets at most 0.5, as a long one does (at most
# 1, the weight of its own rankings, under RRF).
RAG_FOLLOW_UP_WEIGHT = env_float("RAG_FOLLOW_UP_WEIGHT", 1.5)
RAG_HISTORY_TURNS = env_int("RAG_HISTORY_TURNS", 4)
RAG_TIMEOUT_S = env_float("RAG_TIMEOUT_S", 20.0)  # total budget of one provider call, retries included
RAG_REQUEST_TIMEOUT_S = env_float("RAG_REQUEST_TIMEOUT_S", 10.0)  # one HTTP attempt
# Query embeddings (about 1.6 KB each) live this long in Redis: with THROTTLE_SEARCH and THROTTLE_CHAT
# this bounds what one user can leave there (see README "Redis").
RAG_EMBED_CACHE_SECONDS = env_int("RAG_EMBED_CACHE_SECONDS", 3_600)
DOCUMENTS_DIR = Path(env_str("DOCUMENTS_DIR", str(BASE_DIR / "documents")))

# --- Maintenance jobs (background_tasks) ---------------------------------------------------------
# Schedules are crontab strings in UTC (minute hour day month weekday; weekday 0 or 7 = Sunday).
CHAT_RETENTION_DAYS = env_int("CHAT_RETENTION_DAYS", 30)
JOB_PRUNE_CHAT_HISTORY_CRON = env_str("JOB_PRUNE_CHAT_HISTORY_CRON", "0 2 * * *")
JOB_CLEANUP_TOKENS_CRON = env_str("JOB_CLEANUP_TOKENS_CRON", "0 3 * * *")
JOB_SEND_DAILY_REPORT_CRON = env_str("JOB_SEND_DAILY_REPORT_CRON", "0 8 * * *")
JOB_BACKUP_DATA_CRON = env_str("JOB_BACKUP_DATA_CRON", "0 1 * * sun")
BACKUP_DIR = Path(env_str("BACKUP_DIR") or str(VAR_DIR / "backups"))
BACKUP_KEEP = env_int("BACKUP_KEEP", 8)
# HMAC key of the archives' manifests; empty: derived from SECRET_KEY (then a new SECRET_KEY
# cannot verify older archives: set this to keep them restorable across a key rotation).
BACKUP_SIGNING_KEY = env_str("BACKUP_SIGNING_KEY")
# Restore reads an archive as untrusted input, within these bounds.
BACKUP_RESTORE_MAX_MEMBERS = env_int("BACKUP_RESTORE_MAX_MEMBERS", 16)
BACKUP_RESTORE_MAX_MEMBER_BYTES = env_int("BACKUP_RESTORE_MAX_MEMBER_BYTES", 8 * 1024**3)
BACKUP_RESTORE_MAX_ROW_BYTES = env_int("BACKUP_RESTORE_MAX_ROW_BYTES", 64 * 1024**2)
REPORT_RECIPIENTS = env_list("REPORT_RECIPIENTS")  # empty: ADMINS, else active staff users
DEV_SCHEDULER = env_bool("DEV_SCHEDULER", True)  # runserver also schedules (under the leader lock)
SCHEDULER_MISFIRE_GRACE_S = env_int("SCHEDULER_MISFIRE_GRACE_S", 3600)  # a run up to this late still happens
SCHEDULER_LEADER_TTL_S = env_int("SCHEDULER_LEADER_TTL_S", 30)  # leader lock lifetime; renewed every third

# --- Static files, i18n -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = True  # serve app static files (Swagger UI, admin) without collectstatic
# `collectstatic` (make serve runs it) writes hashed, compressed copies that WhiteNoise serves with
# far-future cache headers; before it has run, pages fall back to the plain files (utils.staticfiles).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "utils.staticfiles.ManifestStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# json: one JSON object per line (for log shippers); plain: for people reading a terminal.
LOG_FORMAT = (env_str("LOG_FORMAT") or ("plain" if DEBUG else "json")).lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # On the handler, so that every record it writes carries the request (or job run) id.
    "filters": {"request_id": {"()": "utils.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "utils.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "faiss": {"level": "WARNING"},  # its loader logs every CPU feature probe at INFO
        "bm25s": {"level": "WARNING"},
    },
}

# --- Metrics (Prometheus, GET /metrics) ---------------------------------------------------------
# Scrapers send "Authorization: Bearer <METRICS_TOKEN>". Unset: /metrics is 404, except with DEBUG
# on for clients on loopback. gunicorn aggregates its workers through PROMETHEUS_MULTIPROC_DIR.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Dev server ---------------------------------------------------------------------------------
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000)
CSRF_FAILURE_VIEW = "utils.views.csrf_failure"
