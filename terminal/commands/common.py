"""What the ``terminal`` commands share: the reader and configuration options'
helpers, the issuer check made before a card is asked for, and the failures that are
each command's exit (:class:`clikit.errors.ToolFailure` subclasses with the exit codes of
:mod:`clikit.exits`: :class:`ConfigFailure` 10, :class:`ReaderFailure` 9,
:class:`NoCardEvent` and :class:`CardFailure` 8, :class:`NotCompleted` 5 or 8,
:class:`HostUnreachableFailure` 7, :class:`HostRefusedFailure` 6), and the options and
failures of the ``terminal gate`` commands. Every message says what to do next."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from clikit.errors import ToolFailure
from clikit.exits import Exit
from emvwire.currency import Currency, currency_by_code, parse_amount
from terminal.kernel.config import (
    TRANSACTION_TYPES,
    ConfigError,
    TerminalConfig,
    default_config,
    load_config,
)
from terminal.readers import (
    CommunicationError,
    NoCardError,
    Reader,
    ReaderError,
    open_reader,
    scan_readers,
)

if TYPE_CHECKING:  # imported where used: a command loads only what it runs
    from emvwire.tls import ClientTls
    from hostlink import HostClient, Iso8583Client
    from terminal.kernel.transaction import Transaction

__all__ = [
    "READER_ENV",
    "TRANSACTION_TYPE_NAMES",
    "CardFailure",
    "CardNotCompleted",
    "ConfigFailure",
    "HostRefusedFailure",
    "HostUnreachableFailure",
    "NoCardEvent",
    "NotCompleted",
    "ReaderFailure",
    "check_issuer",
    "client_tls",
    "dev_plain_http_option",
    "gate_failures",
    "gate_options",
    "host_client",
    "issuer_options",
    "load_terminal_config",
    "not_completed",
    "open_cli_reader",
    "optional_transaction_options",
    "prepare_reader",
    "reader_failure",
    "reader_option",
    "transaction_from_options",
    "transaction_options",
    "wait_for_card",
]

#: Environment variable naming the reader when ``--reader`` is not given.
READER_ENV = "TAPSTACK_READER"


class ReaderFailure(ToolFailure):
    """No reader, a reader that cannot be opened, or one that failed (exit 9)."""

    exit_code = Exit.READER


class CardFailure(ToolFailure):
    """The card left the field or stopped answering during the exchange (exit 8)."""

    exit_code = Exit.CARD


class NoCardEvent(ToolFailure):
    """``--timeout`` passed without the awaited card event (exit 8)."""

    exit_code = Exit.CARD


class ConfigFailure(ToolFailure):
    """A terminal configuration, tariff or state folder that cannot be read or is
    invalid (exit 10)."""

    exit_code = Exit.CONFIG


class NotCompleted(ToolFailure):
    """The transaction was declined (exit 5), or ended without a decision
    (:class:`CardNotCompleted`, :func:`not_completed`)."""

    exit_code = Exit.DECLINED


class CardNotCompleted(NotCompleted):
    """The transaction ended without a decision: present the card again, or try
    another card (exit 8)."""

    exit_code = Exit.CARD


class HostUnreachableFailure(ToolFailure):
    """The issuer could not be reached: nothing charged or changed (exit 7)."""

    exit_code = Exit.UNREACHABLE


class HostRefusedFailure(ToolFailure):
    """The issuer refused this terminal: its credential or TLS certificate (exit 6)."""

    exit_code = Exit.REFUSED


def not_completed(outcome: str, reasons: Sequence[str], *, declined: bool) -> NotCompleted:
    """The failure of a transaction that ended ``outcome`` (its label) for
    ``reasons``: a decline (exit 5) or, when it ``declined`` not, a transaction the
    card could not complete (exit 8), with what to do next."""
    why = "; ".join(reasons) or outcome
    if declined:
        return NotCompleted(f"{outcome}: {why}; the card was not charged")
    return CardNotCompleted(f"{outcome}: {why}; present the card again, or try another card")


def reader_failure(path: str, exc: ReaderError) -> ReaderFailure | CardFailure:
    """The failure of a reader error during an exchange: the card left or stopped
    answering (:class:`CardFailure`), else the reader failed (:class:`ReaderFailure`)."""
    if isinstance(exc, CommunicationError):
        return CardFailure(f"{path}: {exc}; present the card again and hold it still")
    return ReaderFailure(f"{path}: {exc}; check the reader (`terminal readers` lists them)")


def open_cli_reader(path: str | None, *, read_uid: bool = False) -> Reader:
    """The reader at ``path``, or the first one found; :class:`ReaderFailure` with the
    reason otherwise (every command that takes ``--reader``). ``read_uid``: a PC/SC
    reader asks each card's UID (``terminal watch``)."""
    if path is None:
        scan = scan_readers()
        if not scan.readers:
            why = "; ".join(scan.problems) or "no driver found one"
            raise ReaderFailure(
                f"no reader found ({why}); attach one, or name one with --reader PATH"
            )
        path = scan.readers[0].path
    options = {"read_uid": True} if read_uid and path.startswith("pcsc:") else {}
    try:
        return open_reader(path, **options)
    except ReaderError as exc:
        raise ReaderFailure(
            f"cannot open reader {path!r}: {exc}; check the path (`terminal readers` lists "
            "the readers attached)"
        ) from exc


