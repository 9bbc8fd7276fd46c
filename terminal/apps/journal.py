"""A durable, append-only journal of an application's events, with an upload cursor.

The store-and-forward log of a gate or a till: a record is on disk (written and
``fsync``'d) before :meth:`Journal.append` returns, so an application that opens the
gate or prints the receipt only after ``append`` loses no event to a power cut.
Records are JSON objects, one per line, in ``journal.jsonl``; each carries its
sequence number ``seq`` (1, 2, ...). The upload cursor (the highest ``seq`` the
receiver has acknowledged) lives in ``cursor.json``, replaced atomically (write,
``fsync``, ``rename``, ``fsync`` of the folder), so a restart re-sends only what was
not acknowledged; the receiver makes a re-sent record harmless by its id.

A power cut in the middle of a write leaves at most a torn last line: it was never
acknowledged to anybody (``append`` had not returned), so opening the journal cuts
it off. Anything else that does not parse is corruption and raises
:class:`JournalError`. The journal holds what the application gives it: callers keep
PANs and track 2 out of it, or seal them first.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from terminal.apps.errors import AppError

__all__ = ["Journal", "JournalError", "fsync_dir"]

JOURNAL_FILE: Final = "journal.jsonl"
CURSOR_FILE: Final = "cursor.json"


class JournalError(AppError):
    """The journal on disk is not one this module wrote (corrupt or foreign)."""


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX: fsync the folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The journal in ``directory`` (created if missing); thread-safe.

    ``durable=False`` skips the ``fsync`` calls: for tests of the layers above and
    for benchmarks that measure the cost of durability side by side, never for a
    gate or a till.
    """

    def __init__(self, directory: Path | str, *, durable: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self._lock = threading.Lock()
        self._path = self.directory / JOURNAL_FILE
        self._records: list[dict[str, Any]] = list(self._recover())
        self._cursor = self._read_cursor()
        self._file = open(self._path, "ab")  # noqa: SIM115 (kept open for appends)

    def __repr__(self) -> str:
        return (
            f"Journal({str(self.directory)!r}, {len(self._records)} records, "
            f"acknowledged up to {self._cursor})"
        )

    def close(self) -> None:
        """Close the journal file."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading back ----------------------------------------------------------------

    def _recover(self) -> Iterator[dict[str, Any]]:
        """Parse the journal, cutting off a torn last line (module docstring)."""
        if not self._path.exists():
            return
        data = self._path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        good = len(data) - len(tail)
        for number, line in enumerate(complete, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                # A line ending in its newline was written whole: not a tear.
                raise JournalError(f"{self._path}: line {number} is not JSON") from None
            if not isinstance(record, dict) or record.get("seq") != number:
                raise JournalError(f"{self._path}: line {number} is not record {number}")
            yield record
        if tail:
            # A torn last write: never acknowledged, so dropped.
            with open(self._path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())

    def _read_cursor(self) -> int:
        path = self.directory / CURSOR_FILE
        if not path.exists():
            return 0
        try:
            value = json.loads(path.read_text())["acknowledged"]
        except (ValueError, KeyError, TypeError):
            raise JournalError(f"{path} is not a journal cursor") from None
        if not isinstance(value, int) or not 0 <= value <= len(self._records):
            raise JournalError(f"{path}: cursor {value!r} is outside the journal")
        return value

    def __len__(self) -> int:
        return len(self._records)

    @property
    def acknowledged(self) -> int:
        """The highest sequence number the receiver has acknowledged (0: none)."""
        return self._cursor

    def records(self, after: int = 0) -> list[dict[str, Any]]:
        """The records with ``seq`` greater than ``after``, oldest first."""
        with self._lock:
            return [dict(r) for r in self._records[after:]]

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The records not yet acknowledged (at most ``limit``), oldest first."""
        with self._lock:
            end = None if limit is None else self._cursor + limit
            return [dict(r) for r in self._records[self._cursor : end]]

    # -- writing -----------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``record`` durably and return it with its ``seq``.

        Raises :class:`ValueError` for a record JSON cannot carry, and ``OSError``
        when the disk refuses: the caller must then not act on the event (keep the
        gate closed), because it is not recorded.
        """
        if "seq" in record:
            raise ValueError("'seq' is given by the journal")
        with self._lock:
            stored = {"seq": len(self._records) + 1, **record}
            line = json.dumps(stored, separators=(",", ":"), sort_keys=True).encode() + b"\n"
            self._file.write(line)
            self._file.flush()
            if self.durable:
                os.fsync(self._file.fileno())
            self._records.append(stored)
            return dict(stored)

    def acknowledge(self, seq: int) -> None:
        """Record that the receiver holds every record up to ``seq`` (durably)."""
        with self._lock:
            if not self._cursor <= seq <= len(self._records):
                raise ValueError(
                    f"cannot acknowledge {seq}: cursor {self._cursor}, {len(self._records)} records"
                )
            if seq == self._cursor:
                return
            path = self.directory / CURSOR_FILE
            temporary = path.with_suffix(".tmp")
            with open(temporary, "w") as handle:
                json.dump({"acknowledged": seq}, handle)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
            os.replace(temporary, path)
            if self.durable:
                fsync_dir(self.directory)
            self._cursor = seq
