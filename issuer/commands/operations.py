"""``issuer txn ...`` and ``issuer terminal ...`` (terminals, their credentials and TLS
client certificates)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from emvwire.pki import CLIENT_DAYS, PkiError, hex_pairs
from emvwire.tls import SERVER_CA, IssuedCertificate
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
from issuer.commands.qr import terminal_qr, terminal_set
from issuer.model.currency import format_amount
from issuer.pki import TLS_DIR, add_terminal, renew_terminal, tls_folder

__all__ = ["terminal", "txn"]


@click.group()
def txn() -> None:
    """Authorisation records (what the authorisation service wrote)."""


@txn.command("list")
@click.option("--card", "card_id", help="Only this card's (and its tokens').")
@click.option("--account", "account_id", help="Only this account's.")
@click.option("--terminal", "terminal_id", help="Only this terminal's.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_state
def txn_list(
    state: CliState,
    card_id: str | None,
    account_id: str | None,
    terminal_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Authorisations, newest first."""
    if sum(x is not None for x in (card_id, account_id, terminal_id)) > 1:
        raise click.UsageError("give at most one of --card, --account, --terminal")
    records = state.app().service.transactions(
        card_id=card_id, account_id=account_id, terminal_id=terminal_id, limit=limit
    )
    emit(
        [r.to_json() for r in records],
        as_json,
        table(
            ["transaction", "when", "kind", "amount", "code", "reason", "status", "card"],
            [
                (
                    r.id,
                    r.created_at[:19],
                    r.kind.value,
                    format_amount(r.amount, r.currency),
                    r.response_code,
                    r.decline_reason,
                    r.status.value,
                    r.token_id or r.card_id,
                )
                for r in records
            ],
        ),
    )


@click.group()
def terminal() -> None:
    """Terminals allowed to ask for authorisations, and their merchants' QR codes."""


def _written(
    state: CliState, issued: IssuedCertificate, terminal_id: str, cert_dir: Path | None
) -> dict[str, Any]:
    """Write the certificate (and its key if made here) for the terminal; what to
    show of it (:meth:`IssuedCertificate.write`) and the CA it verifies the issuer with."""
    folder = cert_dir or state.home_dir / "terminals"
    try:
        shown = issued.write(folder, terminal_id)
    except (PkiError, OSError) as exc:
        raise ConfigCliError(f"certificate of {terminal_id} not written: {exc}") from None
    return {**shown, "issuer_ca_file": str(state.home_dir / TLS_DIR / SERVER_CA)}


def _certificate_lines(cert: dict[str, Any]) -> list[str]:
    lines = [
        f"certificate {hex_pairs(cert['serial'])} until {cert['not_after'][:10]}",
        f"  {cert['cert_file']}",
    ]
    if "key_file" in cert:
        lines.append(f"  {cert['key_file']}  (its key, mode 0600: move it to the terminal)")
    lines.append(f"  the terminal verifies the issuer with {cert['issuer_ca_file']}")
    return lines


@terminal.command("add")
@click.option("--merchant", required=True, help="Merchant name.")
@click.option("--mcc", required=True, help="Merchant category code (4 digits).")
@click.option("--country", default="0250", show_default=True, help="ISO 3166 numeric (4 digits).")
@click.option("--city", help="The merchant's city, for its QR codes.")
@click.option("--currency", help="Its currency (ISO 4217) for QR codes [default: the country's].")
@certificate_options("terminal", "terminals", CLIENT_DAYS)
@json_option
@pass_state
def terminal_add(
    state: CliState,
    merchant: str,
    mcc: str,
    country: str,
    city: str | None,
    currency: str | None,
    csr: IO[bytes] | None,
    cert_dir: Path | None,
    days: int,
    as_json: bool,
) -> None:
    """Register a terminal; prints its id and credential ONCE (only a hash is kept),
    and issues its TLS client certificate (for the key of --csr, or a new key written
    next to it)."""
    app = state.app()
    request = csr.read() if csr is not None else None
    try:
        added, credential, issued = add_terminal(
            app.service, tls_folder(state.home_dir, app.keys), merchant, mcc,
            country=country, csr=request, days=days, city=city, currency=currency,
        )  # fmt: skip
    except PkiError as exc:
        raise BadArgumentError(f"certificate: {exc}") from None
    cert = _written(state, issued, added.id, cert_dir)
    emit(
        {**added.to_json(), "credential": credential, "certificate": cert},
        as_json,
        [
            f"terminal    {added.id}",
            f"credential  {credential}",
            "(the credential is shown once: only its hash is kept)",
            *_certificate_lines(cert),
        ],
    )


