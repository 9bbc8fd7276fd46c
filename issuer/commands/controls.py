"""``issuer controls ...`` (spending controls of an account, card or token) and
``issuer decisions ...`` (the program's decision endpoint)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from issuer.commands.common import BadArgumentError, CliState, emit, json_option, pass_state
from issuer.model.controls import (
    ControlLevel,
    Fallback,
    Measure,
    Period,
    ProgramDecision,
    SpendingControls,
)
from issuer.model.currency import format_amount, parse_amount

__all__ = ["controls", "decisions"]

_NONE = "none"


def _subject_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--account``, ``--card``, ``--token``: exactly one names what the controls are on."""
    for level in reversed(ControlLevel):
        command = click.option(
            f"--{level.value}", f"{level.value}_id", metavar="ID",
            help=f"The {level.value} the controls are on.",
        )(command)  # fmt: skip
    return command


def _subject(
    account_id: str | None, card_id: str | None, token_id: str | None
) -> tuple[ControlLevel, str]:
    given = [
        (level, value)
        for level, value in zip(ControlLevel, (account_id, card_id, token_id), strict=True)
        if value is not None
    ]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --account, --card, --token")
    return given[0]


def _period_name(period: Period) -> str:
    return period.value.replace("_", "-")


def _limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per limit: ``--daily AMOUNT``, ``--daily-count N``... (``none``
    removes it)."""
    for period in reversed(Period):
        name, per = _period_name(period), _per(period)
        command = click.option(
            f"--{name}-count", f"{period.value}_count", metavar="N|none",
            help=f"At most N approvals {per}.",
        )(command)  # fmt: skip
        command = click.option(
            f"--{name}", f"{period.value}_amount", metavar="AMOUNT|none",
            help=f"At most AMOUNT spent {per} (major units).",
        )(command)  # fmt: skip
    return command


def _per(period: Period) -> str:
    return {
        "daily": "per day (UTC)",
        "weekly": "per week (from Monday, UTC)",
        "monthly": "per month",
        "yearly": "per year",
        "all_time": "in all",
    }[period.value]


def _list(text: str | None) -> Any:
    """A list option: not given (keep), ``none`` (remove) or ``A,B,...``."""
    from issuer.domain.controls import KEEP

    if text is None:
        return KEEP
    if text.strip().lower() == _NONE:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _amount(text: str | None, currency: str) -> Any:
    from issuer.domain.controls import KEEP

    if text is None:
        return KEEP
    if text.strip().lower() == _NONE:
        return None
    return parse_amount(text, currency)


def _count(text: str | None, option: str) -> int | None:
    if text is None or text.strip().lower() == _NONE:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadArgumentError(f"{option} is a whole number (or none)")
    return int(text)


@click.group()
def controls() -> None:
    """Spending controls of an account, card or token: set, show, clear."""


@controls.command("set")
@_subject_options
@click.option("--allow-mcc", metavar="MCC,...|none",
              help="Only these merchant categories (ISO 18245).")  # fmt: skip
@click.option("--block-mcc", metavar="MCC,...|none", help="Never these merchant categories.")
@click.option("--allow-country", metavar="CODE,...|none",
              help="Only terminals of these countries (ISO 3166 numeric: 250, 0250).")  # fmt: skip
@click.option("--block-country", metavar="CODE,...|none",
              help="Never terminals of these countries.")  # fmt: skip
@click.option("--max-per-txn", metavar="AMOUNT|none",
              help="At most AMOUNT per authorisation, increments in (major units).")  # fmt: skip
@_limit_options
@json_option
@pass_state
def controls_set(
    state: CliState,
    /,
    account_id: str | None,
    card_id: str | None,
    token_id: str | None,
    allow_mcc: str | None,
    block_mcc: str | None,
    allow_country: str | None,
    block_country: str | None,
    max_per_txn: str | None,
    as_json: bool,
    **limits: str | None,
) -> None:
    """Set spending controls on an account, a card or a token (the others given are
    kept; "none" removes one). MCCs and countries are allowed or blocked, never both.
    Every control of the token, its card and their account applies; a running service
    takes the change from its next request."""
    from issuer.domain.controls import Changes, currency_of, set_controls

    level, subject = _subject(account_id, card_id, token_id)
    app = state.app()
    with app.ledger.unit_of_work(write=False) as uow:
        currency = currency_of(uow, level, subject)
    changes: dict[str, int | None] = {}
    for name, text in limits.items():
        if text is None:
            continue
        if name.endswith("_count"):
            changes[name] = _count(text, "--" + name.replace("_", "-"))
        else:
            changes[name] = _amount(text, currency)
    updated = set_controls(
        app.ledger,
        level,
        subject,
        Changes(
            allowed_mccs=_list(allow_mcc),
            blocked_mccs=_list(block_mcc),
            allowed_countries=_list(allow_country),
            blocked_countries=_list(block_country),
            max_per_transaction=_amount(max_per_txn, currency),
            limits=changes,
        ),
    )
    emit(updated.to_json(), as_json, _lines(updated, currency, {}))


@controls.command("show")
@_subject_options
@json_option
@pass_state
def controls_show(
    state: CliState,
    account_id: str | None,
    card_id: str | None,
    token_id: str | None,
    as_json: bool,
) -> None:
    """Every spending control that applies to a payment of this account, card or token
    (its own, its card's, its account's), each limit with what is used of it now."""
    from issuer.domain.controls import applying, currency_of, usage

    level, subject = _subject(account_id, card_id, token_id)
    app = state.app()
    with app.ledger.unit_of_work(write=False) as uow:
        currency = currency_of(uow, level, subject)
    found = applying(app.ledger, level, subject)
    used = {(u.level, u.limit.name): u.used for u in usage(app.ledger, found)}
    data = {
        "level": level.value,
        "id": subject,
        "currency": currency,
        "controls": [
            {
                **c.to_json(),
                "used": {lim.name: used[(c.level, lim.name)] for lim in c.limits},
            }
            for c in found
        ],
    }
    lines = [f"{level.value} {subject}: no spending controls"] if not found else []
    for c in found:
        lines += _lines(c, currency, used)
    emit(data, as_json, lines)


@controls.command("clear")
@_subject_options
@json_option
@pass_state
def controls_clear(
    state: CliState,
    account_id: str | None,
    card_id: str | None,
    token_id: str | None,
    as_json: bool,
) -> None:
    """Remove every spending control of an account, card or token (those of its card or
    account stay)."""
    from issuer.domain.controls import clear_controls

    level, subject = _subject(account_id, card_id, token_id)
    removed = clear_controls(state.app().ledger, level, subject)
    text = f"cleared the controls of {level.value} {subject}" if removed else (
        f"{level.value} {subject} had no controls"
    )  # fmt: skip
    emit({"level": level.value, "id": subject, "removed": removed}, as_json, text)


def _lines(
    c: SpendingControls, currency: str, used: dict[tuple[ControlLevel, str], int]
) -> list[str]:
    out = [f"controls on {c.level.value} {c.subject_id}"]
    for label, items in (
        ("allowed MCCs", c.allowed_mccs),
        ("blocked MCCs", c.blocked_mccs),
        ("allowed countries", c.allowed_countries),
        ("blocked countries", c.blocked_countries),
    ):
        if items is not None:
            out.append(f"  {label:<19} {', '.join(items)}")
    if c.max_per_transaction is not None:
        out.append(f"  {'max per txn':<19} {format_amount(c.max_per_transaction, currency)}")
    for lim in c.limits:
        amount = lim.measure is Measure.AMOUNT
        value = format_amount(lim.value, currency) if amount else str(lim.value)
        label = f"{lim.period.value.replace('_', ' ')} {lim.measure.value}"
        line = f"  {label:<19} {value}"
        if (c.level, lim.name) in used:
            spent = used[(c.level, lim.name)]
            line += f"  (used {format_amount(spent, currency) if amount else spent})"
        out.append(line)
    return out


# -- the program's decision endpoint ------------------------------------------------------


@click.group()
def decisions() -> None:
    """The program's decision endpoint: real-time approve or decline, signed both ways."""


