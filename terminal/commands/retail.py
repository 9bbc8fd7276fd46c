"""``terminal retail``: the retail tap reader.

The cashier enters an amount (``--amount``, a prompt, or one line per request on
standard input with ``--stdin`` for a POS to drive), the customer display (standard
error, ``[display] ...``) shows the EMV Book A §9.4 messages, the sale is authorised
online and its receipt printed (standard output; ``--json``: one JSON object per
line). The till logic, capture policy and close are in :mod:`terminal.apps.retail`.

A sale may be paid by QR code instead of a tap (EMV QRCPS; :mod:`terminal.apps.qr`):
``--scan`` reads the customer's consumer-presented code as one line of standard input
(a USB scanner is a keyboard: it types the code and Enter), from a serial scanner's
port (``--scanner /dev/ttyACM0``: :mod:`terminal.apps.scanner`) or from ``--image
FILE`` (a camera frame); ``--show-code`` shows the dynamic merchant-presented code the issuer
made for the sale on the customer display (drawn in Unicode half blocks, its text on
the next line; ``--code-png FILE`` writes it as an image too) and waits
``--qr-wait`` seconds for the customer's phone to pay it.

Lines (prompt and ``--stdin``)::

    12.34 | sale 12.34          a sale (tap a card)
    scan 12.34 [CODE]           a sale paid by the customer's code (CODE, else the next line)
    show 12.34                  a sale paid by the customer's phone scanning the till's code
    void TXN_ID                 void an approved sale of the open batch
    refund TXN_ID 5.00          refund part or all of a sale
    totals                      the open batch's totals as the till has them
    close                       end of day: capture, compare with the issuer
    quit                        stop (end of input does too)

Exit codes (the table of ``terminal --help``): 2 usage, 3 a void or refund of a sale
the till does not know, 4 a void or refund the till refuses or a close that found
differences (MISMATCH), 5 sale declined, 6 the issuer refused this terminal, 7 issuer
unreachable (nothing charged), 8 card removed, not completed or no card within
``--timeout``, 9 reader, 10 configuration, 11 the till's journal. Before a sale asks
for a card the issuer is checked (:func:`~terminal.commands.common.check_issuer`). With
``--stdin`` a failed line is reported (``--json``: an ``{"error": ...}`` line with the
line read) and the next one read; the exit code is then 4 if the last close did not
match, else 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import click

from clikit.errors import ToolFailure, error_document
from clikit.exits import Exit
from emvwire.currency import Currency, currency_by_code, format_amount, parse_amount
from emvwire.tags import Tag
from hostlink import HostUnreachableError
from terminal.apps.journal import Journal, JournalError
from terminal.apps.retail import (
    CloseReport,
    IssuerRefusalError,
    Receipt,
    RetailError,
    Till,
    UnknownSaleError,
    journal_totals,
)
from terminal.commands.common import (
    CardNotCompleted,
    ConfigFailure,
    HostRefusedFailure,
    HostUnreachableFailure,
    NoCardEvent,
    NotCompleted,
    ReaderFailure,
    check_issuer,
    client_tls,
    host_client,
    issuer_options,
    load_terminal_config,
    not_completed,
    prepare_reader,
    reader_failure,
    reader_option,
)
from terminal.kernel.config import TerminalConfig
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import UiMessage
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
)
from terminal.readers import NoCardError, Reader, ReaderError, signal_outcome

__all__ = ["CloseMismatch", "JournalFailure", "Refused", "retail_command"]

#: How long a sale waits for a serial scanner's code without ``--timeout`` (seconds).
SCANNER_WAIT: Final = 60.0

#: Default folder of the till's journal.
DEFAULT_HOME = "var/retail"


class CloseMismatch(ToolFailure):
    """The close found differences between till and issuer (exit 4, conflict)."""

    exit_code = Exit.CONFLICT


class Refused(ToolFailure):
    """A void or refund the till refuses (exit 4; an unknown sale: 3)."""

    exit_code = Exit.CONFLICT


class UnknownSale(Refused):
    """A void or refund of a sale the till does not know (exit 3)."""

    exit_code = Exit.NOT_FOUND


class JournalFailure(ToolFailure):
    """The till's journal cannot be opened or written (exit 11)."""

    exit_code = Exit.STORAGE


