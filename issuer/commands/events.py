"""``issuer webhook ...`` (endpoints that receive events) and ``issuer events ...`` (the
outbox: list, show, resend, and the delivery worker as a process of its own).

The logic is the domain's (:mod:`issuer.domain.webhooks`, :mod:`issuer.domain.events`,
:mod:`issuer.domain.delivery`); these commands parse, call and print.
"""

from __future__ import annotations

import re
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from issuer.commands.common import CliState, emit, json_option, pass_state, table
from issuer.model.events import EVENT_TYPES, Event, WebhookEndpoint

if TYPE_CHECKING:
    from issuer.bootstrap import IssuerApp
    from issuer.domain.delivery import Deliverer, DeliveryPolicy
    from issuer.domain.events import Events
    from issuer.domain.webhooks import Webhooks

__all__ = ["events", "make_deliverer", "parse_duration", "webhook"]

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``24h``, ``3d`` as a time span; a usage error else."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise click.BadParameter(
            "a duration is a number with s, m, h or d (24h)", param_hint=option
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def make_deliverer(app: IssuerApp, policy: DeliveryPolicy) -> Deliverer:
    """The delivery worker's :class:`~issuer.domain.delivery.Deliverer` on an opened
    issuer (``issuer serve`` and ``issuer events deliver``)."""
    from issuer.domain.delivery import Deliverer
    from issuer.domain.webhooks import Webhooks

    return Deliverer(app.ledger, Webhooks(app.ledger, app.keys), policy)


def _webhooks(state: CliState) -> Webhooks:
    from issuer.domain.webhooks import Webhooks

    app = state.app()
    return Webhooks(app.ledger, app.keys, app.service.acting)


def _endpoint_lines(e: WebhookEndpoint) -> list[str]:
    lines = [
        f"endpoint  {e.id}",
        f"url       {e.url}",
        f"events    {', '.join(e.events)}",
        f"status    {e.status.value}",
    ]
    if e.terminal_id:
        lines.append(f"terminal  {e.terminal_id}")
    if e.description:
        lines.append(f"about     {e.description}")
    if e.ca_file:
        lines.append(f"CA file   {e.ca_file}")
    if e.previous_secret_until:
        lines.append(f"the previous secret signs too until {e.previous_secret_until[:19]}")
    return lines


def _secret_lines(secret: str) -> list[str]:
    return [
        f"secret    {secret}",
        "(shown once: only a sealed copy is kept; receivers check Tapstack-Signature with it)",
    ]


@click.group()
def webhook() -> None:
    """Webhook endpoints: add, list, show, enable, disable, remove, rotate-secret."""


@webhook.command("add")
@click.argument("url")
@click.option("--events", "event_types", required=True, metavar="TYPE,...",
              help=f"Event types to receive, comma-separated, or * for all: "
              f"{', '.join(EVENT_TYPES)}.")  # fmt: skip
@click.option("--description", default="", help="What the endpoint is for.")
@click.option("--terminal", "terminal_id", metavar="ID",
              help="Only this terminal's authorisations and refunds (a merchant's "
              "notification that its payment succeeded).")  # fmt: skip
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA certificate (PEM) that verifies the endpoint's TLS certificate "
              "[default: the system's trust store].")  # fmt: skip
@click.option("--dev-plain-http", is_flag=True,
              help="Accept http:// to this machine (localhost, 127.0.0.1, ::1), for local "
              "development only: deliveries cross in clear.")  # fmt: skip
@json_option
@pass_state
def webhook_add(
    state: CliState,
    url: str,
    event_types: str,
    description: str,
    terminal_id: str | None,
    ca_file: Path | None,
    dev_plain_http: bool,
    as_json: bool,
) -> None:
    """Add an endpoint (https://, TLS verified); prints its signing secret ONCE."""
    endpoint, secret = _webhooks(state).add(
        url, event_types.split(","), description=description, terminal_id=terminal_id,
        ca_file=ca_file, dev_plain_http=dev_plain_http,
    )  # fmt: skip
    emit(
        {**endpoint.to_json(), "secret": secret},
        as_json,
        [*_endpoint_lines(endpoint), *_secret_lines(secret)],
    )


