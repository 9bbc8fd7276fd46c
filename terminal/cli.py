"""The ``terminal`` command: a click group (``terminal --help``).

``terminal readers`` lists the readers attached with the path that opens each one;
``terminal watch`` reports cards arriving and leaving, as pcsc_scan does. Reader
failures are :class:`click.ClickException` subclasses with their own exit codes
(:class:`ReaderFailure` 3, :class:`NoCardEvent` 4): a message, never a traceback.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from terminal.readers import (
    CardInfo,
    NoCardError,
    Reader,
    ReaderError,
    open_reader,
    scan_readers,
)

__all__ = ["NoCardEvent", "ReaderFailure", "cli", "main"]

#: Environment variable naming the reader when ``--reader`` is not given.
READER_ENV = "TAPSTACK_READER"


class ReaderFailure(click.ClickException):
    """No reader, a reader that cannot be opened, or one that failed (exit code 3)."""

    exit_code = 3


class NoCardEvent(click.ClickException):
    """``--timeout`` passed without the awaited card event (exit code 4)."""

    exit_code = 4


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack terminal: read contactless cards and take payments."""


@cli.command("readers")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def readers_command(as_json: bool) -> None:
    """List the readers attached, numbered, with the path that opens each.

    PC/SC readers come from pcscd (pyscard), USB frontends from nfcpy. Emulated
    readers (emulated:PROFILE_PATH) and nfcpy serial or udp frontends
    (nfc:tty:PORT:DRIVER, nfc:udp:HOST:PORT) are opened by path, not listed.
    """
    scan = scan_readers()
    if as_json:
        document = {
            "readers": [
                {
                    "index": i,
                    "path": r.path,
                    "name": r.name,
                    "driver": r.driver,
                    "feedback": r.feedback,
                }
                for i, r in enumerate(scan.readers)
            ],
            "problems": list(scan.problems),
        }
        click.echo(json.dumps(document, indent=2))
        return
    if scan.readers:
        click.echo("Readers (use the path with --reader):")
        width = max(len(r.path) for r in scan.readers)
        for i, r in enumerate(scan.readers):
            click.echo(f"{i:3d}: {r.path:<{width}}  {r.driver:<5} feedback: {r.feedback}")
    else:
        click.echo("No readers found.")
    for problem in scan.problems:
        click.echo(f"  note: {problem}", err=True)


def _open(path: str | None) -> Reader:
    if path is None:
        scan = scan_readers()
        if not scan.readers:
            why = "; ".join(scan.problems) or "no driver found one"
            raise ReaderFailure(f"no reader found ({why}); name one with --reader PATH")
        path = scan.readers[0].path
    try:
        return open_reader(path)
    except ReaderError as exc:
        raise ReaderFailure(f"cannot open reader {path!r}: {exc}") from exc


def _event(kind: str, reader: Reader, info: CardInfo | None, as_json: bool) -> None:
    now = datetime.now().astimezone().isoformat(timespec="milliseconds")
    record: dict[str, Any] = {"time": now, "event": kind, "reader": reader.path}
    if info is not None:
        record.update(
            atr=info.atr.hex().upper(), uid=info.uid.hex().upper(), protocol=info.protocol
        )
    if as_json:
        click.echo(json.dumps(record))
        return
    text = f"{now}  card {kind}"
    if info is not None:
        if info.atr:
            text += f"  ATR {record['atr']}"
        if info.uid:
            text += f"  UID {record['uid']}"
        text += f"  ({info.protocol})"
    click.echo(text)


@cli.command("watch")
@click.option(
    "--reader",
    "reader_path",
    envvar=READER_ENV,
    metavar="PATH",
    help=f"Reader path (see `terminal readers`); default ${READER_ENV}, "
    "else the first reader listed.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N events (an arrival and a departure are two).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Fail (exit code 4) when no event comes within S seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
def watch_command(
    reader_path: str | None, count: int | None, timeout: float | None, as_json: bool
) -> None:
    """Report cards arriving at and leaving a reader, with ATR and UID, timestamped.

    Runs until Ctrl-C, or N events with --count.
    """
    reader = _open(reader_path)
    if not as_json:
        click.echo(f"Watching {reader.path} (Ctrl-C to stop)", err=True)
    events = 0
    try:
        while count is None or events < count:
            try:
                info = reader.wait_for_card(timeout)
            except NoCardError as exc:
                raise NoCardEvent(f"no card arrived at {reader.path} within {timeout:g} s") from exc
            _event("arrived", reader, info, as_json)
            events += 1
            if count is not None and events >= count:
                break
            if not reader.wait_for_removal(timeout):
                raise NoCardEvent(f"the card did not leave {reader.path} within {timeout:g} s")
            _event("left", reader, None, as_json)
            events += 1
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except ReaderError as exc:
        raise ReaderFailure(f"{reader.path}: {exc}") from exc
    finally:
        reader.close()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="terminal")
