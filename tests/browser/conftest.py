"""A production-style server and a headless Chromium for the browser tests.

The server is started the way production starts it (gunicorn, ``DEBUG=false``, a real
``SECRET_KEY``), not through pytest-django's ``live_server``: that one runs with the test
settings and serves static files through Django's own handler, so it would not show whether
WhiteNoise really serves the Swagger UI files in production. Its database is a SQLite file in a
temporary directory, migrated by a short bootstrap process that also creates the test user.

Chromium is Debian's (``make browser-deps``), driven by Debian's chromedriver; nothing is ever
downloaded (Selenium Manager is never asked: both paths are explicit and ``SE_OFFLINE`` is set).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
USERNAME = "ada"
PASSWORD = "s3cure-Passphrase-42"
SERVER_START_TIMEOUT_S = 90.0
# Only what a process needs to run; everything else comes from the production defaults, so a
# developer's DATABASE_URL, REDIS_URL or provider keys never reach the test server.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def require_browser() -> None:
    """Skip when Chromium is not installed, except on CI (CI is set), which must run this test."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed: run `make browser-deps` (Debian's chromium, chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class DocsServer:
    """A running gunicorn: where it listens and its log file."""

    base_url: str  # http://127.0.0.1:<port>
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _server_env(var_dir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        ENV_FILE="",  # a developer's .env never reaches the test server either
        DEBUG="false",
        SECRET_KEY=os.urandom(32).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback; production terminates TLS in front
        VAR_DIR=str(var_dir),
        # Its own, collected as `make serve` does: never the checkout's staticfiles/, which a
        # `make serve` may have left behind.
        STATIC_ROOT=str(var_dir / "static"),
        DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}",
        USE_FAKE_REDIS="true",
        DEV_SCHEDULER="false",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="INFO",  # gunicorn logs the port it was given at INFO
        GUNICORN_BIND="127.0.0.1:0",  # the OS picks a free port; read back from the log
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
        GUNICORN_ACCESS_LOG="-",
        PYTHONUNBUFFERED="1",
    )
    return env


_BOOTSTRAP = """
import os, django
django.setup()
from django.core.management import call_command
from users.models import User
call_command("migrate", interactive=False, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
User.objects.create_user(
    username=os.environ["BROWSER_USERNAME"], email=os.environ["BROWSER_USERNAME"] + "@example.com",
    password=os.environ["BROWSER_PASSWORD"], is_verified=True,
)
"""


def _bootstrap_database(env: dict[str, str]) -> None:
    """Migrate the server's own SQLite file, collect its static files, and create one verified user."""
    subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP],
        cwd=BASE_DIR,
        env=env | {"BROWSER_USERNAME": USERNAME, "BROWSER_PASSWORD": PASSWORD},
        check=True,
        timeout=120,
    )


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def _wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """The master listens before its worker has loaded Django; wait for a real answer."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited while starting:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/api/docs/", timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:  # a worker answered: it is broken, not starting
            raise RuntimeError(
                f"/api/docs/ answered {exc.code}:\n" + log_path.read_text(errors="replace")[-4000:]
            ) from exc
        except OSError:  # not listening yet, or the worker is still loading Django
            time.sleep(0.3)
    raise RuntimeError(
        f"{base_url}/api/docs/ did not answer 200 within {SERVER_START_TIMEOUT_S:.0f} s:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsServer]:
    """gunicorn with the production settings on a free 127.0.0.1 port; stopped after the module."""
    require_browser()  # no point starting a server that no browser will visit
    var_dir = tmp_path_factory.mktemp("browser-server")
    env = _server_env(var_dir)
    _bootstrap_database(env)
    log_path = var_dir / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            # No control socket: its default path is shared by every gunicorn of this user.
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--no-control-socket", "config.wsgi"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_for_port(process, log_path)
        server = DocsServer(base_url=f"http://127.0.0.1:{port}", log_path=log_path)
        _wait_until_serving(server.base_url, process, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def login(server: DocsServer) -> str:
    """An access token from the real login endpoint, as a person would get one."""
    request = urllib.request.Request(
        f"{server.base_url}/api/auth/login/",
        data=json.dumps({"username": USERNAME, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["access"])


# --- the browser ------------------------------------------------------------------------------

_CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the suite runs as root on CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
    # No name but localhost resolves: even a request the test failed to notice could not leave.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)
_PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the browser fixture knows whether the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_PHASE_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path, docs_server: DocsServer) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with DevTools performance logs (every network request) switched on."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser or driver
        driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        call_report = request.node.stash.get(_PHASE_REPORTS, {}).get("call")
        if call_report is not None and call_report.failed:
            _save_failure_artifacts(driver, request.node.name, docs_server)
        driver.quit()


def _save_failure_artifacts(driver: webdriver.Chrome, name: str, server: DocsServer) -> None:
    """A screenshot and the page's HTML under var/test/browser/, and the server's last log lines."""
    out_dir = BASE_DIR / settings.VAR_DIR / "browser"  # VAR_DIR may be relative (var/test)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        driver.save_screenshot(str(out_dir / f"{name}.png"))
        (out_dir / f"{name}.html").write_text(driver.page_source)
    except WebDriverException:
        logger.exception("Could not save the browser's state after the failure")
    logger.error("Browser test failed; screenshot and HTML in %s. Server log:\n%s", out_dir, server.log_tail())
