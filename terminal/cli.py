"""The ``terminal`` command: a click group (``terminal --help``).

Every command lives in its own module of :mod:`terminal.commands` and is imported only
when it runs (:data:`LAZY_COMMANDS`): ``readers`` and ``watch``
(:mod:`~terminal.commands.readers`), ``read`` and ``pay`` (:mod:`~terminal.commands.tap`),
``retail``, ``gate transit|parking``, ``entry-point`` and ``csr``
(:mod:`~terminal.commands.csr`). ``terminal --help`` lists them from the short help
kept beside each name, importing none of them. Failures are
:class:`click.ClickException` subclasses with their own exit codes
(:mod:`terminal.commands.common`): a message, never a traceback. Data go to standard
output, messages to standard error.
"""

from __future__ import annotations

import importlib

import click

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


class _LazyGroup(click.Group):
    """A click group whose :data:`LAZY_COMMANDS` are imported on first use (the
    click documentation's lazy-loading pattern), so ``terminal pay`` does not pay for
    the imports of the other commands, and ``terminal --help`` for none of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = LAZY_COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        target = entry[0]
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands' list, their short help from :data:`LAZY_COMMANDS` (as
        :meth:`click.Group.format_commands` does it, without importing them)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in LAZY_COMMANDS:
                # a stand-in with the same help, so that click shortens it as its own
                command: click.Command | None = click.Command(name, help=LAZY_COMMANDS[name][1])
            else:
                command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack terminal: read contactless cards and take payments."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="terminal")