def _refused(exc: RetailError) -> ToolFailure:
    """The failure of a request the till or the issuer refuses."""
    if isinstance(exc, UnknownSaleError):
        return UnknownSale(str(exc))
    if isinstance(exc, IssuerRefusalError):
        return HostRefusedFailure(f"{exc}; check this terminal's settings at the issuer")
    return Refused(str(exc))


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ``terminal retail`` command takes (env-var defaults)."""
    options = [
        click.option("--home", envvar="TAPSTACK_RETAIL_HOME", metavar="DIR",
                     help=f"Till folder (the day's journal); default ${{TAPSTACK_RETAIL_HOME}} "
                     f"or ./{DEFAULT_HOME}."),
        issuer_options,
        click.option("--merchant", envvar="TAPSTACK_MERCHANT", metavar="NAME",
                     help="Merchant name on receipts (default: the configuration's 9F4E)."),
        click.option("--config", "config_path", metavar="FILE",
                     help="Terminal configuration (JSON)."),
        click.option("--host-timeout", type=click.FloatRange(min=0.1), metavar="S",
                     help="Wait S s for each issuer answer (default 5)."),
        click.option("--json", "as_json", is_flag=True, default=None,
                     help="One JSON object per result and line."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class _Session:
    """What the commands of one invocation share: settings, then the till and reader."""

    settings: dict[str, Any]
    till: Till | None = None
    reader: Reader | None = None
    raw: Reader | None = None
    entry: EntryPoint | None = None
    config: TerminalConfig | None = None
    close_ok: bool = True
    tapped: bool = False
    #: Reads the next line of input (a scanned code after ``scan AMOUNT``).
    next_line: Callable[[], str | None] = lambda: None
    checked: bool = False
    _host: Any = field(default=None, repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value is None else value

    def terminal_config(self) -> TerminalConfig:
        if self.config is None:
            path = self.get("config_path")
            self.config = load_terminal_config(path)
        return self.config

    def currency(self) -> Currency:
        config = self.terminal_config()
        return currency_by_code(config.currency)

    def open_till(self) -> Till:
        if self.till is not None:
            return self.till
        url, tid, key = self.get("issuer_url"), self.get("terminal_id"), self.get("terminal_key")
        if not (url and tid and key):
            raise click.UsageError(
                "the till goes online: give --issuer, --terminal-id and --terminal-key "
                "(or TAPSTACK_ISSUER_URL, TAPSTACK_TERMINAL_ID, TAPSTACK_TERMINAL_KEY)"
            )
        tls = client_tls(
            self.get("issuer_ca"), self.get("cert"), self.get("cert_key"),
            self.get("dev_plain_http"),
        )  # fmt: skip
        self._host = host_client(url, tid, key, tls, timeout=self.get("host_timeout", 5.0))
        journal = self.journal()
        config = self.terminal_config()
        merchant = self.get("merchant") or config.data(Tag.MERCHANT_NAME_AND_LOCATION).decode(
            "ascii", "replace"
        )
        from hostlink import HostClient

        self.till = Till(
            journal, self._host, merchant=merchant or "tapstack merchant", terminal_id=tid,
            currency=self.currency(), display=_display,
            qr_host=self._host if isinstance(self._host, HostClient) else None,
            show_code=self.show_code, terminal_data=config.terminal_data,
        )  # fmt: skip
        return self.till

    def show_code(self, text: str) -> None:
        """The customer display shows a merchant-presented code (standard error: drawn,
        then its text; with ``--code-png`` written as an image too)."""
        from emvwire.qr import image

        click.echo(image.terminal(text), err=True, nl=False)
        click.echo(f"[display] code: {text}", err=True)
        png = self.get("code_png")
        if png:
            try:
                Path(png).write_bytes(image.png(text))
            except OSError as exc:
                raise ConfigFailure(f"--code-png {png}: {exc.strerror or exc}") from None

    def check_issuer(self) -> None:
        """Check the issuer once before the first sale asks for a card (again after
        a failed check): :func:`~terminal.commands.common.check_issuer`."""
        if self.checked:
            return
        self.open_till()
        check_issuer(self._host, self.get("issuer_url"), self.get("terminal_id"))
        self.checked = True

    def journal(self) -> Journal:
        """The till's journal (``--home``/journal)."""
        home = Path(self.get("home", os.environ.get("TAPSTACK_RETAIL_HOME", DEFAULT_HOME)))
        try:
            return Journal(home / "journal")
        except (JournalError, OSError) as exc:
            raise JournalFailure(
                f"till journal in {home}: {exc}; check that the folder is writable, or "
                "choose another with --home"
            ) from None

    def tap(self, transaction: Transaction) -> TransactionResult:
        """Wait for a card (after the previous one left) and run the kernel."""
        if self.reader is None:
            self.raw, self.reader = prepare_reader(self.get("reader_path"), bool(self.get("trace")))
            self.entry = EntryPoint(self.terminal_config())
        assert self.reader is not None
        assert self.raw is not None
        assert self.entry is not None
        timeout = self.get("timeout")
        try:
            # The previous card must leave first (an emulated card never does: its
            # every wait_for_card is a new presentation).
            if (
                self.tapped
                and not self.raw.path.startswith("emulated:")
                and self.reader.card_present()
            ):
                _display(UiMessage.REMOVE_CARD, "")
                if not self.reader.wait_for_removal(timeout):
                    raise NoCardEvent(
                        f"the card did not leave {self.raw.path}: take it away, then sell again"
                    )
            self.reader.wait_for_card(timeout)
            self.tapped = True
            result = self.entry.run(self.reader, transaction, wait=False)
        except NoCardError as exc:
            raise NoCardEvent(
                f"no card at {self.raw.path} within {timeout:g} s: present a card, or wait "
                "longer with --timeout"
            ) from exc
        except ReaderError as exc:
            raise reader_failure(self.raw.path, exc) from exc
        signal_outcome(self.raw.feedback, result.outcome.label)
        self.reader.field_off()  # Book A: the removal procedure, once the signal is given
        return result

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self._host is not None:
            self._host.close()
        if self.till is not None:
            self.till.journal.close()


