"""``issuer operator add|list|show|revoke`` (the operator API's credentials and client
certificates) and ``issuer audit list`` (the append-only audit log)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from emvwire.pki import CLIENT_DAYS, PkiError, hex_pairs
from emvwire.tls import SERVER_CA
from issuer.commands.common import (
    BadArgumentError,
    CliState,
    ConfigCliError,
    emit,
    json_option,
    pass_state,
    table,
)
from issuer.model.operators import SCOPES, AuditRecord, Operator
from issuer.pki import TLS_DIR, add_operator, tls_folder

__all__ = ["audit", "operator"]


def _operator_lines(o: Operator) -> list[str]:
    return [
        f"operator    {o.id}",
        f"name        {o.name}",
        f"scopes      {' '.join(o.scopes)}",
        f"status      {o.status.value}{f' since {o.revoked_at[:19]}' if o.revoked_at else ''}",
        "certificate "
        + (
            f"{hex_pairs(o.certificate_serial)} until {(o.certificate_not_after or '')[:10]}"
            if o.certificate_serial
            else "none"
        ),
    ]


@click.group()
def operator() -> None:
    """Operators of the HTTPS operator API (/v1/issuing/...): add, list, show, revoke."""


@operator.command("add")
@click.argument("name")
@click.option("--scope", "scopes", type=click.Choice(SCOPES), multiple=True, required=True,
              help="What the operator may do (repeat): read (every resource), operations "
              "(read, and accounts, cards, tokens, terminals), keys (ranges).")  # fmt: skip
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where to write ID.crt and, without --csr, ID.key (mode 0600, written "
              "once) [default: HOME/operators].")  # fmt: skip
@click.option("--csr", type=click.File("rb"), metavar="FILE",
              help="Sign this certificate request (PEM, ECDSA P-256; `terminal csr --kind "
              "operator` makes one): the operator's key never leaves it.")  # fmt: skip
@click.option("--days", type=click.IntRange(1, 3650), default=CLIENT_DAYS, show_default=True,
              help="Validity of the certificate (days).")  # fmt: skip
@json_option
@pass_state
def operator_add(
    state: CliState,
    name: str,
    scopes: tuple[str, ...],
    out: Path | None,
    csr: IO[bytes] | None,
    days: int,
    as_json: bool,
) -> None:
    """Make an operator of the API; prints its id and credential ONCE (only a hash is
    kept) and issues its TLS client certificate (urn:tapstack:operator:ID) from the
    issuer's CA, for the key of --csr or a new key written next to it.

    Every request to /v1/issuing/... carries `Authorization: Bearer ID:CREDENTIAL`
    over mutual TLS with that certificate."""
    app = state.app()
    request = csr.read() if csr is not None else None
    try:
        added, credential, issued = add_operator(
            app.service, tls_folder(state.home_dir, app.keys), name, scopes,
            csr=request, days=days,
        )  # fmt: skip
    except PkiError as exc:
        raise BadArgumentError(f"certificate: {exc}") from None
    folder = out or state.home_dir / "operators"
    try:
        cert: dict[str, Any] = issued.write(folder, added.id)
    except (PkiError, OSError) as exc:
        raise ConfigCliError(f"certificate of {added.id} not written: {exc}") from None
    cert["issuer_ca_file"] = str(state.home_dir / TLS_DIR / SERVER_CA)
    lines = [
        *_operator_lines(added),
        f"credential  {credential}",
        "(the credential is shown once: only its hash is kept)",
        f"  {cert['cert_file']}",
    ]
    if "key_file" in cert:
        lines.append(f"  {cert['key_file']}  (its key, mode 0600)")
    lines.append(f"  the operator verifies the issuer with {cert['issuer_ca_file']}")
    emit({**added.to_json(), "credential": credential, "certificate": cert}, as_json, lines)


@operator.command("list")
@json_option
@pass_state
def operator_list(state: CliState, as_json: bool) -> None:
    """Every operator, newest first (never a credential)."""
    found = state.app().service.operators()
    emit(
        [o.to_json() for o in found],
        as_json,
        table(
            ["operator", "name", "scopes", "status", "created"],
            [(o.id, o.name, ",".join(o.scopes), o.status.value, o.created_at[:19]) for o in found],
        ),
    )


@operator.command("show")
@click.argument("operator_id")
@json_option
@pass_state
def operator_show(state: CliState, operator_id: str, as_json: bool) -> None:
    """One operator: name, scopes, status, certificate."""
    found = state.app().service.operator(operator_id)
    emit(found.to_json(), as_json, _operator_lines(found))


@operator.command("revoke")
@click.argument("operator_id")
@json_option
@pass_state
def operator_revoke(state: CliState, operator_id: str, as_json: bool) -> None:
    """Refuse an operator's credential and certificate from now on (a running service
    refuses its next request)."""
    revoked = state.app().service.revoke_operator(operator_id)
    emit(revoked.to_json(), as_json, f"{revoked.id} is {revoked.status.value}")


@click.group()
def audit() -> None:
    """The append-only audit log: who changed what, when, with what outcome."""


def _audit_row(r: AuditRecord) -> tuple[str, ...]:
    return (r.at[:19], r.actor, r.action, f"{r.object_type} {r.object_id}", r.outcome, r.id)


@audit.command("list")
@click.option("--actor", help="Only this actor's (operator:ID, cli:USER).")
@click.option("--object", "object_id", metavar="ID", help="Only what was done to this object.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="At most this many records.")  # fmt: skip
@click.option("--starting-after", metavar="AUDIT_ID",
              help="The page after this record (the last id of the previous page).")  # fmt: skip
@json_option
@pass_state
def audit_list(
    state: CliState,
    actor: str | None,
    object_id: str | None,
    limit: int,
    starting_after: str | None,
    as_json: bool,
) -> None:
    """Audit records, newest first (details masked). With --json: {"data": [...],
    "has_more": ...}; the next page: --starting-after the last id."""
    page = state.app().service.audit_page(
        limit=limit, starting_after=starting_after, actor=actor, object_id=object_id
    )
    lines = table(["when", "actor", "action", "object", "outcome", "id"],
                  [_audit_row(r) for r in page.data])  # fmt: skip
    if page.has_more:
        lines.append(f"(more: --starting-after {page.data[-1].id})")
    emit(
        {"object": "list", "data": [r.to_json() for r in page.data], "has_more": page.has_more},
        as_json,
        lines,
    )