@webhook.command("list")
@json_option
@pass_state
def webhook_list(state: CliState, as_json: bool) -> None:
    """Every endpoint (never a secret)."""
    found = _webhooks(state).list()
    emit(
        [e.to_json() for e in found],
        as_json,
        table(
            ["endpoint", "status", "events", "terminal", "url"],
            [(e.id, e.status.value, ",".join(e.events), e.terminal_id, e.url) for e in found],
        ),
    )


@webhook.command("show")
@click.argument("endpoint_id")
@json_option
@pass_state
def webhook_show(state: CliState, endpoint_id: str, as_json: bool) -> None:
    """One endpoint."""
    endpoint = _webhooks(state).get(endpoint_id)
    emit(endpoint.to_json(), as_json, _endpoint_lines(endpoint))


@webhook.command("enable")
@click.argument("endpoint_id")
@json_option
@pass_state
def webhook_enable(state: CliState, endpoint_id: str, as_json: bool) -> None:
    """Deliver to an endpoint again (its waiting deliveries go on)."""
    endpoint = _webhooks(state).enable(endpoint_id)
    emit(endpoint.to_json(), as_json, f"{endpoint.id} is {endpoint.status.value}")


@webhook.command("disable")
@click.argument("endpoint_id")
@json_option
@pass_state
def webhook_disable(state: CliState, endpoint_id: str, as_json: bool) -> None:
    """Stop delivering to an endpoint (its pending deliveries wait; the events of the
    time it is disabled are not delivered to it)."""
    endpoint = _webhooks(state).disable(endpoint_id)
    emit(endpoint.to_json(), as_json, f"{endpoint.id} is {endpoint.status.value}")


@webhook.command("remove")
@click.argument("endpoint_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def webhook_remove(state: CliState, endpoint_id: str, yes: bool, as_json: bool) -> None:
    """Delete an endpoint and its deliveries (the events stay)."""
    if not yes:
        if not state.can_prompt():
            raise click.UsageError("removing an endpoint needs --yes (no terminal to ask)")
        click.confirm(f"Remove {endpoint_id} and its deliveries?", abort=True, err=True)
    _webhooks(state).remove(endpoint_id)
    emit({"id": endpoint_id, "removed": True}, as_json, f"removed {endpoint_id}")


@webhook.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--grace", default="24h", show_default=True, metavar="DURATION",
              help="How long the old secret signs too, beside the new (0 to 7d).")  # fmt: skip
@json_option
@pass_state
def webhook_rotate(state: CliState, endpoint_id: str, grace: str, as_json: bool) -> None:
    """A new signing secret, printed ONCE; during the grace period every delivery
    carries a v1 signature of each secret."""
    endpoint, secret = _webhooks(state).rotate_secret(endpoint_id, parse_duration(grace, "--grace"))
    emit(
        {**endpoint.to_json(), "secret": secret},
        as_json,
        [*_endpoint_lines(endpoint), *_secret_lines(secret)],
    )


@click.group()
def events() -> None:
    """Events (every state change): list, show, resend, deliver."""


def _events(state: CliState) -> Events:
    from issuer.domain.events import Events

    app = state.app()
    return Events(app.ledger, app.service.acting)


def _event_lines(e: Event) -> list[str]:
    return [
        f"event     {e.id}",
        f"type      {e.type.value}",
        f"object    {e.object_type} {e.object_id} (its event {e.sequence})",
        f"created   {e.created_at[:19]}",
    ]


@events.command("list")
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES), help="Only this type.")
@click.option("--object", "object_id", metavar="ID", help="Only this object's (txn_, card_...).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--starting-after", metavar="EVENT_ID",
              help="The page after this event (the last of the previous page).")  # fmt: skip
