"""``terminal readers`` lists the readers attached with the path that opens each;
``terminal watch`` reports cards arriving and leaving, as pcsc_scan does."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from terminal.commands.common import (
    NoCardEvent,
    open_cli_reader,
    reader_failure,
    reader_option,
)
from terminal.readers import CardInfo, NoCardError, Reader, ReaderError, scan_readers
from terminal.readers.trace import text_sink, traced

__all__ = ["readers_command", "watch_command"]


@click.command("readers")
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


@click.command("watch")
@reader_option
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop when the Nth card arrives (each card before it is reported arriving and leaving).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Fail (exit code 8) when no card comes, or a card stays, for S seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@click.option("--trace", is_flag=True, help="Trace the reader's events on standard error.")
def watch_command(
    reader_path: str | None, count: int | None, timeout: float | None, as_json: bool, trace: bool
) -> None:
    """Report cards arriving at and leaving a reader, with ATR and UID, timestamped.

    Runs until Ctrl-C, or until the Nth card arrives with --count N. Once a card is
    reported the watch lets it go (the reader may power it down: a card of `card
    serve` then ends its tap and leaves), so that the next one is seen. A PC/SC
    reader is asked for the card's UID (PC/SC Part 3 GET DATA).
    """
    reader = traced(open_cli_reader(reader_path, read_uid=True), text_sink() if trace else None)
    if not as_json:
        click.echo(f"Watching {reader.path} (Ctrl-C to stop)", err=True)
    cards = 0
    try:
        while count is None or cards < count:
            try:
                info = reader.wait_for_card(timeout)
            except NoCardError as exc:
                raise NoCardEvent(
                    f"no card arrived at {reader.path} within {timeout:g} s: present a card, "
                    "or wait longer with --timeout"
                ) from exc
            _event("arrived", reader, info, as_json)
            cards += 1
            if count is not None and cards >= count:
                break
            reader.release()
            if not reader.wait_for_removal(timeout):
                raise NoCardEvent(
                    f"the card did not leave {reader.path} within {timeout:g} s: take it "
                    "away, or wait longer with --timeout"
                )
            _event("left", reader, None, as_json)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except ReaderError as exc:
        raise reader_failure(reader.path, exc) from exc
    finally:
        reader.close()
