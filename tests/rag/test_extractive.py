"""The extractive answerer on small fixtures: it quotes the passage that answers (a lead sentence
with its list, numbered steps, an FAQ answer, a table row with its header), cites it, leaves out
weakly related documents, abstains when the evidence is weak, and streams what it generates."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from rag.ingestion.chunking import split_into_chunks
from rag.ingestion.units import chunk_units
from rag.providers.extractive import (
    _ANSWER_TYPES,
    PART_WITHIN,
    ExtractiveGenerator,
    _candidates,
    _counts,
    _with_parts,
    extractive_result,
    question_parts,
)
from rag.providers.local_embedder import LocalEmbedder, count_tokens
from rag.services.retrieval import combine_with_previous
from rag.types import LOW_SUPPORT, NO_INFORMATION_ANSWER, NO_MATCH, AnswerRequest, ContextDocument, ContextPassage, Turn

SESSIONS = """# Sessions and devices

Each device you log in from gets its own refresh token. Logging out on one device ends only that
session. Other devices are not affected and stay logged in.

## Log out everywhere

To sign out of all your devices at once, call POST /api/auth/logout-all/. It blacklists every
refresh token of your account, so each device has to log in again.
"""
EXPORT = """# Export a session

You can download a whole conversation. The export is available in two formats:

- JSON, with every message and its sources
- Markdown, for reading and sharing

Exports include the sources of every answer.
"""
RESET = """# Reset your password

Follow these steps to choose a new password:

1. Open the login page and click "Forgot password".
2. Enter the email address of your account.
3. Open the link in the email we send you and type the new password.

The link expires after 30 minutes.
"""
PLANS = """# Plans and prices

| plan | price per month | messages per day |
|---|---|---|
| Free | 0 EUR | 50 |
| Team | 29 EUR | 2000 |
| Enterprise | on request | unlimited |
"""
FAQ = """# Billing FAQ

## Can I pay by bank transfer?

Yes. Annual Team plans can be paid by bank transfer; monthly plans are paid by card.

## Do you offer refunds?

Unused months of an annual plan are refunded within 14 days of cancelling.
"""
GARDEN = """# Community garden

