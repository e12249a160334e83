"""chat.selectors.message_page: cursor paging by message id, scoped to the session's owner."""

from __future__ import annotations

import pytest

from chat.selectors import message_page
from tests.factories import ChatMessageFactory, ChatSessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_and_ids():
    session = ChatSessionFactory.create()
    ids = [ChatMessageFactory.create(session=session).pk for _ in range(7)]
    return session, ids


def page_of(session, user=None, **cursor):
    page = message_page(user=user or session.user, session=session, size=3, **cursor)
    return [m.pk for m in page.items], page.count, page.has_newer, page.has_older


def test_the_first_page_is_the_oldest_messages(session_and_ids):
    session, ids = session_and_ids
    assert page_of(session) == (ids[:3], 7, True, False)


def test_after_pages_forward_and_before_pages_backward(session_and_ids):
    session, ids = session_and_ids
    assert page_of(session, after=ids[2]) == (ids[3:6], 7, True, True)
    assert page_of(session, after=ids[5]) == (ids[6:], 7, False, True)
    assert page_of(session, before=ids[6]) == (ids[3:6], 7, True, True)
    assert page_of(session, before=ids[2]) == (ids[:2], 7, True, False)


def test_both_cursors_bound_a_window_and_give_its_newest_page(session_and_ids):
    session, ids = session_and_ids
    assert page_of(session, after=ids[0], before=ids[6]) == (ids[3:6], 7, True, True)
    assert page_of(session, after=ids[2], before=ids[5]) == (ids[3:5], 7, True, False)


def test_another_users_session_has_no_messages(session_and_ids):
    session, _ = session_and_ids
    assert page_of(session, user=UserFactory.create()) == ([], 0, False, False)
