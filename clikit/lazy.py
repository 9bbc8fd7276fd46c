"""A click group whose commands are imported on first use (click's documentation,
"Lazily Loading Subcommands"), and whose ``--help`` lists them without importing any.

A subclass names its commands in :attr:`LazyGroup.lazy_commands`: name ->
("module:attribute" of a :class:`click.Command`, its short help in full). ``--help``
shortens each short help as click shortens a command's own, from a stand-in command
with the same text; a test of each tool checks that the text is the command's own.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar

import click

from clikit.errors import ToolGroup

__all__ = ["LazyGroup"]


class LazyGroup(ToolGroup):
    """A tool's top-level group (:class:`clikit.errors.ToolGroup`) with lazily
    imported commands (module docstring)."""

    #: name -> ("module:attribute", short help in full) of each lazy command.
    lazy_commands: ClassVar[Mapping[str, tuple[str, str]]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy_commands.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        target = entry[0]
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands' list with their short help, as
        :meth:`click.Group.format_commands` writes it, importing no lazy command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                # a stand-in with the same help, so that click shortens it as its own
                command: click.Command | None = click.Command(
                    name, help=self.lazy_commands[name][1]
                )
            else:
                command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
