"""``terminal gate transit``: a transit gate, one tap after another.

The gate decides offline (:class:`terminal.apps.transit.TransitGate`): the kernel's
result, the deny list, the first-ride limit. Every tap is journaled (``fsync``) before
the gate signals and uploaded to the back office in the background
(:class:`terminal.apps.transit.TransitLane`, :mod:`terminal.apps.uploader`); track 2
is kept only sealed to the back office's key (``--seal-key``).

One line per tap on standard output (``OPEN``/``DENY``/``RETRY``, masked PAN, decision
time, reason, tap id), or one JSON object per line with ``--json``; messages on
standard error. Exit codes (``terminal --help``): 2 usage, 8 no card within
``--timeout``, 9 reader, 10 configuration or gate state, 11 journal not writable.
"""

from __future__ import annotations

import sys

import click

from clikit.errors import ToolFailure
from clikit.exits import Exit
from emvwire.currency import currency_by_code, parse_amount
from emvwire.pki import PkiError
from emvwire.tls import ClientTls
from terminal.apps.denylist import DenyListError
from terminal.apps.gate import emitter, run_gate
from terminal.apps.journal import JournalError
from terminal.apps.stream import JetStreamLink
from terminal.apps.transit import DIRECTIONS, TransitLane, TransitSettings
from terminal.apps.uploader import BackOfficeClient
from terminal.commands.common import (
    ConfigFailure,
    ReaderFailure,
    client_tls,
    dev_plain_http_option,
    gate_failures,
    gate_options,
    load_terminal_config,
    open_cli_reader,
)
from terminal.kernel.entry_point import EntryPoint

__all__ = ["JournalFailure", "transit_command"]


class JournalFailure(ToolFailure):
    """The gate's journal cannot be written: the gate stays closed (exit 11)."""

    exit_code = Exit.STORAGE


def _say(text: str) -> None:
    click.echo(text, err=True)


def _seal_key(seal_key: str) -> bytes:
    """The back office's sealing public key of ``--seal-key``."""
    try:
        key = bytes.fromhex(seal_key)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise click.BadParameter("--seal-key is 64 hex digits (an X25519 public key)")
    return key