The garden is open from 8 am to 8 pm. Members pay a yearly fee of 35 EUR. Tools are kept in the shed.
"""


@lru_cache(maxsize=1)
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


def document(number: int, title: str, text: str, question_vector: np.ndarray) -> ContextDocument:
    """A document as retrieval hands it over: its chunks with their similarity and unit vectors."""
    passages = []
    for index, chunk in enumerate(split_into_chunks(title=title, text=text, count_tokens=count_tokens)):
        units = [u.embed_text for u in chunk_units(chunk)]
        vectors = embedder().embed_documents(units) if units else None
        similarity = float(embedder().embed_query(chunk) @ question_vector)
        passages.append(ContextPassage(chunk_id=number * 100 + index, text=chunk, index=index,
                                       similarity=similarity, unit_vectors=vectors))  # fmt: skip
    best = max(p.similarity for p in passages)
    return ContextDocument(number, number * 10, title, text, best, passages=passages, similarity=best)


def ask(question: str, *docs: tuple[str, str], history: tuple[str, ...] = ()):
    vector = embedder().embed_query(question)
    if history:  # as retrieval hands a short follow-up over: read with the previous question
        previous = embedder().embed_query(history[-1])
        vector = combine_with_previous(vector, previous, len(question.split()), len(history[-1].split()))
    documents = [document(n, title, text, vector) for n, (title, text) in enumerate(docs, start=1)]
    turns = [Turn(role="user", content=h) for h in history]
    request = AnswerRequest(question=question, documents=documents, history=turns, question_vector=vector)
    return extractive_result(request), documents


def quotes_are_in_their_chunks(result, documents) -> None:
    chunks = {p.chunk_id: p.text for d in documents for p in d.passages}
    assert result.citations
    for citation in result.citations:
        assert citation.quote in chunks[citation.chunk_id]


def test_log_out_everywhere_quotes_the_logout_all_passage_not_its_opposite():
    result, documents = ask("How do I log out of all my devices?", ("Sessions and devices", SESSIONS))
    assert "logout-all" in result.text
    assert "not affected" not in result.text and "only that session" not in result.text
    quotes_are_in_their_chunks(result, documents)


def test_a_lead_sentence_ending_in_a_colon_keeps_its_list():
    result, documents = ask("which formats can I export to?", ("Export a session", EXPORT))
    assert "available in two formats:\n- JSON, with every message and its sources\n- Markdown" in result.text
    quotes_are_in_their_chunks(result, documents)


def test_numbered_steps_stay_together_in_order():
    result, _ = ask("how do I reset my password?", ("Reset your password", RESET))
    first, second, third = (result.text.index(f"{n}. ") for n in (1, 2, 3))
    assert first < second < third
    assert "Follow these steps" in result.text


def test_an_faq_question_leads_to_its_answer():
    result, _ = ask("can I pay with a bank transfer?", ("Billing FAQ", FAQ))
    assert result.text.startswith("Yes. Annual Team plans can be paid by bank transfer")
    assert "refunded" not in result.text


def test_a_table_row_reads_with_its_header():
    result, documents = ask("how much does the Team plan cost per month?", ("Plans and prices", PLANS))
    assert "plan: Team; price per month: 29 EUR" in result.text
    assert any(c.quote == "| Team | 29 EUR | 2000 |" for c in result.citations)
    quotes_are_in_their_chunks(result, documents)


def test_no_padding_from_a_document_that_merely_shares_a_word():
    result, _ = ask("how much does the Team plan cost per month?", ("Plans and prices", PLANS), ("Garden", GARDEN))
    assert {c.n for c in result.citations} == {1}


def test_an_unanswerable_question_abstains_with_no_citations():
    result, _ = ask("what is the weather like in Lisbon tomorrow?", ("Export a session", EXPORT), ("Garden", GARDEN))
    assert (result.text, result.citations, result.abstain_reason) == (NO_INFORMATION_ANSWER, (), LOW_SUPPORT)


def test_nothing_retrieved_is_no_match():
    result = extractive_result(AnswerRequest(question="anything", documents=[]))
    assert (result.text, result.abstain_reason) == (NO_INFORMATION_ANSWER, NO_MATCH)


def test_a_short_follow_up_reads_with_the_previous_question():
    result, _ = ask(
        "and how long is it valid?",
        ("Reset your password", RESET),
        ("Export a session", EXPORT),
        history=("how do I reset my password?",),
    )
    assert "expires after 30 minutes" in result.text


def test_every_marker_has_a_citation_and_markers_follow_their_quotes():
    result, documents = ask("which formats can I export to?", ("Export a session", EXPORT), ("Garden", GARDEN))
    quotes_are_in_their_chunks(result, documents)
    assert result.text.count("[") == len(result.citations)


@pytest.mark.parametrize("question", ["which formats can I export to?", "what is the weather in Lisbon?"])
def test_generator_streams_what_it_generates_and_is_deterministic(question):
    _, documents = ask(question, ("Export a session", EXPORT))
    request = AnswerRequest(question, documents, question_vector=embedder().embed_query(question))
    generator = ExtractiveGenerator()
    generation = generator.generate(request)
    assert "".join(d.text for d in generator.stream(request)) == generation.text
    assert generator.generate(request) == generation


CARDS = """# Get a library card

## Who can join

Everyone who lives, works or studies in Northbrook gets a library card at no charge. Other people buy
a card for 30 EUR a year.

## Lost cards

A replacement card costs 3 EUR at any branch.
"""
DENTAL = """# Dental care

## Scale and polish

A scale and polish under general anaesthetic starts at 220 EUR and includes dental X-rays.
"""
SURGERY = """# Preparing for surgery

## Preparing your pet the night before

Do not feed your dog after 22:00 on the evening before the operation. Water is fine until the morning.
"""


def test_a_question_about_cost_without_how_much_prefers_the_passage_with_a_price():
    result, _ = ask("What does the Team plan cost?", ("Plans and prices", PLANS))
    assert "29 EUR" in result.text


def test_the_value_asked_for_is_read_from_the_sentence_after_the_best_match():
    result, documents = ask("How much is a library card for someone who doesn't live in Northbrook?", ("Cards", CARDS))
    assert "30 EUR a year" in result.text
    quotes_are_in_their_chunks(result, documents)


def test_a_short_follow_up_asks_for_what_the_previous_question_asked_for():
    result, _ = ask("and a replacement card?", ("Cards", CARDS), history=("How much is a library card?",))
    assert "3 EUR" in result.text


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("My dog needs a scale and polish. How do I prepare him, and what will it cost?",
         ["My dog needs a scale and polish.", "How do I prepare him", "what will it cost?"]),
        ("Which branches have study rooms, and until when is Oakfield open on Saturdays?",
         ["Which branches have study rooms", "until when is Oakfield open on Saturdays?"]),
        ("How do I log out of all my devices?", ["How do I log out of all my devices?"]),
        ("What is black and white printing?", ["What is black and white printing?"]),
    ],
)  # fmt: skip
def test_a_compound_question_splits_into_its_questions(question, parts):
    assert question_parts(question) == parts


def test_each_part_of_a_compound_question_is_answered_from_its_own_document():
    result, documents = ask(
        "How do I prepare my dog for his operation the night before, and what does a scale and polish cost?",
        ("Dental care", DENTAL),
        ("Preparing for surgery", SURGERY),
    )
    assert "220 EUR" in result.text and "22:00" in result.text
    assert {c.n for c in result.citations} == {1, 2}
    quotes_are_in_their_chunks(result, documents)


CONTACT = """# Contact support

