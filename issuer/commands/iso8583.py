"""``issuer serve-iso8583``: the authorisation service's ISO 8583 listener."""

from __future__ import annotations

import json
from pathlib import Path

import click

from clikit.errors import ToolFailure, listen_exit
from issuer.commands.common import CliState

__all__ = ["serve_iso8583_command"]


@click.command("serve-iso8583")
@click.option("--bind", default="127.0.0.1:8584", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (port 0: any free port).")  # fmt: skip
@click.option("--home", "serve_home", type=click.Path(file_okay=False, path_type=Path),
              help="Issuer home (as the group's --home).")  # fmt: skip
@click.option("--db", "serve_db", help="Database URL (as the group's --db).")
@click.option("--transit-aggregation-limit", type=click.IntRange(1), default=1500,
              show_default=True, envvar="TAPSTACK_TRANSIT_AGGREGATION_LIMIT",
              help="Largest total a terminal of MCC 4111 may capture on one "
              "authorisation (minor units).")  # fmt: skip
@click.option("--dev-plain-http", "plain", is_flag=True, envvar="TAPSTACK_DEV_PLAIN_HTTP",
              help="Listen in plain TCP, for local development only: credentials cross "
              "the network in clear.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the address as JSON on stdout.")
@click.pass_context
def serve_iso8583_command(
    ctx: click.Context,
    bind: str,
    serve_home: Path | None,
    serve_db: str | None,
    transit_aggregation_limit: int,
    plain: bool,
    as_json: bool,
) -> None:
    """Run the authorisation service's ISO 8583 listener (1987 field layout, a
    2-byte length header per message): 0100 authorisation, 0120 advice, 0200
    financial, 0400 reversal, 0800 sign-on and echo.

    The same authoriser and ledger as `issuer serve` (HTTP): both may run at once.
    TLS with the home's TLS folder as `issuer serve`: a terminal's client certificate
    names it, and it signs on as that terminal only (`iso8583s://HOST:PORT` as the
    terminal's --issuer). Prints "listening on iso8583s://HOST:PORT" on standard error
    when ready (with --json also {"url": ...} on standard output). Stop with Ctrl-C or
    SIGTERM.
    """
    from httpserve import ListenError
    from issuer.bootstrap import open_issuer
    from issuer.domain.clearing import Clearing
    from issuer.service.iso8583 import Iso8583Handler
    from issuer.service.iso8583_server import serve_iso8583

    state: CliState = ctx.ensure_object(CliState)
    state.home = serve_home or state.home
    state.db = serve_db or state.db
    setup = state.service(bind, "127.0.0.1:8584", plain=plain, what="listen in plain TCP")
    context = setup.context
    app = open_issuer(setup.config.home, db_url=state.db, passphrase=setup.secret, pin=setup.secret)
    try:
        clearing = Clearing(app, transit_aggregation_limit=transit_aggregation_limit)
        handler = Iso8583Handler(app, clearing=clearing, require_certificate=context is not None)
        scheme = "iso8583" if context is None else "iso8583s"

        def ready(h: str, p: int) -> None:
            click.echo(f"listening on {scheme}://{h}:{p}", err=True)
            if as_json:
                click.echo(json.dumps({"url": f"{scheme}://{h}:{p}"}))

        try:
            serve_iso8583(
                handler, setup.host, setup.port, ssl_context=context,
                identify=handler.identify, ready=ready,
            )  # fmt: skip
        except ListenError as exc:
            raise ToolFailure.of(str(exc), listen_exit(exc.errno)) from None
    finally:
        app.close()