@json_option
@pass_state
def events_list(
    state: CliState,
    event_type: str | None,
    object_id: str | None,
    limit: int,
    starting_after: str | None,
    as_json: bool,
) -> None:
    """Events, newest first ({"data": [...], "has_more": ...} with --json)."""
    page = _events(state).list(
        event_type=event_type, object_id=object_id, limit=limit, starting_after=starting_after
    )
    lines = table(
        ["event", "created", "type", "object", "seq"],
        [(e.id, e.created_at[:19], e.type.value, e.object_id, e.sequence) for e in page.events],
    )
    if page.has_more and page.events:
        lines.append(f"(more: --starting-after {page.events[-1].id})")
    emit(page.to_json(), as_json, lines)


@events.command("show")
@click.argument("event_id")
@json_option
@pass_state
def events_show(state: CliState, event_id: str, as_json: bool) -> None:
    """One event (its object masked) and its deliveries."""
    event, deliveries = _events(state).get(event_id)
    lines = _event_lines(event)
    if deliveries:
        lines += table(
            ["endpoint", "status", "attempts", "last", "next attempt", "delivered"],
            [
                (d.endpoint_id, d.status.value, d.attempts, d.last_error or d.last_status,
                 d.to_json()["next_attempt_at"], d.delivered_at)
                for d in deliveries
            ],
        )  # fmt: skip
    emit({**event.to_json(), "deliveries": [d.to_json() for d in deliveries]}, as_json, lines)


@events.command("resend")
@click.argument("event_id")
@click.option("--endpoint", "endpoint_id", metavar="we_...",
              help="Only to this endpoint [default: every enabled endpoint "
              "subscribed].")  # fmt: skip
@json_option
@pass_state
def events_resend(state: CliState, event_id: str, endpoint_id: str | None, as_json: bool) -> None:
    """Deliver an event again, due now (the worker of `issuer serve` or `issuer events
    deliver` sends it)."""
    targets = _events(state).resend(event_id, endpoint_id)
    emit(
        {"event": event_id, "endpoints": targets},
        as_json,
        [f"{event_id} will be delivered again to {t}" for t in targets],
    )


@events.command("deliver")
@click.option("--once", is_flag=True,
              help="Expire stale holds, deliver what is due, record it and exit (a cron job); "
              "without: run until SIGTERM or Ctrl-C.")  # fmt: skip
@click.option("--retry-base", type=click.FloatRange(0.001, 3600), default=30.0,
              show_default=True, metavar="SECONDS",
              help="The first retry's wait, doubled after each failure (at most an "
              "hour).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=10.0, show_default=True,
              metavar="SECONDS", help="Per delivery request.")  # fmt: skip
@click.option("--expire-every", type=click.FloatRange(0), default=60.0, show_default=True,
              metavar="SECONDS", help="How often stale holds are expired (0: never).")  # fmt: skip
@json_option
@pass_state
def events_deliver(
    state: CliState,
    once: bool,
    retry_base: float,
    timeout: float,
    expire_every: float,
    as_json: bool,
) -> None:
    """Deliver events to webhook endpoints and expire stale holds, in a process of its
    own (`issuer serve` does the same in a thread unless --no-events-worker). Several
    may run on one database: each delivery is claimed by one at a time."""
    from issuer.domain.delivery import DeliveryPolicy, Worker

    policy = DeliveryPolicy(retry_base=retry_base, timeout=timeout, expire_every=expire_every)
    deliverer = make_deliverer(state.app(), policy)
    if once:
        try:
            report = deliverer.run_once()
        finally:
            deliverer.close()
        counts = report.to_json()
        emit(counts, as_json, ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    worker = Worker(deliverer)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo("delivering events (stop with Ctrl-C or SIGTERM)", err=True)
    worker.start()
    try:
        while not stop.wait(0.5) and worker.is_alive():
            pass
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        signal.signal(signal.SIGTERM, previous)
    emit({"stopped": True}, as_json, "stopped")