@decisions.command("set")
@click.argument("url")
@click.option("--deadline-ms", type=click.IntRange(1, 60_000), default=2000, show_default=True,
              help="How long an authorisation waits for the program's answer.")  # fmt: skip
@click.option("--fallback", type=click.Choice([f.value for f in Fallback]), default="issuer",
              show_default=True,
              help="Without a usable answer in time: the issuer's own decision stands, or "
              "decline.")  # fmt: skip
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False, path_type=Path),
              help="PEM file of the CA of the endpoint's TLS certificate [default: the "
              "system's CAs].")  # fmt: skip
@click.option("--keep-secret", is_flag=True,
              help="Keep the current endpoint's signing secret (no new one).")  # fmt: skip
@json_option
@pass_state
def decisions_set(
    state: CliState,
    url: str,
    deadline_ms: int,
    fallback: str,
    ca_file: Path | None,
    keep_secret: bool,
    as_json: bool,
) -> None:
    """Send every authorisation the issuer authenticates to URL (https://, or http:// on
    loopback) for the program's decision, signed with a new secret shown once here
    (Tapstack-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>);
    the program answers {"id", "approved", "amount"?} signed the same way. It may
    decline or approve less, never approve what the issuer declines. A running service
    takes it from its next request."""
    from issuer.domain.program import set_endpoint

    ca_pem = None
    if ca_file is not None:
        try:
            ca_pem = ca_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadArgumentError(f"--ca {ca_file}: {type(exc).__name__}") from None
    app = state.app()
    record, secret = set_endpoint(
        app.ledger, app.keys, url, deadline_ms=deadline_ms, fallback=Fallback(fallback),
        ca_pem=ca_pem, keep_secret=keep_secret,
    )  # fmt: skip
    lines = _endpoint_lines(record.to_json())
    if secret is not None:
        lines += [
            f"secret    {secret}",
            "          (shown once: give it to the program; it signs both ways)",
        ]
    emit({**record.to_json(), "secret": secret}, as_json, lines)