def _display(message: UiMessage, detail: str) -> None:
    """The customer display: standard error."""
    text = message.text if message is not UiMessage.NA else ""
    click.echo(f"[display] {text}{': ' + detail if detail else ''}", err=True)


def _session(ctx: click.Context, values: dict[str, Any]) -> _Session:
    """The settings of this command over those given to ``terminal retail``."""
    parent = ctx.find_object(_Session)
    merged = dict(parent.settings if parent else {})
    merged.update({k: v for k, v in values.items() if v is not None})
    return _Session(merged)


def _print(session: _Session, item: Receipt | CloseReport | dict[str, Any]) -> None:
    if session.get("as_json", False):
        data = item if isinstance(item, dict) else item.to_json()
        click.echo(json.dumps(data))
    elif isinstance(item, dict):
        click.echo(json.dumps(item, indent=2))
    else:
        click.echo(item.text())
        click.echo()


# -- the operations, shared by commands and lines -----------------------------------------


def _sale(session: _Session, amount_text: str) -> Receipt:
    till = session.open_till()
    try:
        amount = parse_amount(amount_text, till.currency.exponent)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="amount") from None
    session.check_issuer()
    try:
        receipt = till.sale(amount, session.tap)
    except RetailError as exc:
        raise click.BadParameter(str(exc), param_hint="amount") from None
    _print(session, receipt)
    return receipt


def _qr_sale(session: _Session, amount_text: str, mode: str, code: str | None = None) -> Receipt:
    """A sale paid by QR code: ``scan`` (the customer's code: ``code``, the image of
    ``--image``, or the next line of input) or ``show`` (the till's code)."""
    till = session.open_till()
    try:
        amount = parse_amount(amount_text, till.currency.exponent)
        if mode == "show":
            receipt = till.show_sale(amount, wait=session.get("qr_wait", 120.0))
        else:
            receipt = till.scan_sale(amount, code if code is not None else _scanned(session))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="amount") from None
    except RetailError as exc:
        raise click.BadParameter(str(exc), param_hint="amount") from None
    _print(session, receipt)
    return receipt


def _scanned(session: _Session) -> str:
    """The customer's code: read from ``--image``, else one line of input (the scanner)."""
    image_file = session.get("image")
    if image_file:
        from emvwire.errors import QrError
        from emvwire.qr import image

        try:
            return image.read(Path(image_file).read_bytes())
        except OSError as exc:
            raise click.BadParameter(str(exc.strerror or exc), param_hint="--image") from None
        except QrError as exc:
            raise CardNotCompleted(f"{image_file}: {exc.message}") from None
    _display(UiMessage.SEE_PHONE, "show your code to the scanner")
    scanner = session.get("scanner")
    if scanner:
        from terminal.apps.scanner import ScannerError, read_code

        try:
            return read_code(scanner, session.get("timeout") or SCANNER_WAIT)
        except ScannerError as exc:
            raise CardNotCompleted(str(exc)) from None
    line = session.next_line()
    if not line or not line.strip():
        raise CardNotCompleted("no code scanned")
    return line.strip()


