"""``terminal gate parking``: a parking lane, one tap after another.

Entry pre-authorises the tariff's maximum at the issuer, exit completes the fee
(:class:`terminal.apps.parking.ParkingGate`, :func:`terminal.apps.parking.run_lane`).
One line per tap on standard output (``--json``: one JSON object), the customer
display's messages on standard error (``[display] ...``). The issuer is checked before
the first card is asked for: a terminal it refuses stops there (exit 6); an issuer that
does not answer is a warning, as the lane serves on (exits open, their completions
queued). Exit codes (``terminal --help``): 2 usage, 6 the issuer refused this terminal,
8 no card within ``--timeout``, 9 reader, 10 tariff or configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import click

from emvwire.currency import parse_amount
from emvwire.tls import ClientTls
from terminal.apps.parking import (
    LANES,
    ParkingDecision,
    ParkingGate,
    TariffError,
    lane_config,
    load_tariff,
    run_lane,
)
from terminal.apps.retail import utc_now
from terminal.commands.common import (
    ConfigFailure,
    HostUnreachableFailure,
    check_issuer,
    client_tls,
    gate_failures,
    gate_options,
    host_client,
    issuer_options,
    load_terminal_config,
    open_cli_reader,
)
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import UiMessage

__all__ = ["parking_command", "run_parking"]

#: Environment variable of the lane when ``--lane`` is not given.
LANE_ENV = "TAPSTACK_PARKING_LANE"


def _show(message: UiMessage, detail: str) -> None:
    """The customer display: standard error."""
    click.echo(f"[display] {message.text}{': ' + detail if detail else ''}", err=True)


def run_parking(
    *,
    reader_path: str | None,
    config_path: str | None,
    home: str,
    issuer_url: str | None,
    terminal_id: str | None,
    terminal_key: str | None,
    tariff_path: str | None,
    max_amount: str | None,
    taps: int | None,
    timeout: float | None,
    as_json: bool,
    lane: str | None = None,
    clock: Callable[[], datetime] | None = None,
    tls: ClientTls | None = None,
) -> None:
    """The body of ``terminal gate parking`` (its options by name; ``clock`` is
    ``--now``'s, ``tls`` the TLS options' :func:`~terminal.commands.common.client_tls`):
    a lane of :func:`terminal.apps.parking.run_lane` at the issuer, one line
    (``as_json``: one JSON object) per tap on standard output, until ``taps`` taps or
    Ctrl-C. ``lane`` defaults to ``$TAPSTACK_PARKING_LANE``, else ``auto``.
    Failures are the ``terminal`` CLI's :class:`click.ClickException` subclasses
    (:class:`~terminal.commands.common.NoCardEvent` when no card comes within ``timeout`` s)."""
    if not (issuer_url and terminal_id and terminal_key):
        raise click.UsageError("parking pre-authorises online: give --issuer, --terminal-id "
                               "and --terminal-key")  # fmt: skip
    lane = lane or os.environ.get(LANE_ENV) or "auto"
    if lane not in LANES:
        raise click.BadParameter(f"lane is one of {', '.join(LANES)}, not {lane!r}")
    try:
        tariff = load_tariff(tariff_path)
        if max_amount is not None:
            pre = parse_amount(max_amount, tariff.currency.exponent)
            if pre <= 0:
                raise TariffError("--max-amount must be above zero")
            tariff = replace(tariff, pre_authorisation=pre)
    except (TariffError, ValueError) as exc:
        raise ConfigFailure(f"tariff: {exc}; fix the tariff file (--tariff)") from None
    try:
        config = lane_config(load_terminal_config(config_path), tariff)
    except TariffError as exc:
        raise ConfigFailure(f"{exc}; fix the tariff (--tariff) or the configuration") from None
    host = host_client(issuer_url, terminal_id, terminal_key, tls or ClientTls())
    try:
        check_issuer(host, issuer_url, terminal_id)
    except HostUnreachableFailure as exc:
        # A lane serves on: exits open and their completions are queued, entries wait
        # for the issuer (each tap says so); a refused credential never heals: it stops.
        click.echo(f"warning: {exc.message}; the lane serves on (exits queued)", err=True)
    except click.ClickException:
        host.close()
        raise
    gate = ParkingGate(home, host, tariff, lane=lane, clock=clock or utc_now, display=_show)
    reader = open_cli_reader(reader_path)

    def report(decision: ParkingDecision) -> None:
        click.echo(json.dumps(decision.to_json()) if as_json else decision.text())

    try:
        with gate_failures(reader):
            run_lane(gate, reader, EntryPoint(config), report, taps=taps, timeout=timeout)
    finally:
        reader.close()
        host.close()
        gate.close()


@click.command("parking")
@gate_options
@issuer_options
@click.option("--tariff", "tariff_path", metavar="FILE", help="Tariff (JSON).")
@click.option("--max-amount", metavar="AMOUNT",
              help="Pre-authorisation amount (default from the tariff).")  # fmt: skip
@click.option("--lane", type=click.Choice(LANES), envvar=LANE_ENV, default="auto",
              show_default=True, help="auto (a card with an open stay exits, any other "
              "enters), entry or exit.")  # fmt: skip
@click.option("--now", metavar="TIME",
              help="Run as if it were TIME (ISO 8601, UTC without an offset) at every tap; "
              "for replays and demos. Default: the system clock.")  # fmt: skip
def parking_command(
    reader_path: str | None,
    config_path: str | None,
    home: str,
    taps: int | None,
    timeout: float | None,
    as_json: bool,
    issuer_url: str | None,
    terminal_id: str | None,
    terminal_key: str | None,
    issuer_ca: str | None,
    cert: str | None,
    cert_key: str | None,
    dev_plain_http: bool | None,
    tariff_path: str | None,
    max_amount: str | None,
    lane: str,
    now: str | None,
) -> None:
    """Run a parking lane: entry pre-authorises the tariff's maximum (MCC 7523), exit
    completes the fee from the tariff and the stay, releasing the rest.

    --lane auto serves both ways on one reader: a card with an open stay exits, any
    other enters. Runs until Ctrl-C or --taps N.
    """
    clock = None
    if now is not None:
        try:
            fixed = datetime.fromisoformat(now)
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 time: {now!r}", param_hint="--now") from None
        fixed = fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC)
        clock = lambda: fixed  # noqa: E731
    run_parking(
        reader_path=reader_path, config_path=config_path, home=home, issuer_url=issuer_url,
        terminal_id=terminal_id, terminal_key=terminal_key, tariff_path=tariff_path,
        max_amount=max_amount, taps=taps, timeout=timeout, as_json=as_json, lane=lane,
        clock=clock, tls=client_tls(issuer_ca, cert, cert_key, dev_plain_http),
    )  # fmt: skip