## Phone

Call us on +33 1 23 45 67 89, every day from 07:00 to 22:00. Calls cost the price of a local call.

## Email and post

Email us at help@example.org; we answer within 2 business days. Our postal address is on the invoice.
"""


def test_asking_for_the_email_address_quotes_the_address_not_the_postal_one():
    result, _ = ask(
        "and what is the email address for support?",
        ("Contact", CONTACT),
        history=("What is the phone number of support?",),
    )
    assert result.text.startswith("Email us at help@example.org")


def test_a_follow_up_asking_for_the_export_formats_lists_them():
    result, _ = ask(
        "which formats?", ("Export a session", EXPORT), ("Sessions", SESSIONS), history=("How do I export a session?",)
    )
    assert "- JSON" in result.text and "- Markdown" in result.text


@pytest.mark.parametrize(
    ("text", "counts"),
    [("up to 4 bikes", True), ("three guests", True), ("open 10:00 to 13:00", False), ("costs €25", False),
     ("10% off", False), ("at 9 am", False)],
)  # fmt: skip
def test_how_many_is_answered_by_a_count_not_by_a_time_or_a_price(text, counts):
    assert bool(_ANSWER_TYPES["many"].search(text)) is counts


@pytest.mark.parametrize(
    ("text", "price"),
    [("Reservations are free.", True), ("It costs €55.", True), ("free for residents", True),
     ("8 free parking spaces", True), ("Pick a free time slot and confirm.", False),
     ("Choose any free seat.", False)],
)  # fmt: skip
def test_free_is_a_price_but_a_free_slot_is_not(text, price):
    assert bool(_ANSWER_TYPES["much"].search(text)) is price


HOLDS = """# Reserve an item

## Suspend your holds

Going away for a while? Suspend your holds for up to 90 days in your account settings. You keep your
place in the queue, but items go to the next reader until you are back.

## Collect an item

Reserved items wait on the hold shelf for 7 days at the branch you chose.
"""


def test_a_best_sentence_brings_the_rest_of_its_short_section():
    # The paraphrase matches "You keep your place in the queue"; the fact is the sentence before.
    result, documents = ask("Can I keep my place in the reservation queue while I'm travelling?", ("Holds", HOLDS))
    assert "90 days" in result.text and "keep your" in result.text
    assert "hold shelf" not in result.text  # another section is not context
    quotes_are_in_their_chunks(result, documents)


def test_a_question_for_a_price_abstains_when_no_passage_states_one():
    result, _ = ask("How much does the Garden Pro membership cost?", ("Community garden", GARDEN_NO_PRICE))
    assert result.abstain_reason == LOW_SUPPORT and not result.citations


def test_a_yes_no_question_about_paying_is_answered_without_a_price():
    result, _ = ask("Do I have to pay to use the garden tools?", ("Community garden", GARDEN_NO_PRICE))
    assert result.abstain_reason is None and "shed" in result.text


GARDEN_NO_PRICE = """# Community garden

Garden Pro members can use the tools in the shed whenever the garden is open; there is nothing to pay for
using them. The cost of a Garden Pro membership is decided each spring by the members' assembly.
"""


GUESTS = """# Ride with friends

You can unlock bikes for other people from your own account, for example when friends visit the city.

## Steps

1. Unlock your own bike first.
2. Tap Add a guest bike and scan the second bike's code.
3. Repeat for each guest, up to 3 guests.
"""


def test_a_how_to_question_answered_by_a_sentence_gets_the_steps_of_its_document():
    result, documents = ask("How can I unlock bikes for my friends on my account?", ("Ride with friends", GUESTS))
    assert "Add a guest bike" in result.text
    quotes_are_in_their_chunks(result, documents)


def test_the_answer_to_a_part_of_a_compound_question_brings_the_rest_of_its_short_section():
    vector = embedder().embed_query("Can I keep my place in the queue?")
    candidates = _candidates([document(1, "Holds", HOLDS, vector)], vector)
    keep = next(c for c in candidates if c.unit.display.startswith("You keep"))
    chosen = _with_parts([], [[(keep, 1.0)]], threshold=0.5, max_units=3, candidates=candidates)
    assert keep in chosen and any("90 days" in c.unit.display for c in chosen)
    assert chosen[-1] is keep  # in reading order


BRANCHES = """# Branches

