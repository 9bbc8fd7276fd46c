"""``terminal read`` shows what a card reveals (masked); ``terminal pay`` runs one
transaction to its outcome (EMV Book B entry point, kernels 2 and 3) and, with an
issuer, goes online with it.

Each command imports what it runs when it runs: ``read`` the card reading
(:mod:`terminal.kernel.reading`), ``pay`` the entry point and kernels, the host link
only with ``--issuer``, the tracing reader only with ``--trace``, so that neither
starts slower for the other's modules (tests/test_startup.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import click

from clikit.errors import ToolFailure, error_document
from terminal.commands.common import (
    HostRefusedFailure,
    HostUnreachableFailure,
    NotCompleted,
    check_issuer,
    client_tls,
    host_client,
    issuer_options,
    load_terminal_config,
    not_completed,
    prepare_reader,
    reader_failure,
    reader_option,
    transaction_from_options,
    transaction_options,
    wait_for_card,
)
from terminal.readers import ReaderError

if TYPE_CHECKING:
    from hostlink import HostClient, HostOutcome, Iso8583Client
    from terminal.kernel.transaction import TransactionResult

__all__ = ["pay_command", "read_command"]


def _print_objects(objects: list[dict[str, Any]], indent: str) -> None:
    for obj in objects:
        if "error" in obj:
            click.echo(f"{indent}!! {obj['error']}")
        else:
            click.echo(f"{indent}{obj['tag']:<6} {obj['name']}: {obj['value']}")


@click.command("read")
@reader_option
@click.option("--config", "config_path", metavar="FILE", help="Terminal configuration (JSON).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S", help="Wait S s at most.")
@click.option("--no-gpo", is_flag=True, help="Stop after SELECT: no GPO, no records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option("--trace", is_flag=True, help="Every APDU to standard error (masked).")
def read_command(
    reader_path: str | None,
    config_path: str | None,
    timeout: float | None,
    no_gpo: bool,
    as_json: bool,
    trace: bool,
) -> None:
    """Show what a card reveals: applications, AID, label, PAN (masked), expiry and the
    data objects of every record, named.

    GET PROCESSING OPTIONS is sent (cards serve records only after it) for a zero
    amount: the card counts one transaction. --no-gpo avoids that. The configuration's
    timing and record bounds apply; the card is unpowered at the end.
    """
    from terminal.kernel.reading import read_card

    config = load_terminal_config(config_path, ca_keys=False)  # it authenticates nothing
    raw, reader = prepare_reader(reader_path, trace)
    try:
        wait_for_card(reader, timeout)
        reading = read_card(reader, config, gpo=not no_gpo)
    except ReaderError as exc:
        raise reader_failure(raw.path, exc) from exc
    finally:
        reader.close()
    summary = reading.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for app in summary["applications"]:
        click.echo(f"Application {app['aid']}  {app['label']}")
        click.echo(f"  priority {app['priority'] or '-'}, kernel id {app['kernel_id'] or '-'}")
        click.echo(f"  PAN {app['pan'] or '-'}, expiry {app['expiry'] or '-'}")
        if app["gpo"]:
            click.echo(f"  GET PROCESSING OPTIONS ({app['gpo_sw']}):")
            _print_objects(app["gpo"], "    ")
        for record in app["records"]:
            click.echo(f"  Record SFI {record['sfi']} #{record['record']} ({record['sw']}):")
            _print_objects(record["objects"], "    ")
        for problem in app["problems"]:
            click.echo(f"  problem: {problem}")
    for problem in summary["problems"]:
        click.echo(f"problem: {problem}")
    click.echo(f"{summary['apdus']} APDUs", err=True)


@click.command("pay")
@reader_option
@transaction_options
@click.option("--config", "config_path", metavar="FILE", help="Terminal configuration (JSON).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S", help="Wait S s at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option("-v", "--verbose", is_flag=True,
              help="After the verdict, the detail: card, CVM, ODA, TVR bits, timings, the "
              "authorisation request (field 55, masked) and the issuer's answer.")  # fmt: skip
@click.option("--trace", is_flag=True,
              help="Every APDU and kernel step to standard error (PAN, track 2 and names "
              "masked).")  # fmt: skip
@issuer_options
def pay_command(
    reader_path: str | None,
    amount: str,
    other_amount: str,
    currency: str | None,
    txn_type: str,
    config_path: str | None,
    timeout: float | None,
    as_json: bool,
    verbose: bool,
    trace: bool,
    issuer_url: str | None = None,
    terminal_id: str | None = None,
    terminal_key: str | None = None,
    issuer_ca: str | None = None,
    cert: str | None = None,
    cert_key: str | None = None,
    dev_plain_http: bool | None = None,
) -> None:
    """Run one contactless transaction to its outcome.

    With --issuer, --terminal-id and --terminal-key the terminal goes online: before it
    asks for a card it checks that the issuer answers and accepts its credential and
    certificate (a wrong URL or key costs no tap), then the issuer's answer decides.
    An issuer that stops answering after the tap is its own outcome, UNREACHABLE (the
    request is reversed, nothing is charged), never a decline. Without --issuer an
    online request ends at the terminal; --verbose prints the authorisation request
    (field 55, track 2 masked).

    A card that stops answering ends in try again after the configuration's command
    deadline (timing.command_ms), one that is too slow overall in end application
    (timing.transaction_ms); --timeout is the wait for a card to arrive.

    Two verdict lines come first: the outcome with amount and card, then the issuer's
    or the card's word; --verbose adds the detail. Exit codes: 0 approved (or an
    online request without an issuer), 5 declined, 6 the issuer refused this terminal,
    7 issuer unreachable, 8 card removed or transaction not completed.
    """
    from emvwire.currency import format_amount
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.outcome import Outcome
    from terminal.readers import signal_outcome

    config = load_terminal_config(config_path)
    transaction, cur = transaction_from_options(config, amount, other_amount, currency, txn_type)
    host = None
    if issuer_url:
        if not (terminal_id and terminal_key):
            raise click.UsageError(
                "--issuer needs --terminal-id and --terminal-key (or TAPSTACK_TERMINAL_ID "
                "and TAPSTACK_TERMINAL_KEY): `issuer terminal add` printed them"
            )
        host = host_client(
            issuer_url, terminal_id, terminal_key,
            client_tls(issuer_ca, cert, cert_key, dev_plain_http),
        )  # fmt: skip
    try:
        if host is not None:
            assert issuer_url is not None
            assert terminal_id is not None
            check_issuer(host, issuer_url, terminal_id)
        raw, reader = prepare_reader(reader_path, trace)
        steps = (lambda line: click.echo(f"  kernel: {line}", err=True)) if trace else None
        entry = EntryPoint(config, trace=steps)
        try:
            wait_for_card(reader, timeout)
            result = entry.run(reader, transaction, wait=False)
            # The signal first, while the card is connected; closing switches the field off.
            signal_outcome(raw.feedback, result.outcome.label)
        except ReaderError as exc:
            raise reader_failure(raw.path, exc) from exc
        finally:
            reader.close()
        summary = result.summary()
        summary["amount"] = format_amount(transaction.amount, cur)
        failure: ToolFailure | None = None
        online: HostOutcome | None = None
        if host is not None and result.outcome is Outcome.ONLINE_REQUEST:
            assert issuer_url is not None
            online, failure = _go_online(summary, result, host, issuer_url)
        elif result.outcome not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
            failure = not_completed(
                result.outcome.label, result.reasons, declined=result.outcome is Outcome.DECLINED
            )
    finally:
        if host is not None:
            host.close()
    if as_json:
        if failure is not None:
            summary["error"] = error_document(failure)["error"]
            failure.in_document = True
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_verdict(summary, online, issuer_url)
        if verbose:
            _print_detail(summary, result, online)
    if failure is not None:
        raise failure


def _go_online(
    summary: dict[str, Any],
    result: TransactionResult,
    host: HostClient | Iso8583Client,
    url: str,
) -> tuple[HostOutcome | None, ToolFailure | None]:
    """Send the online request to the issuer; the summary takes the final outcome
    (approved, declined, unreachable or refused). The issuer's answer, and the failure
    the command ends with (``None`` when approved)."""
    from hostlink import HostError
    from terminal.kernel.outcome import UiMessage

    try:
        final = host.authorise(result.authorisation_data, result.track2)
    except HostError as exc:  # the request itself refused (not a decline)
        summary.update(outcome="refused", message=UiMessage.NOT_AUTHORISED.text)
        return None, HostRefusedFailure(
            f"the issuer at {url} refused the request ({exc}): nothing was charged; "
            "check this terminal's settings at the issuer (`issuer terminal list`)"
        )
    summary["online"] = final.to_json()
    if not final.answered:
        summary.update(outcome="unreachable", message=ISSUER_DOWN)
        if final.reversed:
            undone = "the request was reversed and the issuer confirmed it"
        else:
            undone = (
                "its reversal could not be sent either, so a hold the issuer may have "
                "made lapses when it expires"
            )
        return final, HostUnreachableFailure(
            f"the issuer at {url} did not answer after {final.attempts} attempt(s): "
            f"nothing was charged ({undone}); tap again once the issuer answers"
        )
    summary["outcome"] = "approved" if final.approved else "declined"
    # The cardholder now sees the issuer's answer (Book A §9.4: 03 / 07).
    shown = UiMessage.APPROVED if final.approved else UiMessage.NOT_AUTHORISED
    summary["message"] = shown.text
    if final.approved:
        return final, None
    reason = f" {final.reason}" if final.reason else ""
    hint = DECLINE_HINTS.get(final.reason or "", "")
    return final, NotCompleted(
        f"declined by the issuer: {final.response_code}{reason}; the card was not charged{hint}"
    )


#: What a decline means when its name alone may puzzle: the card of another issuer (a
#: fixture profile tapped at a fresh issuer) is unknown to this one.
DECLINE_HINTS: Final = {
    "CARD_NOT_FOUND": ": this issuer knows no such card; tap one it issued (`issuer card "
    "provision` writes its profile) or registered (`issuer card register`)",
}


#: What the display says when the issuer does not answer after the tap.
ISSUER_DOWN = "Issuer unreachable, no charge"


def _print_verdict(summary: dict[str, Any], online: HostOutcome | None, url: str | None) -> None:
    """The two verdict lines: the outcome with amount and card, then the issuer's or
    the card's word."""
    card = ""
    if summary["pan"]:
        token = " (token)" if summary["token"] else ""
        card = f", {summary['label'] or 'card'} {summary['pan']}{token}".rstrip()
    click.echo(f"{summary['outcome'].upper()}: {summary['amount']}{card}")
    outcome = summary["outcome"]
    reasons = "; ".join(summary["reasons"])
    if online is not None and online.answered:
        why = f" {online.reason}" if online.reason else ""
        verdict = "approved" if online.approved else f"declined{why}, not charged"
        second = f"issuer {online.response_code} {verdict}, transaction {online.transaction_id}"
    elif online is not None:
        undone = "reversed" if online.reversed else "reversal not confirmed"
        second = f"{ISSUER_DOWN}: {url} did not answer ({undone})"
    elif outcome == "refused":
        second = f"the issuer at {url} refused the request: nothing charged"
    elif outcome == "online request":
        second = f"{summary['message']}: no --issuer, the request stays here (--verbose shows it)"
    else:
        second = f"{summary['message'] or outcome}{': ' + reasons if reasons else ''}"
    click.echo(f"  {second}")


