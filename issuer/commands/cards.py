"""``issuer card ...`` and ``issuer token ...``: provisioning and life cycle."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from clikit.progress import progress
from issuer.commands.common import (
    BadArgumentError,
    CliState,
    ConflictCliError,
    emit,
    json_option,
    pass_state,
    progress_printer,
    table,
)
from issuer.commands.qr import token_channels
from issuer.domain.service import parse_expiry
from issuer.keys.base import SCHEMES
from issuer.model.entities import Card, Token
from issuer.personalisation import provision, write_profile

__all__ = ["card", "token"]


def _card_lines(c: Card) -> list[str]:
    out = [
        f"card      {c.id}",
        f"account   {c.account_id}",
        f"PAN       {c.pan_masked}   PSN {c.psn}   expiry {c.expiry:%Y-%m}",
        f"scheme    {c.scheme}   range {c.bin}   CVN {c.cvn}   key version {c.key_version}",
        f"PAR       {c.par}",
        f"status    {c.status.value}   origin {c.origin.value}",
    ]
    if c.flag:
        out.append(f"flag      {c.flag}")
    return out


def _token_lines(t: Token) -> list[str]:
    mccs = "any"
    if t.allowed_mccs is not None:
        mccs = "only " + (",".join(t.allowed_mccs) or "none")
    elif t.blocked_mccs is not None:
        mccs = "not " + ",".join(t.blocked_mccs)
    out = [
        f"token     {t.id}",
        f"card      {t.card_id}   account {t.account_id}",
        f"number    {t.token_masked}   PSN {t.psn}   expiry {t.expiry:%Y-%m}",
        f"scheme    {t.scheme}   range {t.bin}   CVN {t.cvn}",
        f"PAR       {t.par}   requestor {t.requestor_id}",
        f"domain    {'contactless only' if t.contactless_only else 'any channel'}; MCC {mccs}"
        f"; pays on {', '.join(t.channels) if t.channels is not None else 'every channel'}",
        f"status    {t.status.value}",
    ]
    if t.flag:
        out.append(f"flag      {t.flag}")
    return out


def _expiry(value: str | None) -> object:
    return None if value is None else parse_expiry(value)


@click.group()
def card() -> None:
    """Cards: provision, register, list, show, suspend, resume, close."""


@card.command("provision")
@click.option("--account", "account_id", required=True, help="Account id.")
@click.option("--scheme", type=click.Choice(SCHEMES), required=True, help="Payment scheme.")
@click.option(
    "--form",
    type=click.Choice(["card", "phone"]),
    required=True,
    help="A plastic card (new PAN) or a phone wallet (a payment token bound to a card).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Card profile to write (what `card serve` runs; mode 0600); with --count above "
    "1 a folder, one profile per card (SCHEME-FORM-NNNN.json).",
)
@click.option("--count", type=click.IntRange(1, 100_000), default=1, show_default=True,
              metavar="N", help="Provision N cards (or phones) of the account at once, a "
              "progress bar on standard error.")  # fmt: skip
@click.option("--cvn", type=int, help="Cryptogram version (default: the range's).")
@click.option(
    "--range",
    "prefix",
    help="Card: the card range (prefix) to issue from (default: the scheme's first).",
)
@click.option("--expiry", help="Expiry YYYY-MM (default: 4 years, tokens 3).")
@click.option("--card", "card_id", help="Phone: the card the token is bound to.")
@click.option("--requestor-id", help="Phone: token requestor id (11 digits, 9F19).")
@click.option("--allowed-mcc", multiple=True, help="Phone: an MCC the token may pay at.")
@click.option("--blocked-mcc", multiple=True, help="Phone: an MCC the token may not pay at.")
@click.option("--any-channel", is_flag=True, help="Phone: allow the token beyond contactless.")
@click.option("--name", help="Profile name (default: scheme-form-last4).")
@click.option("--force", is_flag=True, help="Replace an existing profile file.")
@json_option
@pass_state
def card_provision(
    state: CliState,
    account_id: str,
    scheme: str,
    form: str,
    out: Path,
    count: int,
    cvn: int | None,
    prefix: str | None,
    expiry: str | None,
    card_id: str | None,
    requestor_id: str | None,
    allowed_mcc: tuple[str, ...],
    blocked_mcc: tuple[str, ...],
    any_channel: bool,
    name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Create a card or phone token for an account and write its card profile."""
    if form == "card" and (requestor_id or allowed_mcc or blocked_mcc or any_channel):
        raise click.UsageError(
            "token options (--requestor-id, --*-mcc, --any-channel) need --form phone"
        )
    if count > 1 and name is not None:
        raise click.UsageError("--name names one profile: leave it out with --count")
    targets = _targets(out, count, scheme, form, force)
    service = state.app().service

    def one(target: Path, notes: Callable[[str], None] | None) -> tuple[dict[str, Any], list[str]]:
        result = provision(
            service, account_id, scheme, form, cvn=cvn,
            expiry=parse_expiry(expiry) if expiry else None, card_id=card_id,
            requestor_id=requestor_id, contactless_only=not any_channel,
            allowed_mccs=allowed_mcc or None, blocked_mccs=blocked_mcc or None, name=name,
            progress=notes, prefix=prefix,
        )  # fmt: skip
        path = write_profile(result.profile, target, overwrite=True)
        lines = [f"wrote {path} ({form}, {scheme})"]
        if result.token is not None:
            if result.funding_created:
                lines.append(f"funding card {result.card.id} created ({result.card.pan_masked})")
            lines += _token_lines(result.token)
        else:
            lines += _card_lines(result.card)
        return {**result.to_json(), "profile": str(path)}, lines

    if count == 1:
        data, lines = one(targets[0], progress_printer())
        emit(data, as_json, lines)
        return
    made: list[dict[str, Any]] = []
    with progress(targets, count, f"provisioning {count} {form}s") as bar:
        for target in bar:
            made.append(one(target, None)[0])
    emit({"provisioned": made}, as_json,
         [f"wrote {len(made)} profiles in {out} ({form}, {scheme})"])  # fmt: skip


