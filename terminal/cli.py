"""The ``terminal`` command: a click group (``terminal --help``).

Every command lives in its own module of :mod:`terminal.commands` and is imported only
when it runs or is listed (:data:`LAZY_COMMANDS`): ``readers`` and ``watch``
(:mod:`~terminal.commands.readers`), ``read`` and ``pay`` (:mod:`~terminal.commands.tap`),
``retail``, ``gate transit|parking``, ``entry-point`` and ``csr``
(:mod:`~terminal.commands.csr`). Failures are
:class:`click.ClickException` subclasses with their own exit codes
(:mod:`terminal.commands.common`): a message, never a traceback. Data go to standard
output, messages to standard error.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["LAZY_COMMANDS", "cli", "main"]

#: The commands: name -> "module:attribute" of a :class:`click.Command`, imported only
#: when run or listed. A new application adds its line here.
LAZY_COMMANDS: dict[str, str] = {
    "readers": "terminal.commands.readers:readers_command",
    "watch": "terminal.commands.readers:watch_command",
    "read": "terminal.commands.tap:read_command",
    "pay": "terminal.commands.tap:pay_command",
    "retail": "terminal.commands.retail:retail_command",
    "gate": "terminal.commands.gate:gate_command",
    "entry-point": "terminal.commands.entry_point:entry_point_command",
    "csr": "terminal.commands.csr:csr_command",
}


class _LazyGroup(click.Group):
    """A click group whose :data:`LAZY_COMMANDS` are imported on first use (the
    click documentation's lazy-loading pattern), so ``terminal pay`` does not pay for
    the imports of the other commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack terminal: read contactless cards and take payments."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="terminal")