Northbrook Public Library has 6 branches. The Central Library is the largest and is open 7 days a week.
You can have up to 15 active holds at a time.
"""


def test_how_many_is_answered_only_by_a_number_of_what_it_counts():
    answered, _ = ask("How many holds can I have at once?", ("Branches", BRANCHES))
    assert "15 active holds" in answered.text
    refused, _ = ask("How many books does the Central Library hold?", ("Branches", BRANCHES))
    assert refused.abstain_reason == LOW_SUPPORT and not refused.citations


@pytest.mark.parametrize(
    ("text", "noun", "counts"),
    [
        ("You can have up to 15 active holds at a time.", "holds", True),
        ("card: adult; holds: 15", "holds", True),
        ("Each guest gets two bikes.", "bikes", True),
        ("Northbrook Public Library has 6 branches.", "books", False),
        ("Open 7 days a week; books can be returned at any branch.", "books", False),
    ],
)
def test_a_count_is_a_number_near_what_it_counts(text, noun, counts):
    assert _counts(text, noun) is counts


def test_a_part_whose_best_unit_answers_another_part_brings_its_next_best_if_close():
    vector = embedder().embed_query("Where do reserved items wait?")
    candidates = _candidates([document(1, "Holds", HOLDS, vector)], vector)
    shelf = next(c for c in candidates if "hold shelf" in c.unit.display)
    keep = next(c for c in candidates if c.unit.display.startswith("You keep"))
    close = [[(shelf, 1.0)], [(shelf, 0.95), (keep, 0.9)]]
    assert keep in _with_parts([], close, threshold=0.5, max_units=3, candidates=candidates)
    far = [[(shelf, 1.0)], [(shelf, 0.95), (keep, 0.95 - PART_WITHIN - 0.01)]]
    assert keep not in _with_parts([], far, threshold=0.5, max_units=3, candidates=candidates)


LIBRARY_PRINTING = """# Printing at the library

Black and white printing costs 0.10 EUR per A4 page. Colour printing costs 0.50 EUR per A4 page.
An A3 page costs twice the A4 price.
"""
COPY_SHOP = """# Copy shop partners

Our partner copy shop prints posters. An A3 page there costs 3 EUR, and A2 posters cost 8 EUR.
"""
PASSWORDS = """# Reset your password

If you forgot your password, choose "Forgot password" on the login page and follow the link we email you.
"""


def ask_in_chat(question: str, previous_question: str, previous_answer: str, *docs: tuple[str, str]):
    """As the chat asks: the history holds the previous question and the answer it got."""
    vector = embedder().embed_query(question)
    documents = [document(n, title, text, vector) for n, (title, text) in enumerate(docs, start=1)]
    turns = [Turn(role="user", content=previous_question), Turn(role="assistant", content=previous_answer)]
    return extractive_result(
        AnswerRequest(question=question, documents=documents, history=turns, question_vector=vector)
    )


def test_a_short_follow_up_prefers_the_document_the_previous_answer_quoted():
    previous = "Colour printing costs 0.50 EUR per A4 page. [1]"
    result = ask_in_chat(
        "and for A3?",
        "How much is colour printing?",
        previous,
        ("Copy shop", COPY_SHOP),
        ("Printing", LIBRARY_PRINTING),
    )
    assert "twice the A4 price" in result.text and {c.n for c in result.citations} == {2}


def test_a_short_question_on_another_topic_is_not_held_to_the_previous_answer():
    previous = "Colour printing costs 0.50 EUR per A4 page. [1]"
    result = ask_in_chat(
        "forgot my password",
        "How much is colour printing?",
        previous,
        ("Printing", LIBRARY_PRINTING),
        ("Passwords", PASSWORDS),
    )
    assert "Forgot password" in result.text and {c.n for c in result.citations} == {2}


def test_a_question_announcing_a_new_topic_is_answered_as_if_asked_first():
    # After "unrelated:" a short question owes nothing to the conversation (retrieval hands over its
    # own vector, not one read with the previous question), and its cue is not part of the question.
    docs = (("Reset your password", RESET), ("Export a session", EXPORT))
    vector = embedder().embed_query("which export formats?")
    documents = [document(n, title, text, vector) for n, (title, text) in enumerate(docs, start=1)]
    history = [Turn(role="user", content="how do I reset my password?")]

    def answer(question: str, turns: list[Turn]):
        return extractive_result(
            AnswerRequest(question=question, documents=documents, history=turns, question_vector=vector)
        )

    switched, alone = answer("Totally unrelated: which export formats?", history), answer("which export formats?", [])
    assert (switched.text, switched.citations) == (alone.text, alone.citations)
    assert "Markdown" in alone.text
