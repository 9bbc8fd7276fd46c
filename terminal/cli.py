"""The ``terminal`` command: a click group (``terminal --help``).

``terminal readers`` lists the readers attached with the path that opens each one;
``terminal watch`` reports cards arriving and leaving, as pcsc_scan does;
``terminal read`` shows what a card reveals (masked); ``terminal pay`` runs one
transaction to its outcome (EMV Book B entry point, kernels 2 and 3) and, with no
issuer to ask yet, stops at "online request" and prints the authorisation request,
masked. Failures are :class:`click.ClickException` subclasses with their own exit
codes (:class:`ConfigFailure` 2, :class:`ReaderFailure` 3, :class:`NoCardEvent` 4,
:class:`NotCompleted` 5 for a transaction declined, ended or to be tried again): a
message, never a traceback. Data go to standard output, messages to standard error.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from typing import Any

import click

from emvwire.dump import dump
from terminal.kernel.config import (
    TRANSACTION_TYPES,
    ConfigError,
    TerminalConfig,
    default_config,
    load_config,
)
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome, UiMessage
from terminal.kernel.reading import read_card
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
    currency_by_code,
    parse_amount,
)
from terminal.readers import (
    CardInfo,
    NoCardError,
    Reader,
    ReaderError,
    open_reader,
    scan_readers,
    signal_outcome,
)
from terminal.readers.trace import text_sink, traced

__all__ = [
    "ConfigFailure",
    "NoCardEvent",
    "NotCompleted",
    "ReaderFailure",
    "cli",
    "load_terminal_config",
    "main",
    "open_cli_reader",
    "prepare_reader",
]

#: Environment variable naming the reader when ``--reader`` is not given.
READER_ENV = "TAPSTACK_READER"


class ReaderFailure(click.ClickException):
    """No reader, a reader that cannot be opened, or one that failed (exit code 3)."""

    exit_code = 3


class NoCardEvent(click.ClickException):
    """``--timeout`` passed without the awaited card event (exit code 4)."""

    exit_code = 4


#: Commands that live in their own modules, imported only when run or listed:
#: name -> "module:attribute" of a :class:`click.Command`. A new application adds its
#: line here (``terminal --help`` lists them with the built-in ones).
LAZY_COMMANDS: dict[str, str] = {
    "retail": "terminal.commands.retail:retail_command",
    "gate": "terminal.commands.gate:gate_command",
    "entry-point": "terminal.commands.entry_point:entry_point_command",
}


class _LazyGroup(click.Group):
    """A click group whose :data:`LAZY_COMMANDS` are imported on first use (the
    click documentation's lazy-loading pattern), so ``terminal pay`` does not pay for
    the imports of the applications."""

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


def open_cli_reader(path: str | None) -> Reader:
    """The reader at ``path``, or the first one found; :class:`ReaderFailure` with the
    reason otherwise (every command that takes ``--reader``)."""
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
@click.option("--trace", is_flag=True, help="Trace the reader's events on standard error.")
def watch_command(
    reader_path: str | None, count: int | None, timeout: float | None, as_json: bool, trace: bool
) -> None:
    """Report cards arriving at and leaving a reader, with ATR and UID, timestamped.

    Runs until Ctrl-C, or N events with --count.
    """
    reader = traced(open_cli_reader(reader_path), text_sink() if trace else None)
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


# --- read and pay ----------------------------------------------------------------------


class ConfigFailure(click.ClickException):
    """A terminal configuration that cannot be read or is invalid (exit code 2)."""

    exit_code = 2


class NotCompleted(click.ClickException):
    """The transaction was declined, ended, or must be tried again (exit code 5)."""

    exit_code = 5


def load_terminal_config(path: str | None) -> TerminalConfig:
    """The terminal configuration of ``--config`` (the built-in default without one);
    :class:`ConfigFailure` with the reason when it does not load."""
    try:
        return default_config() if path is None else load_config(path)
    except ConfigError as exc:
        raise ConfigFailure(f"configuration: {exc}") from exc


def prepare_reader(reader_path: str | None, trace: bool) -> tuple[Reader, Reader]:
    """The reader opened, and the same traced to standard error with ``--trace``."""
    reader = open_cli_reader(reader_path)
    return reader, traced(reader, text_sink() if trace else None)


def _wait(reader: Reader, timeout: float | None) -> None:
    click.echo(f"Present a card to {reader.path}", err=True)
    try:
        reader.wait_for_card(timeout)
    except NoCardError as exc:
        raise NoCardEvent(f"no card at {reader.path} within {timeout:g} s") from exc


def _print_objects(objects: list[dict[str, Any]], indent: str) -> None:
    for obj in objects:
        if "error" in obj:
            click.echo(f"{indent}!! {obj['error']}")
        else:
            click.echo(f"{indent}{obj['tag']:<6} {obj['name']}: {obj['value']}")


@cli.command("read")
@click.option(
    "--reader",
    "reader_path",
    envvar=READER_ENV,
    metavar="PATH",
    help=f"Reader path (see `terminal readers`); default ${READER_ENV}, else the first one.",
)
@click.option("--config", "config_path", metavar="FILE", help="Terminal configuration (JSON).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S", help="Wait S s at most.")
@click.option("--no-gpo", is_flag=True, help="Stop after SELECT: no GPO, no records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option("--trace", is_flag=True, help="Every APDU to standard error (masked).")
def read_command(
    reader_path: str | None,
    config_path: str | None,
    timeout: float | None,
    no_gpo: bool,
    as_json: bool,
    trace: bool,
) -> None:
    """Show what a card reveals: applications, AID, label, PAN (masked), expiry and the
    data objects of every record, named.

    GET PROCESSING OPTIONS is sent (cards serve records only after it) for a zero
    amount: the card counts one transaction. --no-gpo avoids that.
    """
    config = load_terminal_config(config_path)
    raw, reader = prepare_reader(reader_path, trace)
    try:
        _wait(reader, timeout)
        reading = read_card(reader, config, gpo=not no_gpo)
    except ReaderError as exc:
        raise ReaderFailure(f"{raw.path}: {exc}") from exc
    finally:
        reader.close()
    summary = reading.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for app in summary["applications"]:
        click.echo(f"Application {app['aid']}  {app['label']}")
        click.echo(f"  priority {app['priority'] or '-'}, kernel id {app['kernel_id'] or '-'}")
        click.echo(f"  PAN {app['pan'] or '-'}, expiry {app['expiry'] or '-'}")
        if app["gpo"]:
            click.echo(f"  GET PROCESSING OPTIONS ({app['gpo_sw']}):")
            _print_objects(app["gpo"], "    ")
        for record in app["records"]:
            click.echo(f"  Record SFI {record['sfi']} #{record['record']} ({record['sw']}):")
            _print_objects(record["objects"], "    ")
        for problem in app["problems"]:
            click.echo(f"  problem: {problem}")
    for problem in summary["problems"]:
        click.echo(f"problem: {problem}")
    click.echo(f"{summary['apdus']} APDUs", err=True)


_TYPES = {**TRANSACTION_TYPES, "cash": TRANSACTION_TYPES["cash_advance"]}


@cli.command("pay")
@click.option(
    "--reader",
    "reader_path",
    envvar=READER_ENV,
    metavar="PATH",
    help=f"Reader path (see `terminal readers`); default ${READER_ENV}, else the first one.",
)
@click.option("--amount", required=True, metavar="AMOUNT", help="Amount, e.g. 12.34.")
@click.option("--other-amount", default="0", metavar="AMOUNT", help="Cashback amount.")
@click.option(
    "--currency", metavar="CODE", help="ISO 4217 code or number (EUR, 978); default the terminal's."
)
@click.option(
    "--type",
    "txn_type",
    type=click.Choice(sorted(_TYPES)),
    default="purchase",
    show_default=True,
    help="Transaction type (9C).",
)
@click.option("--config", "config_path", metavar="FILE", help="Terminal configuration (JSON).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S", help="Wait S s at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option("--trace", is_flag=True, help="Every APDU and kernel step to standard error.")
@click.option("--issuer", "issuer_url", envvar="TAPSTACK_ISSUER_URL", metavar="URL",
              help="Issuer service to go online to (http://HOST:PORT).")  # fmt: skip
@click.option("--terminal-id", envvar="TAPSTACK_TERMINAL_ID", metavar="ID",
              help="This terminal's id at the issuer.")  # fmt: skip
@click.option("--terminal-key", envvar="TAPSTACK_TERMINAL_KEY", metavar="KEY",
              help="This terminal's credential (env TAPSTACK_TERMINAL_KEY).")  # fmt: skip
def pay_command(
    reader_path: str | None,
    amount: str,
    other_amount: str,
    currency: str | None,
    txn_type: str,
    config_path: str | None,
    timeout: float | None,
    as_json: bool,
    trace: bool,
    issuer_url: str | None = None,
    terminal_id: str | None = None,
    terminal_key: str | None = None,
) -> None:
    """Run one contactless transaction to its outcome.

    There is no issuer connection yet: an online request ends here, and the
    authorisation request (ISO 8583 field 55 data, track 2 masked) is printed.
    Exit code 0 for approved or online request, 5 for declined, ended or try again.
    """
    if issuer_url and not (terminal_id and terminal_key):
        raise click.BadParameter("--issuer needs --terminal-id and --terminal-key")
    config = load_terminal_config(config_path)
    try:
        cur = currency_by_code(currency if currency else config.currency)
        minor = parse_amount(amount, cur.exponent)
        other = parse_amount(other_amount, cur.exponent)
        transaction = Transaction(minor, other, currency=cur.code if currency else None,
                                  type=_TYPES[txn_type])  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    raw, reader = prepare_reader(reader_path, trace)
    steps = (lambda line: click.echo(f"  kernel: {line}", err=True)) if trace else None
    entry = EntryPoint(config, trace=steps)
    try:
        _wait(reader, timeout)
        result = entry.run(reader, transaction, wait=False)
    except ReaderError as exc:
        raise ReaderFailure(f"{raw.path}: {exc}") from exc
    finally:
        reader.close()
    signal_outcome(raw.feedback, result.outcome.label)
    summary = result.summary()
    summary["amount"] = f"{minor / 10**cur.exponent:.{cur.exponent}f} {cur.alpha}"
    if issuer_url and terminal_id and terminal_key and result.outcome is Outcome.ONLINE_REQUEST:
        _go_online(summary, result, issuer_url, terminal_id, terminal_key, as_json)
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_result(summary, result)
    if result.outcome not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        why = "; ".join(result.reasons) or result.outcome.label
        raise NotCompleted(f"{result.outcome.label}: {why}")


def _go_online(
    summary: dict[str, Any],
    result: TransactionResult,
    url: str,
    terminal_id: str,
    terminal_key: str,
    as_json: bool,
) -> None:
    """Send the online request to the issuer and print the final outcome."""
    from hostlink import HostClient, HostError

    try:
        with HostClient(url, terminal_id, terminal_key) as host:
            final = host.authorise(result.authorisation_data, result.track2)
    except HostError as exc:  # refused (401: wrong terminal id or key) or a bad request
        raise ConfigFailure(str(exc)) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    summary["online"] = final.to_json()
    summary["outcome"] = "approved" if final.approved else "declined"
    # The cardholder now sees the issuer's answer (Book A §9.4: 03 / 07).
    shown = UiMessage.APPROVED if final.approved else UiMessage.NOT_AUTHORISED
    summary["message"] = shown.text
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_result(summary, result)
        reason = f" ({final.reason})" if final.reason else ""
        click.echo(f"ONLINE {summary['outcome'].upper()}: {final.response_code}{reason}")
        click.echo(f"  transaction {final.transaction_id}, ARPC {final.arpc.hex().upper()}")
    if not final.approved:
        raise NotCompleted(f"declined by the issuer: {final.response_code} {final.reason}")


def _print_result(summary: dict[str, Any], result: TransactionResult) -> None:
    click.echo(f"{summary['outcome'].upper()}: {summary['message']}")
    click.echo(f"  amount     {summary['amount']}")
    if summary["aid"]:
        click.echo(f"  application {summary['aid']} {summary['label']} ({summary['kernel']})")
    if summary["pan"]:
        token = " (token)" if summary["token"] else ""
        click.echo(f"  card       {summary['pan']}{token}, reference {summary['card_reference']}")
    click.echo(f"  CVM        {summary['cvm']}; ODA {summary['oda']} {summary['oda_method']}")
    if result.online_pin_required:
        click.echo("  online PIN required: the application must ask for the PIN")
    click.echo(f"  TVR        {summary['tvr']}")
    for reason in summary["reasons"]:
        click.echo(f"  reason     {reason}")
    timing = ", ".join(f"{k} {v:.1f} ms" for k, v in summary["timings_ms"].items())
    click.echo(f"  {summary['apdus']} APDUs; {timing}")
    if result.authorisation_data:
        click.echo("Authorisation request (field 55, masked where sensitive):")
        click.echo("\n".join("  " + line for line in dump(result.authorisation_data).splitlines()))
        click.echo(f"  57 track 2 equivalent data: {summary['track2']}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="terminal")