def _targets(out: Path, count: int, scheme: str, form: str, force: bool) -> list[Path]:
    """The profile files of ``--out``: the file itself, or ``count`` files in the folder
    ``out`` (made if missing); none may exist unless ``--force``."""
    if count == 1:
        if out.is_dir():
            raise BadArgumentError(f"{out} is a folder: --out names the profile file")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise BadArgumentError(f"{out} is a file: with --count, --out names a folder")
        if not out.parent.is_dir():
            raise BadArgumentError(f"no such folder: {out.parent}")
        out.mkdir(exist_ok=True)
        width = max(4, len(str(count)))
        targets = [out / f"{scheme}-{form}-{i:0{width}d}.json" for i in range(1, count + 1)]
    taken = [t for t in targets if t.exists()]
    if taken and not force:
        raise ConflictCliError(f"{taken[0]} exists (use --force to replace it)")
    if not targets[0].parent.is_dir():
        raise BadArgumentError(f"no such folder: {targets[0].parent}")
    return targets


@card.command("register")
@click.option("--account", "account_id", required=True, help="Account id.")
@click.option("--scheme", type=click.Choice(SCHEMES), required=True, help="Payment scheme.")
@click.option("--psn", default="00", show_default=True, help="PAN sequence number (2 digits).")
@click.option("--expiry", required=True, help="Expiry YYYY-MM.")
@click.option("--cvn", type=int, required=True, help="Cryptogram version of the card.")
@click.option("--key-version", type=click.IntRange(1), metavar="N",
              help="Version of the range's master keys the card's keys derive from "
              "(default: the newest not retired; see `issuer keys list`).")  # fmt: skip
@click.option(
    "--pan-file",
    type=click.File("r"),
    help="File with the PAN ('-' for stdin); otherwise asked without echo.",
)
@json_option
@pass_state
def card_register(
    state: CliState,
    account_id: str,
    scheme: str,
    psn: str,
    expiry: str,
    cvn: int,
    key_version: int | None,
    pan_file: IO[str] | None,
    as_json: bool,
) -> None:
    """Register a card personalised elsewhere whose keys derive from this issuer's
    master keys (its PAN in one of the issuer's active card ranges, of the range's
    length; `issuer range add`). The PAN is read from --pan-file or a hidden prompt
    and shown masked."""
    expiry_date = parse_expiry(expiry)  # arguments first, then ask for the PAN
    if pan_file is not None:
        pan = pan_file.read().strip()
    elif state.can_prompt():
        pan = click.prompt("PAN", hide_input=True, err=True)
    else:
        pan = sys.stdin.readline().strip()
    if not pan:
        raise BadArgumentError("no PAN given")
    registered = state.app().service.register_card(
        account_id, scheme, pan, psn=psn, expiry=expiry_date, cvn=cvn, key_version=key_version
    )
    emit(registered.to_json(), as_json, ["registered", *_card_lines(registered)])