def _clients(
    url: str | None, gate_id: str, gate_key: str | None, tls: ClientTls
) -> tuple[BackOfficeClient, BackOfficeClient] | None:
    """One connection for the uploads, one for the deny list (two threads)."""
    if not url or not gate_key:
        return None
    try:
        return (
            BackOfficeClient(url, gate_id, gate_key, tls=tls),
            BackOfficeClient(url, gate_id, gate_key, tls=tls),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _nats(
    url: str | None, operator: str | None, gate_id: str, tls: ClientTls
) -> JetStreamLink | None:
    """The NATS server of ``--nats`` (with ``--operator``)."""
    if not url:
        return None
    if not operator:
        raise click.BadParameter("--nats needs --operator (env TAPSTACK_OPERATOR)")
    try:
        return JetStreamLink(url, operator, gate_id, tls.for_nats(url))
    except (ValueError, PkiError) as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("transit")
@gate_options
@click.option("--backoffice", "backoffice_url", envvar="TAPSTACK_BACKOFFICE_URL", metavar="URL",
              help="Back office to upload taps to and fetch the deny list from "
              "(HTTPS; one machine).")  # fmt: skip
@click.option("--nats", "nats_url", envvar="TAPSTACK_NATS_URL", metavar="URL",
              help="Instead of --backoffice: NATS with JetStream (tls://HOST:PORT; "
              "nats:// only with --dev-plain-http) to publish taps to and follow the "
              "deny list on (back offices on several machines; env "
              "TAPSTACK_NATS_URL).")  # fmt: skip
@click.option("--operator", envvar="TAPSTACK_OPERATOR", metavar="NAME",
              help="With --nats: the transit operator (`backoffice nats setup "
              "--operator`; env TAPSTACK_OPERATOR).")  # fmt: skip
@click.option("--nats-ca", envvar="TAPSTACK_NATS_CA", metavar="FILE",
              help="CA (PEM) NATS's certificate is verified with (env TAPSTACK_NATS_CA); "
              "--cert and --cert-key are presented to it.")  # fmt: skip
@click.option("--gate-id", envvar="TAPSTACK_GATE_ID", metavar="ID",
              help="This gate's id (`backoffice gate add`).")  # fmt: skip
@click.option("--gate-key", envvar="TAPSTACK_GATE_KEY", metavar="KEY",
              help="This gate's key at the back office (env TAPSTACK_GATE_KEY).")  # fmt: skip
@click.option("--backoffice-ca", envvar="TAPSTACK_BACKOFFICE_CA", metavar="FILE",
              help="CA (PEM) the back office's certificate is verified with: its "
              "tls/server-ca.crt (env TAPSTACK_BACKOFFICE_CA).")  # fmt: skip
@click.option("--cert", envvar="TAPSTACK_GATE_CERT", metavar="FILE",
              help="This gate's TLS client certificate (PEM, `backoffice gate add`; env "
              "TAPSTACK_GATE_CERT).")  # fmt: skip
@click.option("--cert-key", envvar="TAPSTACK_GATE_CERT_KEY", metavar="FILE",
              help="Its private key (PEM; env TAPSTACK_GATE_CERT_KEY).")  # fmt: skip
@dev_plain_http_option
@click.option("--seal-key", envvar="TAPSTACK_SEAL_KEY", metavar="HEX",
              help="The back office's sealing public key (64 hex); required.")  # fmt: skip
@click.option("--zone", metavar="ZONE", help="The gate's zone or station.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="single", show_default=True,
              help="single (flat fare) or tap on/off (zones).")  # fmt: skip
@click.option("--nominal-amount", default="1.00", show_default=True, metavar="AMOUNT",
              help="The amount (9F02) the kernel runs with.")  # fmt: skip
@click.option("--first-ride-limit", type=click.IntRange(min=0), default=2, show_default=True,
              metavar="N", help="Opens per day for a card the back office has not "
              "acknowledged yet.")  # fmt: skip
@click.option("--deny-refresh", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, metavar="S", help="Deny-list poll interval.")  # fmt: skip
@click.option("--drain", type=click.FloatRange(min=0), default=5.0, show_default=True,
              metavar="S", help="At exit, wait up to S s for uploads to finish.")  # fmt: skip
def transit_command(
    reader_path: str | None,
    config_path: str | None,
    home: str,
    taps: int | None,
    timeout: float | None,
    as_json: bool,
    backoffice_url: str | None,
    nats_url: str | None,
    operator: str | None,
    nats_ca: str | None,
    gate_id: str | None,
    gate_key: str | None,
    backoffice_ca: str | None,
    cert: str | None,
    cert_key: str | None,
    dev_plain_http: bool | None,
    seal_key: str | None,
    zone: str | None,
    direction: str,
    nominal_amount: str,
    first_ride_limit: int,
    deny_refresh: float,
    drain: float,
) -> None:
    """Run a transit gate: wait for a card, decide offline, open or deny, wait again.

    Opens when the card completes the kernel (ODA passed or an online cryptogram), is
    not on the deny list, and, while the back office does not know it yet, stays
    within --first-ride-limit opens a day. Each tap is in the journal (fsync) under
    --home before the gate opens, then uploaded (store and forward); track 2 only
    sealed to --seal-key. Runs until Ctrl-C or --taps N.
    """
    if not seal_key:
        raise click.UsageError(
            "the transit gate needs --seal-key HEX (env TAPSTACK_SEAL_KEY): the back "
            "office's sealing public key, printed by `backoffice gate add`; without it "
            "track 2 could not be kept from the journal"
        )
    if not gate_id:
        raise click.UsageError(
            "the transit gate needs --gate-id (env TAPSTACK_GATE_ID): the id `backoffice gate "
            "add` printed"
        )
    if backoffice_url and not gate_key:
        raise click.BadParameter("--backoffice needs --gate-key (env TAPSTACK_GATE_KEY)")
    if backoffice_url and nats_url:
        raise click.BadParameter("--backoffice (HTTP) or --nats, not both")
    key = _seal_key(seal_key)
    config = load_terminal_config(config_path)
    try:
        currency = currency_by_code(config.currency)
        amount = parse_amount(nominal_amount, currency.exponent)
    except ValueError as exc:
        raise click.BadParameter(f"--nominal-amount: {exc}") from exc
    try:
        settings = TransitSettings(
            gate_id, key, zone=zone, direction=direction, nominal_amount=amount,
            currency=f"{currency.numeric:03d}", first_ride_limit=first_ride_limit,
        )  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    tls = client_tls(backoffice_ca, cert, cert_key, dev_plain_http)
    clients = _clients(backoffice_url, gate_id, gate_key, tls)
    link = _nats(nats_url, operator, gate_id, client_tls(nats_ca, cert, cert_key, dev_plain_http))
    try:
        lane = TransitLane(settings, home, backoffice=clients, nats=link,
                           deny_refresh=deny_refresh, notice=_say)  # fmt: skip
    except (JournalError, DenyListError, ValueError, OSError) as exc:
        raise ConfigFailure(
            f"gate state in {home}: {exc}; repair or move the folder, or choose another with --home"
        ) from exc
    try:
        reader = open_cli_reader(reader_path)
    except ReaderFailure:
        lane.close(drain=0)
        raise
    lane.start()
    if clients is None and link is None:
        _say("no --backoffice: taps stay in the journal until a gate with one uploads them")
    _say(
        f"gate {gate_id} (transit, {direction}{', zone ' + zone if zone else ''}) on "
        f"{reader.path}: {len(lane.journal.pending())} taps to upload, deny list version "
        f"{lane.deny_list.version} ({len(lane.deny_list)} cards)"
    )
    try:
        with gate_failures(reader):
            run_gate(reader, EntryPoint(config), lane.transaction, lane.gate.decide,
                     emitter(as_json, sys.stdout), taps=taps, timeout=timeout,
                     after=lane.tapped)  # fmt: skip
    except OSError as exc:
        raise JournalFailure(
            f"the journal cannot be written ({exc}): the gate stays closed; free space or "
            "fix the permissions of --home, then start the gate again"
        ) from exc
    finally:
        reader.close()
        lane.close(drain)