def _checked(receipt: Receipt) -> None:
    """The exit of a one-sale invocation: 7 no charge, 5 not approved."""
    if receipt.status == "NO CHARGE":
        raise HostUnreachableFailure(
            f"{receipt.reason}: sale of {receipt.amount} not charged; sell again once the "
            "issuer answers"
        )
    if not receipt.approved:
        raise not_completed(
            receipt.status.lower(), [receipt.reason], declined=receipt.status == "DECLINED"
        )


def _void(session: _Session, transaction_id: str) -> None:
    till = session.open_till()
    try:
        receipt = till.void(transaction_id)
    except RetailError as exc:
        raise _refused(exc) from None
    except HostUnreachableError as exc:
        raise HostUnreachableFailure(str(exc)) from None
    _print(session, receipt)


def _refund(session: _Session, transaction_id: str, amount_text: str) -> None:
    till = session.open_till()
    try:
        amount = parse_amount(amount_text, till.currency.exponent)
        receipt = till.refund(transaction_id, amount)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="amount") from None
    except RetailError as exc:
        raise _refused(exc) from None
    except HostUnreachableError as exc:
        raise HostUnreachableFailure(str(exc)) from None
    _print(session, receipt)


def _close(session: _Session) -> None:
    till = session.open_till()
    try:
        report = till.close()
    except RetailError as exc:
        raise _refused(exc) from None
    except HostUnreachableError as exc:
        raise HostUnreachableFailure(str(exc)) from None
    _print(session, report)
    session.close_ok = report.match
    if not report.match:
        raise CloseMismatch(
            f"close: {len(report.differences)} difference(s); the day stays open: compare "
            "the till's totals with the issuer's transactions, then close again"
        )


def _totals(session: _Session) -> None:
    if session.till is not None:
        totals = session.till.totals()
    else:
        with session.journal() as journal:
            totals = journal_totals(journal)
    currency = session.currency()
    if session.get("as_json", False):
        click.echo(json.dumps({"totals": totals.to_json(), "currency": currency.alpha}))
        return
    for name in ("sales", "refunds", "voids"):
        count, amount = getattr(totals, name)
        click.echo(f"{name:8} {count:4}  {format_amount(amount, currency)}")
    click.echo(f"net           {format_amount(totals.net, currency)}")


def _line(session: _Session, line: str) -> bool:
    """Run one request line; ``False`` for quit."""
    words = line.split()
    if not words or words[0].startswith("#"):
        return True
    verb, args = words[0].lower(), words[1:]
    if verb in ("quit", "exit"):
        return False
    if verb == "sale" and len(args) == 1:
        _sale(session, args[0])
    elif verb == "scan" and len(args) in (1, 2):
        _qr_sale(session, args[0], "scan", args[1] if len(args) == 2 else None)
    elif verb == "show" and len(args) == 1:
        _qr_sale(session, args[0], "show")
    elif len(words) == 1 and words[0][:1].isdigit():
        _sale(session, words[0])
    elif verb == "void" and len(args) == 1:
        _void(session, args[0])
    elif verb == "refund" and len(args) == 2:
        _refund(session, args[0], args[1])
    elif verb == "close" and not args:
        _close(session)
    elif verb == "totals" and not args:
        _totals(session)
    else:
        raise click.UsageError(
            f"cannot read {line.strip()!r}: sale AMOUNT | scan AMOUNT [CODE] | show AMOUNT "
            "| void TXN | refund TXN AMOUNT | totals | close | quit"
        )
    return True


def _lines(session: _Session, read: Callable[[], str | None]) -> None:
    """Run request lines until quit or the end of input; errors are reported per line."""
    while True:
        line = read()
        if line is None:
            return
        try:
            if not _line(session, line):
                return
        except (CloseMismatch, NotCompleted) as exc:
            exc.show()  # its report or receipt is printed already
        except (ReaderFailure, ConfigFailure, JournalFailure):
            raise
        except click.ClickException as exc:
            if session.get("as_json", False):
                click.echo(json.dumps({**error_document(exc), "line": line.strip()}))
            exc.show()


# -- the commands ---------------------------------------------------------------------


@click.group(
    "retail", invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)  # fmt: skip