def load_terminal_config(path: str | None, *, ca_keys: bool = True) -> TerminalConfig:
    """The terminal configuration of ``--config`` (the built-in default without one),
    without its CA keys unless ``ca_keys`` (:func:`terminal.kernel.config.parse_config`);
    :class:`ConfigFailure` with the reason when it does not load."""
    try:
        if path is None:
            return default_config(ca_keys=ca_keys)
        return load_config(path, ca_keys=ca_keys)
    except ConfigError as exc:
        raise ConfigFailure(
            f"configuration: {exc}; fix the file, or leave --config out for the built-in one"
        ) from exc


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
        raise NoCardEvent(
            f"no card at {reader.path} within {timeout:g} s: present a card, or wait longer "
            "with --timeout"
        ) from exc


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


def check_issuer(host: HostClient | Iso8583Client, url: str, terminal_id: str) -> None:
    """Check the issuer before a card is asked for (its reachability, this terminal's
    credential and certificate: :meth:`hostlink.HostClient.check`), so that a wrong URL
    or key costs no tap (the card's counter moves at every tap).
    :class:`HostUnreachableFailure` or :class:`HostRefusedFailure` saying what to fix."""
    from hostlink import HostError, HostRefusedError, HostTlsError, HostUnreachableError

    untouched = "no card was asked for, nothing was charged"
    try:
        host.check()
    except HostTlsError as exc:
        raise HostRefusedFailure(
            f"TLS with the issuer at {url} failed ({exc}); {untouched}: check --issuer-ca "
            "(the issuer's tls/server-ca.crt), --cert and --cert-key (`issuer terminal add` "
            "wrote them)"
        ) from None
    except HostUnreachableError:
        raise HostUnreachableFailure(
            f"the issuer at {url} is unreachable; {untouched}: check --issuer and that the "
            "issuer runs (`issuer serve`)"
        ) from None
    except HostRefusedError as exc:
        raise HostRefusedFailure(
            f"the issuer at {url} refused terminal {terminal_id} ({exc}); {untouched}: "
            "check --terminal-id, --terminal-key and --cert (`issuer terminal add` gave "
            "them; `issuer terminal list` shows whether it is active)"
        ) from None
    except HostError as exc:
        raise HostRefusedFailure(
            f"the issuer at {url} refused this terminal's first request ({exc}); "
            f"{untouched}: check the terminal's settings at the issuer"
        ) from None


#: Transaction types (9C) by the names ``--type`` takes (``cash`` is a cash advance).
TRANSACTION_TYPE_NAMES: Final = {**TRANSACTION_TYPES, "cash": TRANSACTION_TYPES["cash_advance"]}


def transaction_options(command: F) -> F:
    """``--amount``, ``--other-amount``, ``--currency`` and ``--type``: the transaction
    of ``terminal pay`` and ``terminal entry-point``
    (:func:`transaction_from_options`)."""
    return _transaction_options(command, amount_required=True)


def optional_transaction_options(command: F) -> F:
    """:func:`transaction_options` with ``--amount`` optional: the command gets
    ``amount=None`` when none is given (``terminal entry-point --case`` and Autorun)."""
    return _transaction_options(command, amount_required=False)


def _transaction_options(command: F, *, amount_required: bool) -> F:
    amount_help = (
        "Amount, e.g. 12.34." if amount_required else "Amount, e.g. 12.34 (see --autorun)."
    )
    options = [
        click.option("--amount", required=amount_required, metavar="AMOUNT", help=amount_help),
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
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--currency") from None
    values = []
    for hint, text in (("--amount", amount), ("--other-amount", other_amount)):
        try:
            values.append(parse_amount(text, cur.exponent))
        except ValueError as exc:
            raise click.BadParameter(f"{exc} ({cur.alpha})", param_hint=hint) from None
    try:
        transaction = Transaction(
            values[0], values[1], currency=cur.code if currency else None,
            type=TRANSACTION_TYPE_NAMES[txn_type],
        )  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
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
                     help="Give up (exit code 8) when no card comes, or a card stays, "
                     "for S s."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per tap and line."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@contextlib.contextmanager
def gate_failures(reader: Reader) -> Iterator[None]:
    """Around a gate's loop on ``reader``: Ctrl-C stops it ("stopped"); no card, or a
    card that stays, within ``--timeout`` is :class:`NoCardEvent` (exit 8); any other
    reader error :func:`reader_failure`'s."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except (NoCardError, TimeoutError) as exc:
        raise NoCardEvent(f"{exc}: present a card, or wait longer with --timeout") from exc
    except ReaderError as exc:
        raise reader_failure(reader.path, exc) from exc
