"""What the ``terminal gate`` commands share: their common options, and how the
failures of their loop become the command's exit."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from terminal.cli import READER_ENV, NoCardEvent, ReaderFailure
from terminal.readers import NoCardError, Reader, ReaderError

__all__ = ["gate_failures", "gate_options"]

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


@contextlib.contextmanager
def gate_failures(reader: Reader) -> Iterator[None]:
    """Around a gate's loop on ``reader``: Ctrl-C stops it ("stopped"); no card, or a
    card that stays, within ``--timeout`` is :class:`~terminal.cli.NoCardEvent` (exit
    code 4); any other reader error :class:`~terminal.cli.ReaderFailure` (3)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except (NoCardError, TimeoutError) as exc:
        raise NoCardEvent(str(exc)) from exc
    except ReaderError as exc:
        raise ReaderFailure(f"{reader.path}: {exc}") from exc
