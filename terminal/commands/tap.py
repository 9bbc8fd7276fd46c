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
from typing import TYPE_CHECKING, Any

import click

from terminal.commands.common import (
    ConfigFailure,
    NotCompleted,
    ReaderFailure,
    client_tls,
    host_client,
    issuer_options,
    load_terminal_config,
    prepare_reader,
    reader_option,
    transaction_from_options,
    transaction_options,
    wait_for_card,
)
from terminal.readers import ReaderError

if TYPE_CHECKING:
    from hostlink import HostClient, Iso8583Client
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

    config = load_terminal_config(config_path)
    raw, reader = prepare_reader(reader_path, trace)
    try:
        wait_for_card(reader, timeout)
        reading = read_card(reader, config, gpo=not no_gpo)
    except ReaderError as exc:
        raise ReaderFailure(f"{raw.path}: {exc}") from exc
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
@click.option("--trace", is_flag=True, help="Every APDU and kernel step to standard error.")
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

    Without --issuer an online request ends here, and the authorisation request (ISO
    8583 field 55 data, track 2 masked) is printed; with --issuer, --terminal-id and
    --terminal-key it goes online and the issuer's answer decides. Exit code 0 for
    approved (or an online request without an issuer), 5 for declined, ended or try
    again. A card that stops answering ends in try again after the configuration's
    command deadline (timing.command_ms), one that is too slow overall in end
    application (timing.transaction_ms); --timeout is the wait for a card to arrive.
    """
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.outcome import Outcome
    from terminal.readers import signal_outcome

    host = None
    if issuer_url:
        if not (terminal_id and terminal_key):
            raise click.BadParameter("--issuer needs --terminal-id and --terminal-key")
        host = host_client(
            issuer_url, terminal_id, terminal_key,
            client_tls(issuer_ca, cert, cert_key, dev_plain_http),
        )  # fmt: skip
    config = load_terminal_config(config_path)
    transaction, cur = transaction_from_options(config, amount, other_amount, currency, txn_type)
    raw, reader = prepare_reader(reader_path, trace)
    steps = (lambda line: click.echo(f"  kernel: {line}", err=True)) if trace else None
    entry = EntryPoint(config, trace=steps)
    try:
        wait_for_card(reader, timeout)
        result = entry.run(reader, transaction, wait=False)
        # The signal first, while the card is connected; closing switches the field off.
        signal_outcome(raw.feedback, result.outcome.label)
    except ReaderError as exc:
        raise ReaderFailure(f"{raw.path}: {exc}") from exc
    finally:
        reader.close()
    summary = result.summary()
    summary["amount"] = f"{transaction.amount / 10**cur.exponent:.{cur.exponent}f} {cur.alpha}"
    if host is not None and result.outcome is Outcome.ONLINE_REQUEST:
        _go_online(summary, result, host, as_json)
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_result(summary, result)
    if result.outcome not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        why = "; ".join(result.reasons) or result.outcome.label
        raise NotCompleted(f"{result.outcome.label}: {why}")


def _go_online(
    summary: dict[str, Any],
    result: TransactionResult,
    host: HostClient | Iso8583Client,
    as_json: bool,
) -> None:
    """Send the online request to the issuer and print the final outcome."""
    from hostlink import HostError
    from terminal.kernel.outcome import UiMessage

    try:
        with host:
            final = host.authorise(result.authorisation_data, result.track2)
    except HostError as exc:  # refused (401: wrong terminal id or key) or a bad request
        raise ConfigFailure(str(exc)) from None
    summary["online"] = final.to_json()
    summary["outcome"] = "approved" if final.approved else "declined"
    # The cardholder now sees the issuer's answer (Book A §9.4: 03 / 07).
    shown = UiMessage.APPROVED if final.approved else UiMessage.NOT_AUTHORISED
    summary["message"] = shown.text
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_result(summary, result)
        reason = f" ({final.reason})" if final.reason else ""
        click.echo(f"ONLINE {summary['outcome'].upper()}: {final.response_code}{reason}")
        click.echo(f"  transaction {final.transaction_id}, ARPC {final.arpc.hex().upper()}")
    if not final.approved:
        raise NotCompleted(f"declined by the issuer: {final.response_code} {final.reason}")


def _print_result(summary: dict[str, Any], result: TransactionResult) -> None:
    click.echo(f"{summary['outcome'].upper()}: {summary['message']}")
    click.echo(f"  amount     {summary['amount']}")
    if summary["aid"]:
        click.echo(f"  application {summary['aid']} {summary['label']} ({summary['kernel']})")
    if summary["pan"]:
        token = " (token)" if summary["token"] else ""
        click.echo(f"  card       {summary['pan']}{token}, reference {summary['card_reference']}")
    click.echo(f"  CVM        {summary['cvm']}; ODA {summary['oda']} {summary['oda_method']}")
    if result.online_pin_required:
        click.echo("  online PIN required: the application must ask for the PIN")
    click.echo(f"  TVR        {summary['tvr']}")
    for reason in summary["reasons"]:
        click.echo(f"  reason     {reason}")
    timing = ", ".join(f"{k} {v:.1f} ms" for k, v in summary["timings_ms"].items())
    click.echo(f"  {summary['apdus']} APDUs; {timing}")
    if result.authorisation_data:
        from emvwire.dump import dump

        click.echo("Authorisation request (field 55, masked where sensitive):")
        click.echo("\n".join("  " + line for line in dump(result.authorisation_data).splitlines()))
        click.echo(f"  57 track 2 equivalent data: {summary['track2']}")
