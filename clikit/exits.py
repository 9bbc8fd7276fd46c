"""The exit codes of tapstack's four command-line tools (``terminal``, ``issuer``,
``card``, ``backoffice``): one table, so that a script reads a failure the same way
from each (clig.dev: non-zero exit on failure, distinct codes for distinct causes).

0 is success and 2 is click's own usage error; the others name what went wrong, each
with one sentence that every tool's ``--help`` prints under "Exit codes" and the README
repeats (a test compares them). Each tool's errors carry one of these; with ``--json``
a failure is also ``{"error": {"code": NAME, "message": ..., "exit": N}}`` on standard
output (:mod:`clikit.errors`), ``NAME`` being the member's :attr:`Exit.code_name`.
"""

from __future__ import annotations

import enum

__all__ = ["Exit", "markdown_table", "rows"]


class Exit(enum.IntEnum):
    """An exit code of the tools (module docstring); :attr:`meaning` says it in a
    sentence."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    DECLINED = 5
    REFUSED = 6
    UNREACHABLE = 7
    CARD = 8
    READER = 9
    CONFIG = 10
    STORAGE = 11

    @property
    def code_name(self) -> str:
        """The name of the code in a JSON error (``not_found``)."""
        return self.name.lower()

    @property
    def meaning(self) -> str:
        """One sentence: when a tool exits with this code."""
        return _MEANINGS[self]


_MEANINGS: dict[Exit, str] = {
    Exit.OK: "Done: the command did what was asked (a payment: approved).",
    Exit.INTERNAL: "An unexpected failure of the tool itself: please report it with the "
    "command that caused it.",
    Exit.USAGE: "A bad option, argument or value: the message names it, --help shows the "
    "right form.",
    Exit.NOT_FOUND: "No such account, card, token, terminal, transaction, key or sale.",
    Exit.CONFLICT: "It exists already, its state forbids the change, or two records "
    "disagree (an address in use, a close that does not match).",
    Exit.DECLINED: "The payment was declined: by the issuer, or offline by the card or "
    "the terminal.",
    Exit.REFUSED: "Refused: a credential, a certificate, the key store or a permission.",
    Exit.UNREACHABLE: "The issuer or another service did not answer: nothing was charged "
    "(a payment under way is reversed).",
    Exit.CARD: "The card was removed, did not answer, did not come or could not complete: "
    "present it again or try another card.",
    Exit.READER: "No reader, or the reader failed or is busy.",
    Exit.CONFIG: "A home, configuration or required file is missing or unusable.",
    Exit.STORAGE: "The database, a journal or a file could not be read or written.",
}


def rows() -> list[tuple[str, str]]:
    """The table as (code and name, meaning) rows, for ``--help``."""
    return [(f"{code.value:>2} {code.code_name}", code.meaning) for code in Exit]


def markdown_table() -> str:
    """The table as README shows it under "Exit codes"."""
    lines = ["| Code | Name | Meaning |", "|---:|---|---|"]
    lines += [f"| {code.value} | `{code.code_name}` | {code.meaning} |" for code in Exit]
    return "\n".join(lines)