@decisions.command("show")
@json_option
@pass_state
def decisions_show(state: CliState, as_json: bool) -> None:
    """The decision endpoint (never its secret)."""
    from issuer.domain.program import endpoint_record

    record = endpoint_record(state.app().ledger)
    if record is None:
        emit(None, as_json, "no decision endpoint: the issuer decides alone")
        return
    emit(record.to_json(), as_json, _endpoint_lines(record.to_json()))


@decisions.command("clear")
@json_option
@pass_state
def decisions_clear(state: CliState, as_json: bool) -> None:
    """Stop asking a program: the issuer decides alone."""
    from issuer.domain.program import clear_endpoint

    removed = clear_endpoint(state.app().ledger)
    text = "cleared the decision endpoint" if removed else "there was no decision endpoint"
    emit({"removed": removed}, as_json, text)


@decisions.command("answer")
@click.argument("transaction_id")
@json_option
@pass_state
def decisions_answer(state: CliState, transaction_id: str, as_json: bool) -> None:
    """What the program answered for an authorisation, or the fallback taken and why."""
    from issuer.domain.program import decision_of

    found = decision_of(state.app().ledger, transaction_id)
    if found is None:
        emit(None, as_json, f"{transaction_id}: the program was not asked")
        return
    emit(found.to_json(), as_json, _answer_lines(found))


def _endpoint_lines(data: dict[str, Any]) -> list[str]:
    return [
        f"endpoint  {data['url']}",
        f"deadline  {data['deadline_ms']} ms   fallback {data['fallback']}   CA {data['ca']}",
    ]


def _answer_lines(found: ProgramDecision) -> list[str]:
    line = f"{found.transaction_id}: {found.outcome.value}"
    if found.amount is not None:
        line += f" {found.amount}"
    if found.fallback is not None:
        line += f" -> fallback {found.fallback.value} ({found.cause})"
    return [line, f"  answered in {found.latency_ms} ms at {found.created_at[:19]}"]