@card.command("list")
@click.option("--account", "account_id", help="Only this account's cards.")
@json_option
@pass_state
def card_list(state: CliState, account_id: str | None, as_json: bool) -> None:
    """Cards, masked."""
    cards = state.app().service.cards(account_id=account_id)
    emit(
        [c.to_json() for c in cards],
        as_json,
        table(
            ["card", "account", "scheme", "PAN", "expiry", "CVN", "status", "origin"],
            [
                (
                    c.id,
                    c.account_id,
                    c.scheme,
                    c.pan_masked,
                    f"{c.expiry:%Y-%m}",
                    c.cvn,
                    c.status.value,
                    c.origin.value,
                )
                for c in cards
            ],
        ),
    )


@card.command("show")
@click.argument("card_id")
@click.option("--reveal", is_flag=True, help="Show the full PAN (opened from its sealed copy).")
@json_option
@pass_state
def card_show(state: CliState, card_id: str, reveal: bool, as_json: bool) -> None:
    """One card with its tokens (masked unless --reveal)."""
    service = state.app().service
    found = service.card(card_id)
    tokens = service.tokens(card_id=card_id)
    data = {**found.to_json(), "tokens": [t.to_json() for t in tokens]}
    lines = _card_lines(found)
    if tokens:
        lines += [
            "",
            *table(
                ["token", "number", "status"],
                [(t.id, t.token_masked, t.status.value) for t in tokens],
            ),
        ]
    if reveal:
        pan = service.reveal(found)
        data["pan_full"] = pan
        if not as_json:
            click.echo(f"PAN (revealed) {pan}")
    emit(data, as_json, lines)


def _card_change(verb: str, method: str, help_text: str) -> click.Command:
    @click.argument("card_id")
    @json_option
    @pass_state
    def command(state: CliState, card_id: str, as_json: bool) -> None:
        changed = getattr(state.app().service, method)(card_id)
        emit(changed.to_json(), as_json, f"{changed.id} is {changed.status.value}")

    command.__doc__ = help_text
    return card.command(verb)(command)


_card_change("suspend", "pause_card", "Pause a card: its authorisations decline (reversible).")
_card_change("resume", "resume_card", "Resume a paused card.")
_card_change("close", "close_card", "Close a card for good; its tokens are deleted.")


@click.group()
def token() -> None:
    """Payment tokens: list, show, suspend, resume, delete, channels."""


@token.command("list")
@click.option("--card", "card_id", help="Only the tokens of this card.")
@click.option("--account", "account_id", help="Only the tokens of this account.")
@json_option
@pass_state
def token_list(state: CliState, card_id: str | None, account_id: str | None, as_json: bool) -> None:
    """Tokens, masked."""
    service = state.app().service
    if card_id is not None:
        service.card(card_id)
    if account_id is not None:
        service.account(account_id)
    tokens = service.tokens(card_id=card_id, account_id=account_id)
    emit(
        [t.to_json() for t in tokens],
        as_json,
        table(
            ["token", "card", "number", "expiry", "requestor", "status"],
            [
                (
                    t.id,
                    t.card_id,
                    t.token_masked,
                    f"{t.expiry:%Y-%m}",
                    t.requestor_id,
                    t.status.value,
                )
                for t in tokens
            ],
        ),
    )


@token.command("show")
@click.argument("token_id")
@json_option
@pass_state
def token_show(state: CliState, token_id: str, as_json: bool) -> None:
    """One token and its domain controls."""
    found = state.app().service.token(token_id)
    emit(found.to_json(), as_json, _token_lines(found))


def _token_change(verb: str, method: str, help_text: str) -> click.Command:
    @click.argument("token_id")
    @json_option
    @pass_state
    def command(state: CliState, token_id: str, as_json: bool) -> None:
        changed = getattr(state.app().service, method)(token_id)
        emit(changed.to_json(), as_json, f"{changed.id} is {changed.status.value}")

    command.__doc__ = help_text
    return token.command(verb)(command)


_token_change("suspend", "suspend_token", "Suspend a token (its card keeps working).")
_token_change("resume", "resume_token", "Resume a suspended token.")
_token_change("delete", "delete_token", "Delete a token for good.")


token.add_command(token_channels)
