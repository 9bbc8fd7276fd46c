"""The ``terminal`` command: a click group (``terminal --help``).

Every command lives in its own module of :mod:`terminal.commands` and is imported only
when it runs (:data:`LAZY_COMMANDS`): ``readers`` and ``watch``
(:mod:`~terminal.commands.readers`), ``reader feedback`` (:mod:`~terminal.commands.reader`),
``read`` and ``pay`` (:mod:`~terminal.commands.tap`),
``retail``, ``gate transit|parking``, ``entry-point`` and ``csr``
(:mod:`~terminal.commands.csr`). ``terminal --help`` lists them from the short help
kept beside each name, importing none of them. Failures are
:class:`clikit.errors.ToolFailure` subclasses (:mod:`terminal.commands.common`) with the
exit codes all four tools share (:mod:`clikit.exits`, listed by ``terminal --help``):
a message that says what to do next, never a traceback, and with ``--json`` also the
JSON error object on standard output. Data go to standard output, messages to
standard error.
"""

from __future__ import annotations

import click

from clikit.lazy import LazyGroup

__all__ = ["LAZY_COMMANDS", "cli", "main"]

#: The commands: name -> ("module:attribute" of a :class:`click.Command`, its short
#: help in full, which ``terminal --help`` shortens as click does), each imported only
#: when run or asked for its own help. A new application adds its line here;
#: tests/test_startup.py checks that each short help is the command's own.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "readers": (
        "terminal.commands.readers:readers_command",
        "List the readers attached, numbered, with the path that opens each.",
    ),
    "reader": (
        "terminal.commands.reader:reader_command",
        "Commands to the reader itself: try its LED and buzzer by hand.",
    ),
    "watch": (
        "terminal.commands.readers:watch_command",
        "Report cards arriving at and leaving a reader, with ATR and UID, timestamped.",
    ),
    "read": (
        "terminal.commands.tap:read_command",
        "Show what a card reveals: applications, AID, label, PAN (masked), expiry and the "
        "data objects of every record, named.",
    ),
    "pay": ("terminal.commands.tap:pay_command", "Run one contactless transaction to its outcome."),
    "retail": (
        "terminal.commands.retail:retail_command",
        "The retail tap reader: take sales, voids and refunds, and close the day.",
    ),
    "gate": (
        "terminal.commands.gate:gate_command",
        "Run a gate: wait for a card, decide, open or keep closed, wait for the next.",
    ),
    "entry-point": (
        "terminal.commands.entry_point:entry_point_command",
        "Run one entry point transaction (EMV Book B) and print its record.",
    ),
    "csr": (
        "terminal.commands.csr:csr_command",
        "Make a TLS key and a certificate request for it: the key stays here, the request "
        "goes to the CA (`issuer terminal add --csr FILE`, `backoffice gate add --csr FILE`).",
    ),
}


class _TerminalGroup(LazyGroup):
    """The ``terminal`` group: its :data:`LAZY_COMMANDS` imported on first use, so
    ``terminal pay`` does not pay for the imports of the other commands, and
    ``terminal --help`` for none of them."""

    lazy_commands = LAZY_COMMANDS


@click.group(cls=_TerminalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack terminal: read contactless cards and take payments."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="terminal")
