"""The ``issuer`` command: a click group (``issuer --help``).

Every subcommand has ``--help`` and ``--json``; output is masked; errors are
:class:`~issuer.commands.common.CliError` with the exit codes of :mod:`issuer.errors`
(the table all four tools share, :mod:`clikit.exits`, which ``issuer --help`` ends
with), shown as :mod:`clikit.errors` says.
``--home`` defaults to ``$TAPSTACK_ISSUER_HOME`` (else ``~/.tapstack/issuer``) and
``--db`` to ``$TAPSTACK_DB`` (else the home's database).

The commands of :mod:`issuer.commands` are imported only when run or asked for their
own help (:data:`LAZY_COMMANDS`); ``issuer --help`` lists them from the short help
kept beside each name, importing none of them, nor the composition root
(:mod:`issuer.bootstrap`), which a command imports when it opens the issuer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from clikit.errors import ToolFailure, listen_exit
from clikit.lazy import LazyGroup
from issuer.commands.common import CliError, CliState
from issuer.config import ENV_DB, ENV_HOME
from issuer.errors import IssuerError

__all__ = ["LAZY_COMMANDS", "IssuerGroup", "cli", "main"]

#: The commands of :mod:`issuer.commands`: name -> ("module:attribute" of a
#: :class:`click.Command`, its short help in full, which ``issuer --help`` shortens as
#: click does), each imported only when run or asked for its own help. A new command
#: adds its line here; tests/test_startup.py checks that each short help is the
#: command's own.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "issuer.commands.setup:init",
        "Make a fresh issuer: key store, database, CA, issuer keys and the default ranges "
        "(Visa 476173, token 489537; Mastercard 541333, token 520474) with their master "
        "keys (none of these with --no-default-ranges), and its TLS folder (HOME/tls): a "
        "private CA for terminal certificates and the server's certificate, or imported "
        "ones.",
    ),
    "keys": (
        "issuer.commands.setup:keys",
        "Issuer master keys (per scheme, BIN range, CVN and version) and RSA keys: "
        "versions and KCVs only, never a key.",
    ),
    "range": (
        "issuer.commands.ranges:range_",
        "Card and token ranges: add, list, show, retire.",
    ),
    "tls": (
        "issuer.commands.setup:tls",
        "The issuer's TLS: its CA for terminal certificates and its server certificate.",
    ),
    "account": (
        "issuer.commands.accounts:account",
        "Cardholder accounts: create, credit, show, list, close.",
    ),
    "card": (
        "issuer.commands.cards:card",
        "Cards: provision, register, list, show, suspend, resume, close.",
    ),
    "token": (
        "issuer.commands.cards:token",
        "Payment tokens: list, show, suspend, resume, delete, channels.",
    ),
    "txn": (
        "issuer.commands.operations:txn",
        "Authorisation records (what the authorisation service wrote).",
    ),
    "terminal": (
        "issuer.commands.operations:terminal",
        "Terminals allowed to ask for authorisations, and their merchants' QR codes.",
    ),
    "wallet": (
        "issuer.commands.qr:wallet",
        "Phone wallets allowed to pay merchant-presented QR codes: add, list, revoke.",
    ),
    "operator": (
        "issuer.commands.operators:operator",
        "Operators of the HTTPS operator API (/v1/issuing/...): add, list, show, revoke.",
    ),
    "audit": (
        "issuer.commands.operators:audit",
        "The append-only audit log: who changed what, when, with what outcome.",
    ),
    "ledger": ("issuer.commands.setup:ledger", "The ledger's own checks."),
    "webhook": (
        "issuer.commands.events:webhook",
        "Webhook endpoints: add, list, show, enable, disable, remove, rotate-secret.",
    ),
    "events": (
        "issuer.commands.events:events",
        "Events (every state change): list, show, resend, deliver.",
    ),
    "controls": (
        "issuer.commands.controls:controls",
        "Spending controls of an account, card or token: set, show, clear.",
    ),
    "decisions": (
        "issuer.commands.controls:decisions",
        "The program's decision endpoint: real-time approve or decline, signed both ways.",
    ),
    "console": (
        "issuer.commands.console:console_command",
        "Run the issuer's web console: accounts, cards, tokens, terminals, ranges, "
        "authorisations as they arrive, events and their webhook deliveries, spending "
        "controls.",
    ),
    "serve-iso8583": (
        "issuer.commands.iso8583:serve_iso8583_command",
        "Run the authorisation service's ISO 8583 listener (1987 field layout, a 2-byte "
        "length header per message): 0100 authorisation, 0120 advice, 0200 financial, "
        "0400 reversal, 0800 sign-on and echo.",
    ),
}


class IssuerGroup(LazyGroup):
    """The ``issuer`` group (:class:`clikit.lazy.LazyGroup`: its :data:`LAZY_COMMANDS`
    imported on first use, failures shown as :mod:`clikit.errors` says): an
    :class:`IssuerError` is the :class:`CliError` of its exit code, and the issuer
    opened for the command is closed after it."""

    lazy_commands = LAZY_COMMANDS

    def translate(self, ctx: click.Context, exc: Exception) -> click.ClickException | None:
        if isinstance(exc, IssuerError):
            return CliError.from_issuer(exc)
        return None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        finally:
            state = ctx.find_object(CliState)
            if state is not None:
                state.close()


@click.group(cls=IssuerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_HOME,
    help=f"Issuer home folder [env {ENV_HOME}; default ~/.tapstack/issuer].",
)
@click.option("--db", envvar=ENV_DB, help=f"Database URL [env {ENV_DB}; default the home's].")
@click.option("--no-input", is_flag=True, help="Never prompt (fail instead).")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, db: str | None, no_input: bool) -> None:
    """tapstack issuer: provision cards and authorise payments."""
    ctx.obj = CliState(home=home, db=db, no_input=no_input)


@cli.command("serve")
@click.option("--bind", default="127.0.0.1:8583", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (port 0: any free port).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes sharing the socket, each one event loop (about one per "
              "core).")  # fmt: skip
@click.option("--home", "serve_home", type=click.Path(file_okay=False, path_type=Path),
              help="Issuer home (as the group's --home).")  # fmt: skip
@click.option("--db", "serve_db", help="Database URL (as the group's --db).")
@click.option("--transit-aggregation-limit", type=click.IntRange(1), default=1500,
              show_default=True, envvar="TAPSTACK_TRANSIT_AGGREGATION_LIMIT",
              help="Largest total a terminal of MCC 4111 may capture on one "
              "authorisation (minor units; above the authorised amount if funds "
              "allow).")  # fmt: skip
@click.option("--dev-plain-http", is_flag=True, envvar="TAPSTACK_DEV_PLAIN_HTTP",
              help="Serve plain HTTP, for local development only: credentials cross the "
              "network in clear and no terminal proves itself with a certificate.")  # fmt: skip
@click.option("--events-worker/--no-events-worker", default=True, show_default=True,
              help="Deliver events to webhook endpoints and expire stale holds in a thread "
              "of the first process (off: run `issuer events deliver` instead).")  # fmt: skip
@click.option("--webhook-retry-base", type=click.FloatRange(0.001, 3600), default=30.0,
              show_default=True, metavar="SECONDS",
              help="The first retry's wait of a failed delivery, doubled after each "
              "failure (at most an hour).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the address as JSON on stdout.")
@click.pass_context
def serve_command(
    ctx: click.Context,
    bind: str,
    workers: int,
    serve_home: Path | None,
    serve_db: str | None,
    transit_aggregation_limit: int,
    dev_plain_http: bool,
    events_worker: bool,
    webhook_retry_base: float,
    as_json: bool,
) -> None:
    """Run the authorisation service (HTTPS API; GET /openapi.json documents it).

    Mutual TLS with the home's TLS folder (`issuer tls show`): the server certificate,
    and a client certificate of the issuer's CA required of every terminal, naming the
    terminal whose credential it presents (`issuer terminal add` issues it), and of
    every operator of the operator API, /v1/issuing/... (`issuer operator add`). Prints
    "listening on https://HOST:PORT" on standard error when ready (with --json also
    {"url": ...} on standard output). SIGHUP takes up a renewed server certificate
    (`issuer tls renew-server`) without a restart. Stop with Ctrl-C or SIGTERM: the
    requests under way are answered and committed first. A busy address is one line
    and exit code 4 (conflict). A thread of the first process delivers events to the
    webhook endpoints (`issuer webhook`) and expires stale holds (`issuer events
    deliver` documents it).
    """
    from httpserve import ListenError
    from httpserve.server import serve
    from issuer.bootstrap import open_issuer
    from issuer.commands.events import make_deliverer
    from issuer.domain.clearing import Clearing
    from issuer.domain.delivery import DeliveryPolicy, Worker
    from issuer.service import Api, ServiceApp

    state: CliState = ctx.ensure_object(CliState)
    state.home = serve_home or state.home
    state.db = serve_db or state.db
    setup = state.service(bind, "127.0.0.1:8583", plain=dev_plain_http, what="serve plain HTTP")
    home, secret, folder, context = setup.config.home, setup.secret, setup.tls, setup.context
    scheme = "http" if context is None else "https"

    first = os.getpid()

    def open_app() -> ServiceApp:
        app = open_issuer(home, db_url=state.db, passphrase=secret, pin=secret)
        clearing = Clearing(app, transit_aggregation_limit=transit_aggregation_limit)
        api = Api(app, clearing=clearing, require_certificate=context is not None)
        if not events_worker or os.getpid() != first:
            return ServiceApp(api)
        # The first process opens its application after forking the others: the
        # thread starts in no process that forks later.
        policy = DeliveryPolicy(retry_base=webhook_retry_base)
        worker = Worker(make_deliverer(app, policy))
        worker.start()
        return ServiceApp(api, on_close=worker.stop)

    def ready(h: str, p: int) -> None:
        click.echo(f"listening on {scheme}://{h}:{p}", err=True)
        if as_json:
            click.echo(json.dumps({"url": f"{scheme}://{h}:{p}", "workers": workers}))

    def reload() -> None:
        if folder is not None and context is not None:
            folder.reload(context)

    try:
        serve(
            open_app, setup.host, setup.port, workers=workers,
            ssl_context=context, ready=ready, reload=reload,
        )  # fmt: skip
    except ListenError as exc:
        raise ToolFailure.of(str(exc), listen_exit(exc.errno)) from None


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="issuer")
