"""The issuer's QR code commands (:mod:`issuer.domain.qr`): a merchant's static code
(``issuer terminal qr``), a terminal's city and currency (``issuer terminal set``), a
token's channels (``issuer token channels``) and the phone wallets allowed to pay
merchant-presented codes (``issuer wallet add | list | revoke``).

A wallet is registered as a terminal is: its id and credential are printed once (only
the credential's hash is kept), and it gets a TLS client certificate of the issuer's
CA naming ``urn:tapstack:wallet:<id>``, for the key of ``--csr`` or a new key written
beside it. ``card pay-qr`` presents both.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from emvwire.pki import CLIENT_DAYS, PkiError, hex_pairs
from emvwire.tls import SERVER_CA
from issuer.commands.common import (
    BadArgumentError,
    CliState,
    ConfigCliError,
    certificate_options,
    emit,
    json_option,
    pass_state,
    table,
)
from issuer.pki import TLS_DIR, tls_folder

if TYPE_CHECKING:
    from issuer.domain.qr import QrPayments

__all__ = ["terminal_qr", "terminal_set", "token_channels", "wallet"]


def _payments(state: CliState) -> QrPayments:
    from issuer.domain.authorise import Authoriser
    from issuer.domain.qr import QrPayments

    app = state.app()
    return QrPayments(app, Authoriser(app))


@click.command("qr")
@click.argument("terminal_id")
@click.option("--png", "png_file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Also write the code as a PNG image.")  # fmt: skip
@click.option("--city", help="The merchant's city on the code, if the terminal has none.")
@click.option("--scale", type=click.IntRange(1, 40), default=8, show_default=True,
              help="PNG pixels per module.")  # fmt: skip
@json_option
@pass_state
def terminal_qr(
    state: CliState,
    terminal_id: str,
    png_file: Path | None,
    city: str | None,
    scale: int,
    as_json: bool,
) -> None:
    """A merchant's static "pay me" QR code (EMV QRCPS-MPM, point of initiation 11): a
    phone pays it for the amount its holder types. It names the terminal in merchant
    account information 26 (GUI org.tapstack) and carries the terminal's merchant name,
    MCC, country, currency and city as the issuer records them. Printed as text and
    drawn in the terminal (Unicode half blocks); --png writes the image too."""
    from emvwire.qr import image
    from issuer.domain.qr import terminal_code

    terminal = state.app().service.terminal(terminal_id)
    text = terminal_code(terminal, city=city).encode()
    if png_file is not None:
        try:
            png_file.write_bytes(image.png(text, scale=scale))
        except OSError as exc:
            raise ConfigCliError(f"{png_file}: {exc.strerror or exc}") from None
    if as_json:
        emit({"terminal": terminal.id, "payload": text, "png": png_file and str(png_file)}, True)
        return
    # The code names the merchant only (no card data): shown as it is, not scrubbed.
    click.echo(image.terminal(text), nl=False)
    click.echo(text)
    if png_file is not None:
        click.echo(f"written to {png_file}", err=True)


@click.command("set")
@click.argument("terminal_id")
@click.option("--city", help="The merchant's city, on its QR codes.")
@click.option("--currency", help="The terminal's currency (ISO 4217, e.g. EUR), on its codes.")
@json_option
@pass_state
def terminal_set(
    state: CliState, terminal_id: str, city: str | None, currency: str | None, as_json: bool
) -> None:
    """Record a terminal's city and currency for its QR codes."""
    if city is None and currency is None:
        raise BadArgumentError("give --city, --currency or both")
    changed = _payments(state).set_terminal_place(terminal_id, city=city, currency=currency)
    emit(
        changed.to_json(),
        as_json,
        f"{changed.id}: {changed.merchant}, {changed.city or '(no city)'}, "
        f"{changed.currency or '(the country currency)'}",
    )


@click.command("channels")
@click.argument("token_id")
@click.argument("channels", nargs=-1, type=click.Choice(["contactless", "qr_cpm", "qr_mpm"]))
@click.option("--all", "every", is_flag=True, help="Allow every channel again.")
@json_option
@pass_state
def token_channels(
    state: CliState, token_id: str, channels: tuple[str, ...], every: bool, as_json: bool
) -> None:
    """Restrict a token to CHANNELS: contactless (taps), qr_cpm (its phone's code
    scanned by a till), qr_mpm (its phone paying a merchant's code); --all lifts the
    restriction. A payment on another channel is declined TOKEN_DOMAIN_VIOLATION."""
    if every == bool(channels):
        raise BadArgumentError("give CHANNELS or --all")
    changed = _payments(state).set_token_channels(token_id, None if every else channels)
    allowed = ", ".join(changed.channels) if changed.channels is not None else "every channel"
    emit(changed.to_json(), as_json, f"{changed.id} pays on: {allowed}")


@click.group()
def wallet() -> None:
    """Phone wallets allowed to pay merchant-presented QR codes: add, list, revoke."""


@wallet.command("add")
@click.option("--name", required=True, help="A name for people (whose phone).")
@certificate_options("wallet", "wallets", CLIENT_DAYS)
@json_option
@pass_state
def wallet_add(
    state: CliState,
    name: str,
    csr: IO[bytes] | None,
    cert_dir: Path | None,
    days: int,
    as_json: bool,
) -> None:
    """Register a phone wallet; prints its id and credential ONCE (only a hash is kept),
    and issues its TLS client certificate (for the key of --csr, or a new key written
    next to it). `card pay-qr` presents both."""
    app = state.app()
    folder = tls_folder(state.home_dir, app.keys)
    added, credential = _payments(state).add_wallet(name)
    try:
        issued = folder.issue_client(
            "wallet", added.id, csr=csr.read() if csr is not None else None, days=days
        )
        target = cert_dir or state.home_dir / "wallets"
        cert: dict[str, Any] = issued.write(target, added.id)
    except PkiError as exc:
        raise BadArgumentError(f"certificate: {exc}") from None
    except OSError as exc:
        raise ConfigCliError(f"certificate of {added.id} not written: {exc}") from None
    cert["issuer_ca_file"] = str(state.home_dir / TLS_DIR / SERVER_CA)
    lines = [
        f"wallet      {added.id}",
        f"credential  {credential}",
        "(the credential is shown once: only its hash is kept)",
        f"certificate {hex_pairs(cert['serial'])} until {cert['not_after'][:10]}",
        f"  {cert['cert_file']}",
    ]
    if "key_file" in cert:
        lines.append(f"  {cert['key_file']}  (its key, mode 0600: move it to the phone)")
    lines.append(f"  the wallet verifies the issuer with {cert['issuer_ca_file']}")
    emit({**added.to_json(), "credential": credential, "certificate": cert}, as_json, lines)


@wallet.command("list")
@json_option
@pass_state
def wallet_list(state: CliState, as_json: bool) -> None:
    """Every wallet (never a credential)."""
    found = _payments(state).wallets()
    emit(
        [w.to_json() for w in found],
        as_json,
        table(
            ["wallet", "name", "status", "created"],
            [[w.id, w.name, w.status.value, w.created_at[:19]] for w in found],
        ),
    )


@wallet.command("revoke")
@click.argument("wallet_id")
@json_option
@pass_state
def wallet_revoke(state: CliState, wallet_id: str, as_json: bool) -> None:
    """Refuse a wallet's credential, and so each of its certificates, from now on."""
    revoked = _payments(state).revoke_wallet(wallet_id)
    emit(revoked.to_json(), as_json, f"{revoked.id} is {revoked.status.value}")
