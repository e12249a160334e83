"""The extractive answerer: grounded sentences only, valid citations, readable order, no duplicates,
the fallback sentence, follow-up questions, streaming, determinism."""

from __future__ import annotations

import re

import pytest

from rag.answering.extractive import NO_INFORMATION_ANSWER, ExtractiveGenerator, extractive_answer
from rag.ingestion.chunking import split_into_chunks
from rag.providers.base import AnswerRequest, ContextDocument, Generation, Turn

RESET = """If you forgot your password, open the login page and click "Forgot password". We send a reset link
to your email address; it expires after 30 minutes.

## Security

You can also call the endpoint directly: POST /api/auth/password/reset/ with your email address.
Passwords must be at least 12 characters long. We never send passwords by email."""
REFUND = """Refunds are issued within 14 days of receiving the returned item. The money goes back to the
original payment method.

Items must be unused and in their original packaging. Custom products cannot be refunded."""
WARRANTY = """Every device comes with a manufacturer guarantee. The warranty lasts 24 months from the delivery
date and covers manufacturing defects.

Accidental damage is not covered by the warranty."""


def context(number: int, title: str, text: str) -> ContextDocument:
    """A document as retrieval hands it over: overlapping chunk bodies joined by blank lines."""
    chunks = split_into_chunks(title=title, text=text, max_tokens=48)
    return ContextDocument(number=number, document_id=100 + number, title=title, text="\n\n".join(chunks), score=0.7)


DOCS = [context(1, "Password reset", RESET), context(2, "Refund policy", REFUND), context(3, "Warranty", WARRANTY)]
MARKED = re.compile(r"(.+?) \[(\d+)\](?: |$)")


def sentences_of(answer: str) -> list[tuple[str, int]]:
    pairs = [(text, int(number)) for text, number in MARKED.findall(answer)]
    assert " ".join(f"{text} [{number}]" for text, number in pairs) == answer  # nothing outside the pairs
    return pairs


def ask(question: str, documents=DOCS, history=()) -> str:
    return extractive_answer(AnswerRequest(question=question, documents=documents, history=history))


@pytest.mark.parametrize(
    "question",
    ["how do I reset my password", "how long do refunds take?", "is accidental damage covered?", "password email"],
)
def test_every_sentence_is_copied_from_the_document_it_cites(question):
    answer = ask(question)
    pairs = sentences_of(answer)
    assert pairs
    by_number = {doc.number: doc for doc in DOCS}
    for text, number in pairs:
        assert number in by_number
        assert text in by_number[number].text
        assert text != by_number[number].title


def test_answers_the_question_with_the_right_document():
    pairs = sentences_of(ask("how long do refunds take?"))
    assert pairs[0] == ("Refunds are issued within 14 days of receiving the returned item.", 2)
    assert {number for _, number in pairs} == {2}


def test_reset_answer_quotes_the_endpoint_and_leaves_headings_out():
    answer = ask("how do I reset my password")
    assert "/api/auth/password/reset/" in answer and "[1]" in answer
    assert "Security" not in answer and "Password reset [1]" not in answer


def test_overlapping_chunks_do_not_repeat_sentences():
    pairs = sentences_of(ask("reset password email link"))
    texts = [text for text, _ in pairs]
    assert len(texts) == len(set(texts))
    assert 1 < len(texts) <= 4


def test_reading_order_groups_by_document_then_position():
    pairs = sentences_of(ask("refund warranty covered unused items damage"))
    numbers = [number for _, number in pairs]
    assert numbers == sorted(numbers) and set(numbers) == {2, 3}
    for number in set(numbers):
        texts = [text for text, n in pairs if n == number]
        document = next(doc for doc in DOCS if doc.number == number).text
        assert [document.index(text) for text in texts] == sorted(document.index(text) for text in texts)


def test_max_sentences_is_respected():
    request = AnswerRequest("password reset email link", DOCS)
    assert len(sentences_of(extractive_answer(request, max_sentences=4))) > 1
    assert len(sentences_of(extractive_answer(request, max_sentences=1))) == 1


def test_fallback_when_nothing_matches_or_nothing_retrieved():
    assert ask("best temperature for baking sourdough bread") == NO_INFORMATION_ANSWER
    assert ask("how do I reset my password", documents=[]) == NO_INFORMATION_ANSWER
    assert ask("the and of how") == NO_INFORMATION_ANSWER  # no content words at all


def test_short_follow_up_uses_the_previous_user_turn():
    history = (Turn("user", "what warranty do devices have?"), Turn("assistant", "Devices have a warranty. [3]"))
    pairs = sentences_of(ask("and how long does it last?", history=history))
    assert pairs[0] == ("The warranty lasts 24 months from the delivery date and covers manufacturing defects.", 3)
    # "long" in "how long" asks for a duration; it must not pull in "12 characters long".
    assert all("characters long" not in text for text, _ in pairs)


def test_deterministic():
    request = AnswerRequest("refund warranty password", DOCS)
    assert len({extractive_answer(request) for _ in range(5)}) == 1


def test_generator_protocol_and_stream():
    generator = ExtractiveGenerator()
    request = AnswerRequest("how do I reset my password", DOCS)
    generation = generator.generate(request)
    assert (generator.name, generator.model) == ("extractive", "extractive-v1")
    assert generation == Generation(text=extractive_answer(request), model="extractive-v1", usage=None)
    deltas = list(generator.stream(request))
    assert len(deltas) > 2 and all(d.usage is None for d in deltas)
    assert "".join(d.text for d in deltas) == generation.text
    assert "".join(d.text for d in generator.stream(AnswerRequest("anything", []))) == NO_INFORMATION_ANSWER


def test_wrapped_lines_are_quoted_as_whole_sentences_and_code_and_tables_are_not():
    text = (
        "Exports are available as JSON or Markdown, and each export\n"
        "includes the sources of every answer in the session.\n\n"
        "```bash\ncurl https://chat.example.com/api/chat/sessions/1/export/?format=md\n```\n\n"
        "| export format | what you get in the export file |\n|---|---|\n"
    )
    document = ContextDocument(number=1, document_id=9, title="Export a session", text=text, score=0.8)
    answer = extractive_answer(AnswerRequest("which export formats are available?", [document]))
    expected = "Exports are available as JSON or Markdown, and each export includes the sources of every answer"
    assert answer.startswith(expected) and answer.endswith("[1]")
    assert "curl" not in answer and "|" not in answer
