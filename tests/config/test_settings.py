"""Settings: production checks are clean, and a missing SECRET_KEY outside DEBUG is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "SECRET_KEY": "p8Vq3-production-like-secret-key-with-plenty-of-entropy-x7Lr2Zs9Kd4M",
    "ALLOWED_HOSTS": "api.example.com",
    "PUBLIC_BASE_URL": "https://api.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | {"ENV_FILE": ""}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_key_without_debug_fails_at_startup():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_defaults_off():
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; import sys; sys.stdout.write(str(settings.DEBUG))",
        env=PRODUCTION_ENV,
    )
    assert result.stdout.strip() == "False", result.stderr


def test_a_heading_weight_under_one_is_refused_at_startup():
    result = run_manage("check", env=PRODUCTION_ENV | {"RAG_HEADING_WEIGHT": "0"})
    assert result.returncode != 0
    assert "RAG_HEADING_WEIGHT must be at least 1" in result.stderr


def test_a_negative_document_weight_is_refused_at_startup():
    result = run_manage("check", env=PRODUCTION_ENV | {"RAG_DOCUMENT_WEIGHT": "-1"})
    assert result.returncode != 0
    assert "RAG_DOCUMENT_WEIGHT must not be negative" in result.stderr


def test_a_document_fusion_share_outside_zero_to_one_is_refused_at_startup():
    result = run_manage("check", env=PRODUCTION_ENV | {"RAG_DOCUMENT_FUSION": "1.5"})
    assert result.returncode != 0
    assert "RAG_DOCUMENT_FUSION must be between 0 and 1" in result.stderr


def test_an_unknown_fusion_method_is_refused_at_startup():
    result = run_manage("check", env=PRODUCTION_ENV | {"RAG_FUSION_METHOD": "borda"})
    assert result.returncode != 0
    assert "RAG_FUSION_METHOD must be scores or rrf" in result.stderr
    assert run_manage("check", env=PRODUCTION_ENV | {"RAG_FUSION_METHOD": "RRF"}).returncode == 0


def test_every_process_caps_openblas_at_one_thread():
    code = "import sys, os; sys.stdout.write(os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))"
    assert run_manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV).stdout == "1"
    chosen = run_manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV | {"OPENBLAS_NUM_THREADS": "2"})
    assert chosen.stdout == "2"  # the environment's choice wins


def test_the_cap_is_set_before_anything_loads_numpy():
    """OpenBLAS reads the variable once, when numpy loads it: the config package must come first."""
    code = "import sys; import config; sys.stdout.write(str('numpy' in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout == "False", result.stderr
