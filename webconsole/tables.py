"""The columns of the consoles' tables, which the template ``kit/tables.html`` draws:
``tables.table(columns, rows)`` (a whole table, or a line saying there is nothing),
``tables.head(columns)`` and ``tables.row(columns, row, fresh)`` (a live list's
rows: ``fresh`` marks them new). A row is a mapping (an object's JSON); a column
names the field it shows and how."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "Column"]

#: How a column shows its value: as text, as code (ids, masked PANs), as a link to
#: ``href`` followed by the value, as a status badge, as an amount in minor units (with
#: the row's ``currency`` if it has one), as a number (right-aligned), as a time (ISO
#: 8601, to the second).
KINDS = ("text", "code", "link", "status", "money", "num", "time")


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its title, the field of the row it shows, how (:data:`KINDS`), and for
    a link the path its value is appended to."""

    title: str
    key: str
    kind: str = "text"
    href: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a column is one of {', '.join(KINDS)}, not {self.kind!r}")
