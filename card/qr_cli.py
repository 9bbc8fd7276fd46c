"""``card qr`` and ``card pay-qr``: the phone wallet's two faces of paying by QR code
(:mod:`card.wallet`).

- ``card qr PROFILE`` shows a one-time consumer-presented code (EMV QRCPS-CPM) for the
  till to scan, drawn in the terminal in Unicode half blocks (as a phone's screen shows
  it) and, with ``--png``, as an image. Its cryptogram is stamped with the time it was
  made: the issuer refuses it :data:`emvwire.qr.tapstack.CODE_LIFETIME` later, and
  refuses it used twice (its ATC). The code's text carries the token's track 2, so it
  is printed only with ``--text`` (for a scanner's stand-in: a pipe into ``terminal
  retail``), never in ``--json``.
- ``card pay-qr PROFILE (--text PAYLOAD | --image FILE)`` pays a merchant's code
  (EMV QRCPS-MPM; an image is read with zxing-cpp): it decodes the code strictly,
  shows the merchant **as the issuer knows it** (looked up by the terminal id of the
  code's ``org.tapstack`` account, so a tampered or look-alike code shows who would
  really be paid), takes a dynamic code's amount or asks for one (``--amount``), then
  sends the card's cryptogram for that amount to the issuer (:class:`hostlink.WalletClient`).

The wallet authenticates as a terminal does: its id and credential (``--wallet-id``,
``--wallet-key``) and its TLS client certificate (``--cert``, ``--cert-key``), both
from ``issuer wallet add``. Exit codes: 2 usage or a file, 5 not paid (declined by the
issuer, or a code the wallet refuses), 7 issuer unreachable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from card.state import default_state_path

if TYPE_CHECKING:  # imported when a command runs, not for --help
    from card.wallet import Wallet
    from emvwire.qr.mpm import MerchantPresentedCode

__all__ = ["NotPaid", "pay_qr", "qr"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class NotPaid(click.ClickException):
    """The issuer declined, or the wallet refused the code (exit code 5)."""

    exit_code = 5


class IssuerUnreachable(click.ClickException):
    """No answer from the issuer (exit code 7)."""

    exit_code = 7


def _wallet(profile: Path, state_dir: Path | None) -> Wallet:
    """The wallet of the phone profile, its counters in the state folder."""
    from card.emv import EmvCard
    from card.wallet import Wallet, WalletError
    from emvwire.profile import ProfileError

    try:
        card = EmvCard.from_file(profile, state_path=default_state_path(profile, state_dir))
        return Wallet(card)
    except ProfileError as exc:
        raise click.BadParameter(f"{profile}: {exc}", param_hint="PROFILE") from None
    except WalletError as exc:
        raise click.BadParameter(str(exc), param_hint="PROFILE") from None


def _state_dir_option(command: Any) -> Any:
    return click.option(
        "--state-dir", type=click.Path(file_okay=False, path_type=Path),
        help="Folder of the counters files (as `card serve` takes it).",
    )(command)  # fmt: skip


@click.command("qr", context_settings=CONTEXT)
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--amount",
    metavar="AMOUNT",
    help="Make the code for this amount only (e.g. 12.50; default: any amount).",
)
@click.option(
    "--png",
    "png_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the code as a PNG image.",
)
@click.option(
    "--text",
    "show_text",
    is_flag=True,
    help="Print the code's text (Base64; it carries the token's track 2) instead of drawing it.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (never the code's text).")
@_state_dir_option
def qr(
    profile: Path,
    amount: str | None,
    png_file: Path | None,
    show_text: bool,
    as_json: bool,
    state_dir: Path | None,
) -> None:
    """Show a one-time consumer-presented QR code of the phone of PROFILE, for a till to
    scan (EMV QRCPS-CPM): a fresh ATC and application cryptogram from the same
    application and keys as the phone's taps, good for two minutes."""
    from card.wallet import WalletError
    from emvwire.currency import format_amount, parse_amount
    from emvwire.errors import QrError
    from emvwire.qr import image

    wallet = _wallet(profile, state_dir)
    try:
        minor = None if amount is None else parse_amount(amount, wallet.currency.exponent)
        made = wallet.consumer_code(minor)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    except WalletError as exc:
        raise NotPaid(str(exc)) from None
    if png_file is not None:
        try:
            png_file.write_bytes(image.png(made.text))
        except (OSError, QrError) as exc:
            raise click.FileError(str(png_file), str(exc)) from None
    what = "any amount" if made.amount is None else format_amount(made.amount, made.currency)
    until = made.valid_until.strftime("%H:%M:%S UTC")
    if as_json:
        click.echo(json.dumps({**made.to_json(), "png": png_file and str(png_file)}))
    elif show_text:
        click.echo(made.text)
    else:
        click.echo(image.terminal(made.text), nl=False)
    click.echo(
        f"code for {what}: token {made.token}, ATC {made.atc}, valid until {until}", err=True
    )


