"""Issue 13 item 10: account enumeration by timing.

A password reset for a known address took 363 ms (the SMTP exchange ran inside the request) and
one for an unknown address 6 ms. The mail now leaves from the outbox thread after the commit, so
the request does no mail I/O either way. Counted, not timed: a recording mail backend notes the
thread of every send, and the request thread must make none. The transactions really commit here
(``transaction=True``), as in production, so an inline ``on_commit`` send would run inside the
request and be counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import UserFactory
from users import outbox

SENDS: list[tuple[int, list[str]]] = []  # (thread id, recipients) of every message sent


class RecordingBackend:
    """An email backend that notes which thread sent what (it stands for a slow SMTP server)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: list[Any]) -> int:
        SENDS.extend((threading.get_ident(), list(m.to)) for m in messages)
        return len(messages)


@pytest.fixture
def background_mail(settings: Any) -> Iterator[None]:
    settings.EMAIL_SEND_IN_BACKGROUND = True  # production's default (tests/conftest.py turns it off)
    settings.EMAIL_BACKEND = f"{__name__}.RecordingBackend"
    SENDS.clear()
    yield
    assert outbox.flush(timeout=30)
    SENDS.clear()


def _on_request_thread() -> int:
    me = threading.get_ident()  # the test client runs the view on this thread
    return sum(1 for thread, _ in SENDS if thread == me)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "known"),
    [
        ("/api/auth/password/reset/", {"is_verified": True}),
        ("/api/auth/resend-verification/", {"is_verified": False}),
    ],
)
def test_known_and_unknown_addresses_do_the_same_mail_io_in_the_request(anon_client, background_mail, path, known):
    UserFactory.create(email="known@example.com", **known)
    answers = []
    for email in ("known@example.com", "nobody@example.com"):
        response = anon_client.post(path, {"email": email}, format="json")
        answers.append((response.status_code, response.json()))
        assert _on_request_thread() == 0  # the request itself sent nothing, known address or not
    assert answers[0] == answers[1]
    assert outbox.flush(timeout=30)
    # The mail to the known address did go out, from the outbox thread; none to the unknown one.
    assert [to for _, to in SENDS] == [["known@example.com"]]
    assert _on_request_thread() == 0


@pytest.mark.django_db(transaction=True)
def test_registration_mail_leaves_the_request_too(anon_client, background_mail):
    response = anon_client.post(
        "/api/auth/register/",
        {"username": "ada", "email": "ada@example.com", "password": "a-long-Passphrase-42"},
        format="json",
    )
    assert response.status_code == 201
    assert _on_request_thread() == 0
    assert outbox.flush(timeout=30)
    assert [to for _, to in SENDS] == [["ada@example.com"]]


def test_inline_sending_when_background_is_off(settings):
    settings.EMAIL_SEND_IN_BACKGROUND = False
    calls: list[int] = []
    outbox.submit(lambda: calls.append(threading.get_ident()))
    assert calls == [threading.get_ident()]


def test_a_failing_mail_does_not_stop_the_outbox(settings):
    settings.EMAIL_SEND_IN_BACKGROUND = True
    sent: list[str] = []

    def broken() -> None:
        raise OSError("SMTP down")

    outbox.submit(broken)
    outbox.submit(sent.append, "next")
    assert outbox.flush(timeout=30)
    assert sent == ["next"]
