"""Quotable units of a chunk: a lead sentence never stands alone, a small table reads whole."""

from __future__ import annotations

from rag.ingestion.units import ROW, TABLE, chunk_units


def test_a_sentence_ending_in_a_colon_is_never_a_unit_without_what_it_introduces():
    chunk = "Export \u203a Download\n\nChoose a format with the format parameter:\n```\ncurl -o s.json x\n```"
    assert [u.display for u in chunk_units(chunk)] == []


def test_a_small_table_after_a_lead_reads_whole_and_row_by_row():
    chunk = "Plans\n\nThe plans are:\n| plan | price |\n| Free | 0 EUR |\n| Team | 29 EUR |"
    units = chunk_units(chunk)
    whole = [u for u in units if u.kind == TABLE]
    assert [u.display for u in whole] == ["The plans are:\nplan: Free; price: 0 EUR.\nplan: Team; price: 29 EUR."]
    assert whole[0].quote in chunk
    assert [u.display for u in units if u.kind == ROW] == ["plan: Free; price: 0 EUR.", "plan: Team; price: 29 EUR."]