def _read_code(text: str | None, image_file: Path | None) -> str:
    """The code's text, given or read from an image."""
    from emvwire.errors import QrError
    from emvwire.qr import image

    if (text is None) == (image_file is None):
        raise click.UsageError("give --text PAYLOAD or --image FILE")
    if text is not None:
        return text.strip()
    assert image_file is not None
    try:
        return image.read(image_file.read_bytes())
    except OSError as exc:
        raise click.FileError(str(image_file), exc.strerror or str(exc)) from None
    except QrError as exc:
        raise NotPaid(f"{image_file}: {exc.message}") from None


def _decode(text: str) -> MerchantPresentedCode:
    from emvwire.errors import QrError
    from emvwire.qr.mpm import MerchantPresentedCode

    try:
        return MerchantPresentedCode.decode(text)
    except QrError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        raise NotPaid(f"not a valid merchant code{where}: {exc.message}; nothing paid") from None


@click.command("pay-qr", context_settings=CONTEXT)
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text", "payload", metavar="PAYLOAD", help="The merchant code's text.")
@click.option(
    "--image",
    "image_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A picture of the merchant's code (PNG, JPEG: a camera's).",
)
@click.option(
    "--amount",
    metavar="AMOUNT",
    help="What to pay on a static code (asked at a terminal when absent).",
)
@click.option("--yes", is_flag=True, help="Pay without asking to confirm.")
@click.option(
    "--issuer",
    "issuer_url",
    envvar="TAPSTACK_ISSUER_URL",
    metavar="URL",
    help="The issuer service (https://HOST:PORT; env TAPSTACK_ISSUER_URL).",
)
@click.option(
    "--wallet-id",
    envvar="TAPSTACK_WALLET_ID",
    metavar="ID",
    help="This wallet's id at the issuer (`issuer wallet add`; env TAPSTACK_WALLET_ID).",
)
@click.option(
    "--wallet-key",
    envvar="TAPSTACK_WALLET_KEY",
    metavar="KEY",
    help="This wallet's credential (env TAPSTACK_WALLET_KEY).",
)
@click.option(
    "--issuer-ca",
    envvar="TAPSTACK_ISSUER_CA",
    metavar="FILE",
    help="CA the issuer's certificate is verified with (its tls/server-ca.crt; "
    "env TAPSTACK_ISSUER_CA).",
)
@click.option(
    "--cert",
    envvar="TAPSTACK_WALLET_CERT",
    metavar="FILE",
    help="This wallet's TLS client certificate (env TAPSTACK_WALLET_CERT).",
)
@click.option(
    "--cert-key",
    envvar="TAPSTACK_WALLET_CERT_KEY",
    metavar="FILE",
    help="Its private key (env TAPSTACK_WALLET_CERT_KEY).",
)
@click.option(
    "--dev-plain-http",
    is_flag=True,
    envvar="TAPSTACK_DEV_PLAIN_HTTP",
    help="Local development only: accept an http:// URL, credentials in clear.",
)
@click.option(
    "--host-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    metavar="S",
    help="Wait S s for each issuer answer.",
)
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON on stdout.")
@_state_dir_option
def pay_qr(
    profile: Path,
    payload: str | None,
    image_file: Path | None,
    amount: str | None,
    yes: bool,
    issuer_url: str | None,
    wallet_id: str | None,
    wallet_key: str | None,
    issuer_ca: str | None,
    cert: str | None,
    cert_key: str | None,
    dev_plain_http: bool,
    host_timeout: float,
    as_json: bool,
    state_dir: Path | None,
) -> None:
    """Pay a merchant-presented QR code (EMV QRCPS-MPM) with the phone of PROFILE: the
    merchant shown as the issuer knows it, the amount the code's (dynamic) or the one
    given (static), the card's cryptogram sent to the issuer."""
    from card.wallet import WalletError
    from emvwire.currency import currency_by_code, format_amount, parse_amount
    from emvwire.errors import QrError
    from emvwire.pki import PkiError
    from emvwire.qr.tapstack import amount_minor, ans_text, merchant_id
    from emvwire.tls import ClientTls
    from hostlink import UNREACHABLE, HostError, WalletClient

    code = _decode(_read_code(payload, image_file))
    text = code.encode()
    merchant = merchant_id(code)
    if merchant is None:
        raise NotPaid("the code names no tapstack merchant (no org.tapstack account); nothing paid")
    if not (issuer_url and wallet_id and wallet_key):
        raise click.UsageError(
            "paying goes online: give --issuer, --wallet-id and --wallet-key (or "
            "TAPSTACK_ISSUER_URL, TAPSTACK_WALLET_ID, TAPSTACK_WALLET_KEY)"
        )
    try:
        client = WalletClient(
            issuer_url, wallet_id, wallet_key, tls=ClientTls(issuer_ca, cert, cert_key,
            dev_plain_http), timeout=host_timeout,
        )  # fmt: skip
    except (ValueError, PkiError) as exc:
        raise click.BadParameter(str(exc), param_hint="--issuer") from None
    with client:
        try:
            known = client.merchant(merchant)
        except HostError as exc:
            if exc.status == 404:
                raise NotPaid(f"the issuer knows no merchant {merchant}: nothing paid") from None
            raise click.ClickException(f"the issuer refused: {exc}") from None
        except UNREACHABLE:
            raise IssuerUnreachable("issuer unreachable: nothing paid") from None
        currency = currency_by_code(known.currency)
        place = f"{known.name}, {known.city or '?'} (MCC {known.mcc}, {known.country})"
        click.echo(f"merchant  {place}  [{known.id}]", err=True)
        said = (code.merchant_name, code.merchant_city)
        if said[0].casefold() != ans_text(known.name, 25).casefold() or (
            known.city and said[1].casefold() != ans_text(known.city, 15).casefold()
        ):
            click.echo(
                f"warning   the code says {said[0]!r}, {said[1]!r}: not the issuer's "
                "record of this merchant",
                err=True,
            )
        if code.currency != currency.number:
            raise NotPaid(
                f"the code asks currency {code.currency}, the merchant's is {known.currency}: "
                "nothing paid"
            )
        try:
            due = amount_minor(code, currency)
            if due is None:
                due = _ask_amount(amount, currency.exponent)
            elif amount is not None and parse_amount(amount, currency.exponent) != due:
                raise NotPaid(f"the code is for {code.amount} {currency.alpha}: nothing paid")
        except (ValueError, QrError) as exc:
            raise click.BadParameter(str(exc), param_hint="--amount") from None
        shown = format_amount(due, currency)
        if not yes and sys.stdin.isatty() and not click.confirm(f"Pay {shown} to {known.name}?"):
            raise NotPaid("not confirmed: nothing paid")
        wallet = _wallet(profile, state_dir)
        try:
            icc_data, track2 = wallet.payment(due, currency, code.country)
        except WalletError as exc:
            raise NotPaid(str(exc)) from None
        outcome = client.pay(text, icc_data, track2)
    report = {**outcome.to_json(), "merchant": known.id, "amount": due, "currency": currency.alpha}
    if as_json:
        click.echo(json.dumps(report))
    if not outcome.answered:
        raise IssuerUnreachable(
            f"no answer from the issuer (request {outcome.request_id}): pay again with the "
            "same code; it is never charged twice"
        )
    if not outcome.approved:
        raise NotPaid(
            f"declined: {outcome.reason} (response code {outcome.response_code}); nothing paid"
        )
    if not as_json:
        click.echo(f"APPROVED  {shown} to {known.name}  (transaction {outcome.transaction_id}, "
                   f"{outcome.card})")  # fmt: skip


def _ask_amount(amount: str | None, exponent: int) -> int:
    """The amount to pay on a static code: given, or asked at a terminal."""
    from emvwire.currency import parse_amount

    if amount is None:
        if not sys.stdin.isatty():
            raise click.UsageError("a static code: give --amount")
        amount = click.prompt("Amount to pay", type=str, err=True)
    due = parse_amount(str(amount), exponent)
    if due <= 0:
        raise ValueError("an amount above zero")
    return due
