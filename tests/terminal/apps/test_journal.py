"""The durable journal: order, recovery after a torn write, the upload cursor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.apps.journal import CURSOR_FILE, JOURNAL_FILE, Journal, JournalError


def test_records_survive_reopen_in_order(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        first = journal.append({"tap": "a"})
        second = journal.append({"tap": "b"})
    assert (first["seq"], second["seq"]) == (1, 2)
    with Journal(tmp_path) as journal:
        assert [r["tap"] for r in journal.records()] == ["a", "b"]
        assert journal.append({"tap": "c"})["seq"] == 3


def test_torn_last_line_is_cut_and_the_next_append_reuses_its_number(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append({"tap": "a"})
    with open(tmp_path / JOURNAL_FILE, "ab") as handle:
        handle.write(b'{"seq":2,"tap":"b')  # power cut inside the second write
    with Journal(tmp_path) as journal:
        assert len(journal) == 1
        assert journal.append({"tap": "b"})["seq"] == 2
    lines = (tmp_path / JOURNAL_FILE).read_bytes().splitlines()
    assert [json.loads(line)["tap"] for line in lines] == ["a", "b"]


def test_a_corrupt_whole_line_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_bytes(b'{"seq":1}\nnot json\n')
    with pytest.raises(JournalError, match="line 2"):
        Journal(tmp_path)
    (tmp_path / JOURNAL_FILE).write_bytes(b'{"seq":1}\n{"seq":3}\n')
    with pytest.raises(JournalError, match="not record 2"):
        Journal(tmp_path)


def test_cursor_is_durable_and_bounds_pending(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        for n in range(5):
            journal.append({"n": n})
        assert [r["seq"] for r in journal.pending(limit=2)] == [1, 2]
        journal.acknowledge(3)
        with pytest.raises(ValueError, match="cannot acknowledge"):
            journal.acknowledge(2)  # the cursor never goes back
        with pytest.raises(ValueError, match="cannot acknowledge"):
            journal.acknowledge(6)  # nor past the end
    with Journal(tmp_path) as journal:
        assert journal.acknowledged == 3
        assert [r["n"] for r in journal.pending()] == [3, 4]
    assert json.loads((tmp_path / CURSOR_FILE).read_text()) == {"acknowledged": 3}


def test_a_cursor_outside_the_journal_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append({"n": 1})
    (tmp_path / CURSOR_FILE).write_text('{"acknowledged": 7}')
    with pytest.raises(JournalError, match="outside"):
        Journal(tmp_path)


def test_seq_is_the_journals_to_give(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal, pytest.raises(ValueError, match="seq"):
        journal.append({"seq": 9})
