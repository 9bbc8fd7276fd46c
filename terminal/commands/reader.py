"""``terminal reader``: commands to the reader itself, not to a card.

``terminal reader feedback --led COLOUR --beep N`` sends the LED and buzzer command of
an ACS ACR122U (``FF 00 40 P2 04 T1 T2 N B``, API manual v2.04 §6.2;
:func:`terminal.readers.acr122u.led_buzzer_apdu`) to a PC/SC reader as a CCID escape,
with libccid's control code and then the vendor driver's
(:data:`terminal.readers.pcsc.ESCAPE_CODES`), and says which one the reader took and
what it answered: the way to try a reader's LED and buzzer by hand. Other readers
(nfcpy frontends, emulated) have no LED or buzzer that tapstack drives: their signals
are recorded only, and the command says so (exit code 3).
"""

from __future__ import annotations

import json
from typing import Any

import click

from terminal.commands.common import ReaderFailure, open_cli_reader, reader_option
from terminal.readers import ReaderError, Signal
from terminal.readers.acr122u import led_buzzer_apdu
from terminal.readers.base import LED_COLOURS

__all__ = ["feedback_command", "reader_command"]


@click.group("reader", context_settings={"help_option_names": ["-h", "--help"]})
def reader_command() -> None:
    """Commands to the reader itself: try its LED and buzzer by hand."""


@reader_command.command("feedback")
@reader_option
@click.option(
    "--led",
    type=click.Choice(sorted(LED_COLOURS)),
    default="green",
    show_default=True,
    help="The colour left on (orange: red and green).",
)
@click.option(
    "--beep",
    "beeps",
    type=click.IntRange(0, 255),
    default=1,
    show_default=True,
    metavar="N",
    help="Tones, the LED blinking with them.",
)
@click.option(
    "--duration",
    "duration_ms",
    type=click.IntRange(0, 25_500),
    default=200,
    show_default=True,
    metavar="MS",
    help="Length of each tone and of each pause between tones.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def feedback_command(
    reader_path: str | None, led: str, beeps: int, duration_ms: int, as_json: bool
) -> None:
    """Show a colour and sound tones on the reader (ACR122U LED and buzzer command).

    The command goes to the reader as a CCID escape (no card needed), with libccid's
    control code SCARD_CTL_CODE(1) and, if refused, the vendor driver's
    SCARD_CTL_CODE(3500); the output says which one the reader took. libccid passes
    escapes only with bit 0 of ifdDriverOptions set in its Info.plist. Exit code 3 when
    the reader takes neither, or has no LED that tapstack drives.
    """
    from terminal.readers.pcsc import PcscReader

    signal = Signal(led, beeps, duration_ms)
    apdu = led_buzzer_apdu(signal)
    reader = open_cli_reader(reader_path)
    report: dict[str, Any] = {
        "reader": reader.path,
        "signal": {"led": led, "beeps": beeps, "duration_ms": duration_ms},
        "apdu": apdu.hex().upper(),
        "sent": False,
        "escape_code": None,
        "answer": None,
    }
    failure = ""
    try:
        if not isinstance(reader, PcscReader):
            failure = (
                f"{reader.path} has no LED or buzzer tapstack drives: signals are recorded only"
            )
        else:
            try:
                answer = reader.escape(apdu)
            except ReaderError as exc:
                failure = f"{reader.path} took neither escape control code: {exc}"
            else:
                report.update(sent=True, answer=answer.hex().upper())
                report["escape_code"] = f"0x{reader.escape_code:08X}"
                if len(answer) < 2 or answer[-2] != 0x90:  # 90 xx: xx is the LED state
                    failure = (
                        f"the reader refused the command ({answer.hex().upper() or 'no answer'})"
                    )
    finally:
        reader.close()
    report["ok"] = not failure
    if failure:
        report["problem"] = failure
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif report["sent"]:
        click.echo(f"{reader.path}: sent {report['apdu']} with escape code {report['escape_code']}")
        click.echo(f"  answer {report['answer']}")
    if failure:
        raise ReaderFailure(failure)
