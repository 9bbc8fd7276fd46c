"""Options shared by the ``terminal`` commands of the applications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from terminal.cli import READER_ENV

__all__ = ["gate_options"]

F = TypeVar("F", bound=Callable[..., Any])


def gate_options(command: F) -> F:
    """The options of every ``terminal gate`` command: ``--reader``, ``--config``,
    ``--home``, ``--taps``, ``--timeout`` and ``--json``."""
    options = [
        click.option("--reader", "reader_path", envvar=READER_ENV, metavar="PATH",
                     help=f"Reader path (see `terminal readers`); default ${READER_ENV}, "
                     "else the first."),
        click.option("--config", "config_path", metavar="FILE",
                     help="Terminal configuration (JSON)."),
        click.option("--home", envvar="TAPSTACK_GATE_HOME", default="./var/gate",
                     show_default=True, metavar="DIR",
                     help="The gate's state (journal; transit: deny list too); env "
                     "TAPSTACK_GATE_HOME."),
        click.option("--taps", type=click.IntRange(min=1), metavar="N",
                     help="Stop after N taps (default: until Ctrl-C)."),
        click.option("--timeout", type=click.FloatRange(min=0), metavar="S",
                     help="Give up (exit code 4) when no card comes, or a card stays, "
                     "for S s."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per tap and line."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command
