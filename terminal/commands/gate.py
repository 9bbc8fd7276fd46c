"""``terminal gate``: a transit or parking gate (issue 6), one tap after another.

``--mode transit`` decides offline (:mod:`terminal.apps.transit`): the kernel's
result, the deny list, the first-ride limit; every tap is journaled (``fsync``)
before the gate signals and uploaded to the back office in the background
(:mod:`terminal.apps.uploader`). ``--mode parking`` is
:func:`terminal.apps.parking.run_parking` (contract_gate.md).

One line per tap on standard output (``OPEN``/``DENY``/``RETRY``, masked PAN,
decision time, reason, tap id), or one JSON object per line with ``--json``; messages
on standard error. Exit codes: 2 configuration, 3 reader, 4 no card within
``--timeout``, 6 journal not writable.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from terminal.cli import READER_ENV

__all__ = ["gate_command"]


@click.command("gate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--mode",
    type=click.Choice(["transit", "parking"]),
    required=True,
    help="transit: offline decision and back office; parking: entry/exit.",
)
@click.option(
    "--reader",
    "reader_path",
    envvar=READER_ENV,
    metavar="PATH",
    help=f"Reader path (see `terminal readers`); default ${READER_ENV}, else the first.",
)
@click.option("--config", "config_path", metavar="FILE", help="Terminal configuration (JSON).")
@click.option(
    "--home",
    envvar="TAPSTACK_GATE_HOME",
    default="./var/gate",
    show_default=True,
    metavar="DIR",
    help="Gate state: journal, deny list (env TAPSTACK_GATE_HOME).",
)
@click.option(
    "--issuer",
    "issuer_url",
    envvar="TAPSTACK_ISSUER_URL",
    metavar="URL",
    help="Issuer service (parking; env TAPSTACK_ISSUER_URL).",
)
@click.option(
    "--terminal-id",
    envvar="TAPSTACK_TERMINAL_ID",
    metavar="ID",
    help="This terminal's id at the issuer (parking).",
)
@click.option(
    "--terminal-key",
    envvar="TAPSTACK_TERMINAL_KEY",
    metavar="KEY",
    help="This terminal's credential at the issuer (parking; env TAPSTACK_TERMINAL_KEY).",
)
@click.option(
    "--taps",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N taps (default: until Ctrl-C).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Give up (exit code 4) when no card comes, or a card stays, for S s.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per tap and line.")
@click.option(
    "--backoffice",
    "backoffice_url",
    envvar="TAPSTACK_BACKOFFICE_URL",
    metavar="URL",
    help="Transit: back office to upload taps to and fetch the deny list from.",
)
@click.option(
    "--gate-id",
    envvar="TAPSTACK_GATE_ID",
    metavar="ID",
    help="Transit: this gate's id (`backoffice gate add`).",
)
@click.option(
    "--gate-key",
    envvar="TAPSTACK_GATE_KEY",
    metavar="KEY",
    help="Transit: this gate's key at the back office (env TAPSTACK_GATE_KEY).",
)
@click.option(
    "--seal-key",
    envvar="TAPSTACK_SEAL_KEY",
    metavar="HEX",
    help="Transit: the back office's sealing public key (64 hex); required.",
)
@click.option("--zone", metavar="ZONE", help="Transit: the gate's zone or station.")
@click.option(
    "--direction",
    type=click.Choice(["single", "on", "off"]),
    default="single",
    show_default=True,
    help="Transit: single (flat fare) or tap on/off (zones).",
)
@click.option(
    "--nominal-amount",
    default="1.00",
    show_default=True,
    metavar="AMOUNT",
    help="Transit: the amount (9F02) the kernel runs with.",
)
@click.option(
    "--first-ride-limit",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    metavar="N",
    help="Transit: opens per day for a card the back office has not acknowledged yet.",
)
@click.option(
    "--deny-refresh",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Transit: deny-list poll interval.",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="S",
    help="Transit: at exit, wait up to S s for uploads to finish.",
)
@click.option("--tariff", "tariff_path", metavar="FILE", help="Parking: tariff (JSON).")
@click.option(
    "--max-amount",
    metavar="AMOUNT",
    help="Parking: pre-authorisation amount (default from the tariff).",
)
@click.option(
    "--lane",
    type=click.Choice(["auto", "entry", "exit"]),
    envvar="TAPSTACK_PARKING_LANE",
    default="auto",
    show_default=True,
    help="Parking: auto (a card with an open stay exits, any other enters), entry or exit.",
)
@click.option(
    "--now",
    "now",
    metavar="TIME",
    help="Parking: run as if it were TIME (ISO 8601, UTC without an offset) at every tap; "
    "for replays and demos. Default: the system clock.",
)
def gate_command(
    mode: str,
    reader_path: str | None,
    config_path: str | None,
    home: str,
    issuer_url: str | None,
    terminal_id: str | None,
    terminal_key: str | None,
    taps: int | None,
    timeout: float | None,
    as_json: bool,
    backoffice_url: str | None,
    gate_id: str | None,
    gate_key: str | None,
    seal_key: str | None,
    zone: str | None,
    direction: str,
    nominal_amount: str,
    first_ride_limit: int,
    deny_refresh: float,
    drain: float,
    tariff_path: str | None,
    max_amount: str | None,
    lane: str = "auto",
    now: str | None = None,
) -> None:
    """Run a gate: wait for a card, decide, open or deny, wait for the next.

    Transit (issue 6): opens offline when the card completes the kernel (ODA passed
    or an online cryptogram), is not on the deny list, and, while the back office does
    not know it yet, stays within --first-ride-limit opens a day. Each tap is in the
    journal (fsync) under --home before the gate opens, then uploaded (store and
    forward); track 2 only sealed to --seal-key. Runs until Ctrl-C or --taps N.
    """
    if mode == "parking":
        from terminal.apps.parking import run_parking

        clock = None
        if now is not None:
            try:
                fixed = datetime.fromisoformat(now)
            except ValueError:
                raise click.BadParameter(
                    f"not an ISO 8601 time: {now!r}", param_hint="--now"
                ) from None
            fixed = fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC)
            clock = lambda: fixed  # noqa: E731
        run_parking(
            reader_path=reader_path, config_path=config_path, home=home,
            issuer_url=issuer_url, terminal_id=terminal_id, terminal_key=terminal_key,
            tariff_path=tariff_path, max_amount=max_amount, taps=taps, timeout=timeout,
            as_json=as_json, lane=lane, clock=clock,
        )  # fmt: skip
        return
    from terminal.apps.transit import run_transit

    run_transit(
        reader_path=reader_path, config_path=config_path, home=home,
        backoffice_url=backoffice_url, gate_id=gate_id, gate_key=gate_key, seal_key=seal_key,
        zone=zone, direction=direction, nominal_amount=nominal_amount,
        first_ride_limit=first_ride_limit, deny_refresh=deny_refresh, taps=taps,
        timeout=timeout, as_json=as_json, drain=drain,
    )  # fmt: skip
