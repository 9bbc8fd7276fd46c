"""``issuer account ...``: cardholder accounts and their money."""

from __future__ import annotations

import click

from issuer.commands.common import CliState, emit, json_option, pass_state, table
from issuer.model.currency import ACCEPTED, format_amount, parse_amount
from issuer.model.entities import Account

__all__ = ["account"]


def _lines(a: Account) -> list[str]:
    cur = a.currency
    out = [
        f"account   {a.id}",
        f"holder    {a.holder}",
        f"kind      {a.kind.value}   status {a.status.value}",
        f"balance   {format_amount(a.balance, cur)}",
        f"held      {format_amount(a.held, cur)}",
    ]
    if a.credit_limit:
        out.append(f"limit     {format_amount(a.credit_limit, cur)}")
    out.append(f"available {format_amount(a.available, cur)}")
    return out


@click.group()
def account() -> None:
    """Cardholder accounts: create, credit, show, list, close."""


@account.command("create")
@click.option("--holder", required=True, help="Account holder's name.")
@click.option(
    "--kind",
    type=click.Choice(["debit", "credit"]),
    default="debit",
    show_default=True,
    help="debit spends its balance; credit its limit too.",
)
@click.option(
    "--currency",
    type=click.Choice(ACCEPTED, case_sensitive=False),
    default="EUR",
    show_default=True,
    help="ISO 4217 currency.",
)
@click.option("--credit-limit", default="0", help="Credit limit in major units (credit only).")
@json_option
@pass_state
def account_create(
    state: CliState, holder: str, kind: str, currency: str, credit_limit: str, as_json: bool
) -> None:
    """Open an account."""
    limit = parse_amount(credit_limit, currency)
    created = state.app().service.create_account(
        holder, kind=kind, currency_code=currency, credit_limit=limit
    )
    emit(created.to_json(), as_json, [f"created {created.id}", *_lines(created)])


@account.command("show")
@click.argument("account_id")
@json_option
@pass_state
def account_show(state: CliState, account_id: str, as_json: bool) -> None:
    """An account with its balances and cards."""
    service = state.app().service
    found = service.account(account_id)
    cards = service.cards(account_id=account_id)
    journals = service.journals(account_id, limit=10)
    data = {
        **found.to_json(),
        "cards": [c.to_json() for c in cards],
        "journals": [j.to_json() for j in journals],
    }
    lines = _lines(found)
    if cards:
        lines += [
            "",
            *table(
                ["card", "scheme", "PAN", "status"],
                [(c.id, c.scheme, c.pan_masked, c.status.value) for c in cards],
            ),
        ]
    emit(data, as_json, lines)


@account.command("credit")
@click.argument("account_id")
@click.option("--amount", required=True, help="Amount in major units (12.50).")
@click.option("--memo", default="", help="A note kept with the journal.")
@json_option
@pass_state
def account_credit(state: CliState, account_id: str, amount: str, memo: str, as_json: bool) -> None:
    """Credit money to an account."""
    service = state.app().service
    current = service.account(account_id)
    minor = parse_amount(amount, current.currency)
    updated, journal = service.credit_account(account_id, minor, memo)
    emit(
        {"account": updated.to_json(), "journal": journal.to_json()},
        as_json,
        [f"credited {format_amount(minor, updated.currency)}", *_lines(updated)],
    )


@account.command("list")
@json_option
@pass_state
def account_list(state: CliState, as_json: bool) -> None:
    """Every account."""
    accounts = state.app().service.accounts()
    emit(
        [a.to_json() for a in accounts],
        as_json,
        table(
            ["account", "holder", "kind", "status", "balance", "available"],
            [
                (
                    a.id,
                    a.holder,
                    a.kind.value,
                    a.status.value,
                    format_amount(a.balance, a.currency),
                    format_amount(a.available, a.currency),
                )
                for a in accounts
            ],
        ),
    )


@account.command("close")
@click.argument("account_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def account_close(state: CliState, account_id: str, yes: bool, as_json: bool) -> None:
    """Close an account for good: its cards close and its tokens are deleted."""
    if not yes:
        if not state.can_prompt():
            raise click.UsageError("closing an account needs --yes (no terminal to ask)")
        click.confirm(f"Close {account_id}, its cards and tokens for good?", abort=True, err=True)
    closed = state.app().service.close_account(account_id)
    emit(closed.to_json(), as_json, [f"closed {closed.id}", *_lines(closed)])