def _print_detail(
    summary: dict[str, Any], result: TransactionResult, online: HostOutcome | None
) -> None:
    """What --verbose adds after the verdict: the card and the kernel's findings, TVR
    bits decoded, timings, the authorisation request (field 55, masked) and the
    issuer's answer."""
    from emvwire.dump import dump, explain
    from emvwire.tags import Tag

    click.echo()
    if summary["aid"]:
        click.echo(f"  application {summary['aid']} {summary['label']} ({summary['kernel']})")
    if summary["pan"]:
        token = " (token)" if summary["token"] else ""
        click.echo(f"  card       {summary['pan']}{token}, reference {summary['card_reference']}")
    oda = f"{summary['oda']} {summary['oda_method']}".rstrip()
    click.echo(f"  CVM        {summary['cvm']}; ODA {oda}")
    if result.online_pin_required:
        click.echo("  online PIN required: the application must ask for the PIN")
    click.echo(f"  TVR        {summary['tvr']}")
    for line in explain(Tag.TVR, bytes.fromhex(summary["tvr"])):
        click.echo(f"      - {line}")
    for reason in summary["reasons"]:
        click.echo(f"  reason     {reason}")
    timing = ", ".join(f"{k} {v:.1f} ms" for k, v in summary["timings_ms"].items())
    click.echo(f"  {summary['apdus']} APDUs; {timing}")
    if result.authorisation_data:
        click.echo("Authorisation request (field 55, masked where sensitive):")
        click.echo("\n".join("  " + line for line in dump(result.authorisation_data).splitlines()))
        click.echo(f"  57 track 2 equivalent data: {summary['track2']}")
    if online is not None:
        click.echo(
            f"Issuer answer: request {online.request_id}, {online.attempts} attempt(s), "
            f"response code {online.response_code}"
            + (f", transaction {online.transaction_id}" if online.transaction_id else "")
            + (f", ARPC {online.arpc.hex().upper()}" if online.arpc else "")
            + (", reversed" if online.reversed else "")
        )
