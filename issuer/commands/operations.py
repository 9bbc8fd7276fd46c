"""``issuer txn ...`` and ``issuer terminal ...``."""

from __future__ import annotations

import click

from issuer.commands.common import CliState, emit, json_option, pass_state, table
from issuer.model.currency import format_amount

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
    """Terminals allowed to ask for authorisations."""


@terminal.command("add")
@click.option("--merchant", required=True, help="Merchant name.")
@click.option("--mcc", required=True, help="Merchant category code (4 digits).")
@click.option("--country", default="0250", show_default=True, help="ISO 3166 numeric (4 digits).")
@json_option
@pass_state
def terminal_add(state: CliState, merchant: str, mcc: str, country: str, as_json: bool) -> None:
    """Register a terminal; prints its id and credential ONCE (only a hash is kept)."""
    added, credential = state.app().service.add_terminal(merchant, mcc, country=country)
    emit(
        {**added.to_json(), "credential": credential},
        as_json,
        [
            f"terminal    {added.id}",
            f"credential  {credential}",
            "(the credential is shown once: only its hash is kept)",
        ],
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
@json_option
@pass_state
def terminal_revoke(state: CliState, terminal_id: str, as_json: bool) -> None:
    """Refuse a terminal's credential from now on."""
    revoked = state.app().service.revoke_terminal(terminal_id)
    emit(revoked.to_json(), as_json, f"{revoked.id} is {revoked.status.value}")
