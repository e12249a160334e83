"""The API docs as a developer uses them: Swagger UI in a real browser, against a production server.

One walk through the page, as the README's quick start describes it: the docs load with
``DEBUG=false`` (WhiteNoise serving the drf-spectacular sidecar's files), the developer presses
Authorize, pastes an access token, opens ``GET /api/auth/profile/``, presses "Try it out" and
"Execute", and sees their own profile. Every request the page made is read back from Chromium's
DevTools log: none may go anywhere but this machine, and none may fail.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import USERNAME, DocsServer, login

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

WAIT_S = 60  # generous: a shared two-core machine may be busy
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss"})
# Served from inside the browser (chrome:// is Chromium's own start page, loading in parallel).
IN_BROWSER_SCHEMES = frozenset({"data", "blob", "about", "chrome"})
SIDECAR_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")


def _is_sidecar_file(path: str, name: str) -> bool:
    """``path`` serves the sidecar's ``name``, as collected: hashed (``swagger-ui.1a2b3c4d5e6f.css``)."""
    stem, _, suffix = name.rpartition(".")
    return re.search(rf"/swagger-ui-dist/{re.escape(stem)}\.[0-9a-f]{{12}}\.{suffix}$", path) is not None


@dataclass
class NetworkLog:
    """Every request and response Chromium reported through its DevTools performance log."""

    requests: list[str] = field(default_factory=list)  # URLs, in order
    statuses: dict[str, int] = field(default_factory=dict)  # URL -> the last status seen

    def drain(self, driver: webdriver.Chrome) -> None:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params: dict[str, Any] = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif message["method"] == "Network.responseReceived":
                self.statuses[params["response"]["url"]] = params["response"]["status"]

    def paths_with_status(self, status: int) -> set[str]:
        return {urlsplit(url).path for url, seen in self.statuses.items() if seen == status}


def _wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    # React re-renders Swagger UI (notably when the schema is reloaded after Authorize), so an
    # element found a moment ago may be gone or briefly covered: such attempts are retried.
    return WebDriverWait(
        driver,
        WAIT_S,
        poll_frequency=0.25,
        ignored_exceptions=(
            StaleElementReferenceException,
            ElementClickInterceptedException,
            ElementNotInteractableException,
        ),
    )


def _click(driver: webdriver.Chrome, css: str, within: str = "", by: str = By.CSS_SELECTOR) -> None:
    """Click the first visible, enabled element matching ``within css``, retrying through re-renders."""
    selector = f"{within} {css}".strip() if by == By.CSS_SELECTOR else css

    def attempt(d: webdriver.Chrome) -> bool:
        element = d.find_element(by, selector)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        d.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        return True

    _wait(driver).until(attempt, f"could not click {selector!r}")


def _visible(driver: webdriver.Chrome, css: str) -> WebElement:
    element: WebElement = _wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)), css)
    return element


def _text_of(driver: webdriver.Chrome, css: str, by: str = By.CSS_SELECTOR) -> Callable[[webdriver.Chrome], str | bool]:
    def read(d: webdriver.Chrome) -> str | bool:
        elements = d.find_elements(by, css)
        return bool(elements) and elements[0].text.strip()

    return read


JWT_FORM = (
    "//div[contains(@class, 'dialog-ux')]//div[contains(@class, 'auth-container')]"
    "[.//h4//code[normalize-space()='jwtAuth']]"
)


def test_swagger_ui_authorizes_and_calls_profile_offline(docs_server: DocsServer, browser: webdriver.Chrome) -> None:
    token = login(docs_server)
    network = NetworkLog()

    # The page and its schema render: the sidecar's files were served with DEBUG off.
    browser.get(f"{docs_server.base_url}/api/docs/")
    title = _visible(browser, ".swagger-ui .info .title")
    assert "RAG Chatbot API" in title.text
    operation = "#operations-auth-auth_profile_retrieve"  # #operations-<tag>-<operationId>
    _visible(browser, operation)

    # Authorize with the bearer token, then close the dialog.
    _click(browser, ".auth-wrapper .btn.authorize")
    # The dialog lists each scheme in a form of its own (the API key's too): use the bearer one's.
    _visible(browser, ".dialog-ux .modal-ux #auth-bearer-value").send_keys(token)
    _click(browser, f"{JWT_FORM}//button[@type='submit']", by=By.XPATH)
    authorized = _wait(browser).until(_text_of(browser, f"{JWT_FORM}//h6", by=By.XPATH), "no 'Authorized' mark")
    assert authorized == "Authorized"
    _click(browser, ".btn.modal-btn.auth.btn-done", within=".dialog-ux")
    _wait(browser).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux")), "dialog still open")
    _visible(browser, ".auth-wrapper .btn.authorize.locked")

    # GET /api/auth/profile/: expand, Try it out, Execute.
    _click(browser, ".opblock-summary-control", within=operation)
    _click(browser, ".try-out__btn", within=operation)
    _click(browser, ".btn.execute", within=operation)
    status_css = f"{operation} .live-responses-table .response .response-col_status"
    status = _wait(browser).until(_text_of(browser, status_css), "no response status shown")
    body_css = f"{operation} .live-responses-table .response .response-col_description"
    body = browser.find_element(By.CSS_SELECTOR, body_css).text

    assert status == "200", body
    assert f'"username": "{USERNAME}"' in body

    # Everything the page fetched stayed on this machine and succeeded.
    network.drain(browser)
    schemes = {urlsplit(url).scheme for url in network.requests}
    assert schemes <= NETWORK_SCHEMES | IN_BROWSER_SCHEMES, f"unexpected kinds of request: {schemes}"
    outside = [url for url in network.requests if urlsplit(url).scheme in NETWORK_SCHEMES]
    outside = [url for url in outside if urlsplit(url).hostname not in LOCAL_HOSTS]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    failed = {url: seen for url, seen in network.statuses.items() if seen >= 400}
    assert failed == {}, f"failed requests: {failed}"
    served = network.paths_with_status(200)
    sidecar = {name for name in SIDECAR_FILES if any(_is_sidecar_file(path, name) for path in served)}
    assert sidecar == set(SIDECAR_FILES), f"sidecar files served: {sidecar}; all 200s: {served}"
    assert {"/api/docs/", "/api/schema/", "/api/auth/profile/"} <= served
