"""The answer lock of an idempotent message: one answer at a time per key, released only by its
holder (a stream that outlives the TTL cannot delete the lock a retry took after it expired)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chat.services import _AnswerLock
from utils.exceptions import Conflict
from utils.redis import get_redis


def received(record_pk: int) -> Any:
    return SimpleNamespace(record=SimpleNamespace(pk=record_pk))


def test_a_second_answer_of_the_same_key_waits():
    with _AnswerLock(received(41)):
        with pytest.raises(Conflict) as caught, _AnswerLock(received(41)):
            pass
        assert caught.value.code == "idempotency_in_progress"
    with _AnswerLock(received(41)):  # released: the retry may answer now
        pass


def test_an_expired_holder_does_not_release_the_retrys_lock():
    redis = get_redis()
    slow = _AnswerLock(received(42))
    slow.__enter__()
    redis.delete(slow.key)  # the TTL passed while the slow stream was still being answered
    retry = _AnswerLock(received(42))
    retry.__enter__()
    slow.__exit__(None, None, None)
    assert redis.exists(retry.key), "the slow answer deleted the retry's lock"
    with pytest.raises(Conflict), _AnswerLock(received(42)):
        pass
    retry.__exit__(None, None, None)
    assert not redis.exists(retry.key)


def test_without_an_idempotency_key_there_is_no_lock():
    with _AnswerLock(received_without_key()), _AnswerLock(received_without_key()):
        pass


def received_without_key() -> Any:
    return SimpleNamespace(record=None)