@_common
@reader_option
@click.option("--amount", metavar="AMOUNT", help="Take one sale of AMOUNT (e.g. 12.34), then stop.")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read request lines from standard input (a POS drives the till).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S",
              help="Wait S s at most for a card (and for its removal).")  # fmt: skip
@click.option("--trace", is_flag=True, default=None, help="Every APDU to standard error.")
@click.option("--scan", "mode", flag_value="scan",
              help="The --amount sale is paid by the customer's QR code: one line of "
              "standard input (a scanner), or --image.")  # fmt: skip
@click.option("--show-code", "mode", flag_value="show",
              help="The --amount sale is paid by the customer's phone scanning the till's "
              "QR code (shown on the display).")  # fmt: skip
@click.option("--image", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --scan: read the customer's code from this picture.")  # fmt: skip
@click.option("--scanner", metavar="PORT",
              help="Scanned codes come from this serial scanner (e.g. /dev/ttyACM0, raw, "
              "9600 baud, a code a line) instead of standard input.")  # fmt: skip
@click.option(
    "--code-png",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="With --show-code (and `show` lines): also write the till's code as a PNG.",
)
@click.option("--qr-wait", type=click.FloatRange(min=10, max=900), metavar="S",
              help="Wait S s for the phone to pay the till's code (default 120).")  # fmt: skip
@click.pass_context
def retail_command(
    ctx: click.Context, /, amount: str | None, from_stdin: bool, mode: str | None, **values: Any
) -> None:
    """The retail tap reader: take sales, voids and refunds, and close the day.

    Without a subcommand: one sale with --amount, request lines from standard input
    with --stdin, else a prompt for amounts (or any request line). Receipts go to
    standard output; the customer display's messages to standard error. Capture: the
    day's approved sales are captured at `terminal retail close`; before that a sale
    can be voided (its hold released), afterwards refunded.
    """
    session = _Session({k: v for k, v in values.items() if v is not None})
    session.next_line = lambda: sys.stdin.readline() or None
    ctx.obj = session
    ctx.call_on_close(session.close)
    if ctx.invoked_subcommand is not None:
        if amount or from_stdin:
            raise click.UsageError("--amount and --stdin take no subcommand")
        return
    if amount is not None and from_stdin:
        raise click.UsageError("give --amount or --stdin, not both")
    if (mode or values.get("image")) and amount is None:
        raise click.UsageError("--scan, --show-code and --image go with --amount")
    if values.get("image") and mode != "scan":
        raise click.UsageError("--image goes with --scan")
    if amount is not None and mode is not None:
        _checked(_qr_sale(session, amount, mode))
        return
    if amount is not None:
        _checked(_sale(session, amount))
        return
    if from_stdin:
        _lines(session, session.next_line)
        if not session.close_ok:
            ctx.exit(CloseMismatch.exit_code)
        return

    def ask() -> str | None:
        try:
            text: str = click.prompt("Amount (or void/refund/totals/close/quit)", type=str,
                                     err=True)  # fmt: skip
        except (click.Abort, EOFError):
            return None
        return text

    _lines(session, ask)


@retail_command.command("close")
@_common
@click.pass_context
def close_command(ctx: click.Context, /, **values: Any) -> None:
    """End of day: capture the open sales, compare the totals (sales, refunds, voids:
    count and amount) with the issuer's transactions of this terminal, print MATCH or
    the differences (exit code 6)."""
    session = _session(ctx, values)
    ctx.call_on_close(session.close)
    _close(session)


@retail_command.command("void")
@_common
@click.argument("transaction_id")
@click.pass_context
def void_command(ctx: click.Context, /, transaction_id: str, **values: Any) -> None:
    """Void an approved sale of the open day (its authorisation is reversed)."""
    session = _session(ctx, values)
    ctx.call_on_close(session.close)
    _void(session, transaction_id)


@retail_command.command("refund")
@_common
@click.argument("transaction_id")
@click.argument("amount")
@click.pass_context
def refund_command(ctx: click.Context, /, transaction_id: str, amount: str, **values: Any) -> None:
    """Refund AMOUNT of an approved sale of this till (POST /v1/refunds)."""
    session = _session(ctx, values)
    ctx.call_on_close(session.close)
    _refund(session, transaction_id, amount)


@retail_command.command("totals")
@_common
@click.pass_context
def totals_command(ctx: click.Context, /, **values: Any) -> None:
    """The open day's totals as the till's journal has them (no issuer needed)."""
    session = _session(ctx, values)
    ctx.call_on_close(session.close)
    _totals(session)
