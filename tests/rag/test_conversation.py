"""An explicit change of topic in a question (pure, no Django)."""

from __future__ import annotations

import pytest

from rag.conversation import new_topic


@pytest.mark.parametrize(
    ("question", "rest"),
    [
        ("totally unrelated: what's the support email?", "what's the support email?"),
        ("Unrelated, but can I bring a dog?", "can I bring a dog?"),
        ("unrelated but can I bring a dog?", "can I bring a dog?"),
        ("ok, different question: how do I log in?", "how do I log in?"),
        ("Different thing - when are trees collected?", "when are trees collected?"),
        ("On another note: where is the office?", "where is the office?"),
        ("Changing the subject, how do I pay?", "how do I pay?"),
        ("off-topic: who made you?", "who made you?"),
        ("Something else entirely: is there parking?", "is there parking?"),
        ("new question. How long are chats kept?", "How long are chats kept?"),
    ],
)
def test_a_cue_announces_a_new_topic_and_is_removed(question, rest):
    assert new_topic(question) == rest


@pytest.mark.parametrize(
    "question",
    [
        "and how long is it valid?",
        "also, another question: how long?",  # "another question" opens follow-ups too
        "one more thing: which formats?",
        "something else?",  # a cue with no question after it
        "Is this unrelated to my plan?",
        "what about something else: the price",
        "",
    ],
)
def test_anything_else_is_not_a_new_topic(question):
    assert new_topic(question) is None
