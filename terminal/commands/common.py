"""What the ``terminal`` commands share: the reader and configuration options'
helpers, and the failures that are each command's exit (click exceptions with their
exit codes: :class:`ConfigFailure` 2, :class:`ReaderFailure` 3, :class:`NoCardEvent` 4,
:class:`NotCompleted` 5), and the options and failures of the ``terminal gate``
commands."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from emvwire.currency import Currency, currency_by_code, parse_amount
from terminal.kernel.config import (
    TRANSACTION_TYPES,
    ConfigError,
    TerminalConfig,
    default_config,
    load_config,
)
from terminal.readers import NoCardError, Reader, ReaderError, open_reader, scan_readers

if TYPE_CHECKING:  # imported where used: a command loads only what it runs
    from emvwire.tls import ClientTls
    from hostlink import HostClient, Iso8583Client
    from terminal.kernel.transaction import Transaction

__all__ = [
    "READER_ENV",
    "TRANSACTION_TYPE_NAMES",
    "ConfigFailure",
    "NoCardEvent",
    "NotCompleted",
    "ReaderFailure",
    "client_tls",
    "dev_plain_http_option",
    "gate_failures",
    "gate_options",
    "host_client",
    "issuer_options",
    "load_terminal_config",
    "open_cli_reader",
    "prepare_reader",
    "reader_option",
    "transaction_from_options",
    "transaction_options",
    "wait_for_card",
]

#: Environment variable naming the reader when ``--reader`` is not given.
READER_ENV = "TAPSTACK_READER"


class ReaderFailure(click.ClickException):
    """No reader, a reader that cannot be opened, or one that failed (exit code 3)."""

    exit_code = 3


class NoCardEvent(click.ClickException):
    """``--timeout`` passed without the awaited card event (exit code 4)."""

    exit_code = 4


class ConfigFailure(click.ClickException):
    """A terminal configuration that cannot be read or is invalid (exit code 2)."""

    exit_code = 2


class NotCompleted(click.ClickException):
    """The transaction was declined, ended, or must be tried again (exit code 5)."""

    exit_code = 5


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


def load_terminal_config(path: str | None) -> TerminalConfig:
    """The terminal configuration of ``--config`` (the built-in default without one);
    :class:`ConfigFailure` with the reason when it does not load."""
    try:
        return default_config() if path is None else load_config(path)
    except ConfigError as exc:
        raise ConfigFailure(f"configuration: {exc}") from exc


def prepare_reader(reader_path: str | None, trace: bool) -> tuple[Reader, Reader]:
    """The reader opened, and the same traced to standard error with ``--trace`` (the
    tracing module is imported only then)."""
    reader = open_cli_reader(reader_path)
    if not trace:
        return reader, reader
    from terminal.readers.trace import text_sink, traced

    return reader, traced(reader, text_sink())


def wait_for_card(reader: Reader, timeout: float | None) -> None:
    """Ask for a card and wait ``timeout`` s at most (:class:`NoCardEvent`)."""
    click.echo(f"Present a card to {reader.path}", err=True)
    try:
        reader.wait_for_card(timeout)
    except NoCardError as exc:
        raise NoCardEvent(f"no card at {reader.path} within {timeout:g} s") from exc


F = TypeVar("F", bound=Callable[..., Any])


def reader_option(command: F) -> F:
    """``--reader PATH`` (env TAPSTACK_READER, else the first reader found)."""
    return click.option(
        "--reader", "reader_path", envvar=READER_ENV, metavar="PATH",
        help=f"Reader path (see `terminal readers`); default ${READER_ENV}, else the first.",
    )(command)  # fmt: skip


#: Variables of the TLS options: the CA the issuer's certificate is verified with, this
#: terminal's client certificate and key at the issuer, and local development in
#: plain HTTP.
ENV_ISSUER_CA: Final = "TAPSTACK_ISSUER_CA"
ENV_TERMINAL_CERT: Final = "TAPSTACK_TERMINAL_CERT"
ENV_TERMINAL_CERT_KEY: Final = "TAPSTACK_TERMINAL_CERT_KEY"
ENV_DEV_PLAIN_HTTP: Final = "TAPSTACK_DEV_PLAIN_HTTP"


def dev_plain_http_option(command: F) -> F:
    """``--dev-plain-http``: accept an ``http://`` URL, for local development only
    (env TAPSTACK_DEV_PLAIN_HTTP=1)."""
    return click.option(
        "--dev-plain-http", is_flag=True, default=None, envvar=ENV_DEV_PLAIN_HTTP,
        help="Local development only: accept an http:// URL, credentials in clear (env "
        f"{ENV_DEV_PLAIN_HTTP}=1).",
    )(command)  # fmt: skip


def issuer_options(command: F) -> F:
    """``--issuer``, ``--terminal-id`` and ``--terminal-key``: the issuer service and
    this terminal's credential there (env TAPSTACK_ISSUER_URL, TAPSTACK_TERMINAL_ID,
    TAPSTACK_TERMINAL_KEY); ``--issuer-ca``, ``--cert`` and ``--cert-key``: TLS with
    it (env TAPSTACK_ISSUER_CA, TAPSTACK_TERMINAL_CERT, TAPSTACK_TERMINAL_CERT_KEY;
    :func:`client_tls`), and ``--dev-plain-http``."""
    options = [
        click.option("--issuer", "issuer_url", envvar="TAPSTACK_ISSUER_URL", metavar="URL",
                     help="Issuer service (https://HOST:PORT; iso8583://HOST:PORT or "
                     "iso8583s://HOST:PORT its ISO 8583 listener; env TAPSTACK_ISSUER_URL)."),
        click.option("--terminal-id", envvar="TAPSTACK_TERMINAL_ID", metavar="ID",
                     help="This terminal's id at the issuer (env TAPSTACK_TERMINAL_ID)."),
        click.option("--terminal-key", envvar="TAPSTACK_TERMINAL_KEY", metavar="KEY",
                     help="This terminal's credential (env TAPSTACK_TERMINAL_KEY)."),
        click.option("--issuer-ca", envvar=ENV_ISSUER_CA, metavar="FILE",
                     help="CA (PEM) the issuer's certificate is verified with: the issuer's "
                     f"tls/server-ca.crt (env {ENV_ISSUER_CA}; default the system's)."),
        click.option("--cert", envvar=ENV_TERMINAL_CERT, metavar="FILE",
                     help="This terminal's TLS client certificate (PEM, `issuer terminal "
                     f"add`; env {ENV_TERMINAL_CERT})."),
        click.option("--cert-key", envvar=ENV_TERMINAL_CERT_KEY, metavar="FILE",
                     help=f"Its private key (PEM; env {ENV_TERMINAL_CERT_KEY})."),
        dev_plain_http_option,
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def client_tls(
    ca: str | None, cert: str | None, cert_key: str | None, dev_plain_http: bool | None
) -> ClientTls:
    """The TLS settings of a client's options (``--issuer-ca`` or ``--backoffice-ca``,
    ``--cert``, ``--cert-key``, ``--dev-plain-http``)."""
    from emvwire.tls import ClientTls

    return ClientTls(ca, cert, cert_key, bool(dev_plain_http))


def host_client(
    url: str,
    terminal_id: str,
    terminal_key: str,
    tls: ClientTls,
    *,
    timeout: float = 5.0,
) -> HostClient | Iso8583Client:
    """The issuer client of the options, by the URL's scheme (:func:`hostlink.connect`);
    ``click.BadParameter`` saying what is wrong with the URL (``http://`` or
    ``iso8583://`` without ``--dev-plain-http``) or the TLS files."""
    from hostlink import connect

    try:
        return connect(url, terminal_id, terminal_key, tls=tls, timeout=timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: Transaction types (9C) by the names ``--type`` takes (``cash`` is a cash advance).
TRANSACTION_TYPE_NAMES: Final = {**TRANSACTION_TYPES, "cash": TRANSACTION_TYPES["cash_advance"]}


def transaction_options(command: F) -> F:
    """``--amount``, ``--other-amount``, ``--currency`` and ``--type``: the transaction
    of ``terminal pay`` and ``terminal entry-point``
    (:func:`transaction_from_options`)."""
    options = [
        click.option("--amount", required=True, metavar="AMOUNT", help="Amount, e.g. 12.34."),
        click.option("--other-amount", default="0", metavar="AMOUNT", help="Cashback amount."),
        click.option("--currency", metavar="CODE",
                     help="ISO 4217 code or number (EUR, 978); default the terminal's."),
        click.option("--type", "txn_type", type=click.Choice(sorted(TRANSACTION_TYPE_NAMES)),
                     default="purchase", show_default=True, help="Transaction type (9C)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def transaction_from_options(
    config: TerminalConfig, amount: str, other_amount: str, currency: str | None, txn_type: str
) -> tuple[Transaction, Currency]:
    """The transaction of :func:`transaction_options`' values, with its currency (the
    terminal's unless ``--currency`` names another); ``click.BadParameter`` says what is
    wrong with an amount or a currency."""
    from terminal.kernel.transaction import Transaction

    try:
        cur = currency_by_code(currency if currency else config.currency)
        transaction = Transaction(
            parse_amount(amount, cur.exponent),
            parse_amount(other_amount, cur.exponent),
            currency=cur.code if currency else None,
            type=TRANSACTION_TYPE_NAMES[txn_type],
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return transaction, cur


def gate_options(command: F) -> F:
    """The options of every ``terminal gate`` command: ``--reader``, ``--config``,
    ``--home``, ``--taps``, ``--timeout`` and ``--json``."""
    options = [
        reader_option,
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
    card that stays, within ``--timeout`` is :class:`NoCardEvent` (exit
    code 4); any other reader error :class:`ReaderFailure` (3)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except (NoCardError, TimeoutError) as exc:
        raise NoCardEvent(str(exc)) from exc
    except ReaderError as exc:
        raise ReaderFailure(f"{reader.path}: {exc}") from exc
