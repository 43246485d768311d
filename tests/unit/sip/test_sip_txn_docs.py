"""docs/sip-transactions.md shows the very tables the state machines run."""

from __future__ import annotations

from pathlib import Path

from ivoz.sip import dialog
from ivoz.sip.transaction import TABLES, render_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "sip-transactions.md"


def test_transaction_tables_are_documented() -> None:
    text = DOC.read_text()
    for title, table in TABLES.items():
        assert f"### The {title} transaction" in text
        assert render_table(table) in text, f"docs table for {title} is out of date"


def test_dialog_table_is_documented() -> None:
    assert dialog.render_table() in DOC.read_text()