@terminal.command("renew")
@click.argument("terminal_id")
@certificate_options("terminal", "terminals", CLIENT_DAYS)
@json_option
@pass_state
def terminal_renew(
    state: CliState,
    terminal_id: str,
    csr: IO[bytes] | None,
    cert_dir: Path | None,
    days: int,
    as_json: bool,
) -> None:
    """Issue a new TLS client certificate to a terminal. Its earlier certificates stay
    valid until they expire (or `terminal revoke --certificate SERIAL`): the terminal
    switches when it likes, without downtime."""
    app = state.app()
    request = csr.read() if csr is not None else None
    try:
        issued = renew_terminal(
            app.service, tls_folder(state.home_dir, app.keys), terminal_id, csr=request,
            days=days,
        )  # fmt: skip
    except PkiError as exc:
        raise BadArgumentError(f"certificate: {exc}") from None
    cert = _written(state, issued, terminal_id, cert_dir)
    emit({"terminal": terminal_id, "certificate": cert}, as_json, _certificate_lines(cert))


@terminal.command("certs")
@click.argument("terminal_id")
@json_option
@pass_state
def terminal_certs(state: CliState, terminal_id: str, as_json: bool) -> None:
    """A terminal's TLS client certificates (serial, validity, status)."""
    found = state.app().service.certificates(terminal_id)
    emit(
        [c.to_json() for c in found],
        as_json,
        table(
            ["serial", "not after", "status", "SHA-256"],
            [
                (
                    hex_pairs(c.serial),
                    c.not_after[:19],
                    c.status.value,
                    hex_pairs(c.fingerprint[:16]),
                )
                for c in found
            ],
        ),
    )


@terminal.command("list")
@json_option
@pass_state
def terminal_list(state: CliState, as_json: bool) -> None:
    """Every terminal (never a credential)."""
    terminals = state.app().service.terminals()
    emit(
        [t.to_json() for t in terminals],
        as_json,
        table(
            ["terminal", "merchant", "MCC", "country", "status", "created"],
            [
                (t.id, t.merchant, t.mcc, t.country, t.status.value, t.created_at[:19])
                for t in terminals
            ],
        ),
    )


@terminal.command("revoke")
@click.argument("terminal_id")
@click.option("--certificate", "serial", metavar="SERIAL",
              help="Revoke only this certificate (a lost key); the terminal and its "
              "credential stay.")  # fmt: skip
@json_option
@pass_state
def terminal_revoke(state: CliState, terminal_id: str, serial: str | None, as_json: bool) -> None:
    """Refuse a terminal's credential and all its TLS certificates from now on (the
    service refuses its next request), or only one certificate with --certificate."""
    service = state.app().service
    if serial is not None:
        cert = service.revoke_certificate(terminal_id, serial)
        line = f"certificate {hex_pairs(cert.serial)} of {terminal_id} is revoked"
        emit(cert.to_json(), as_json, line)
        return
    revoked = service.revoke_terminal(terminal_id)
    emit(revoked.to_json(), as_json, f"{revoked.id} is {revoked.status.value}")


terminal.add_command(terminal_qr)
terminal.add_command(terminal_set)
