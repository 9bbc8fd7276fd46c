"""``issuer console``: the issuer's web console (:mod:`issuer.console`) over HTTPS."""

from __future__ import annotations

import json
from pathlib import Path

import click

from clikit.errors import ToolFailure, listen_exit
from issuer.commands.common import CliState

__all__ = ["console_command"]


@click.command("console")
@click.option("--bind", default="127.0.0.1:8443", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (port 0: any free port).")  # fmt: skip
@click.option("--home", "serve_home", type=click.Path(file_okay=False, path_type=Path),
              help="Issuer home (as the group's --home).")  # fmt: skip
@click.option("--db", "serve_db", help="Database URL (as the group's --db).")
@click.option("--dev-plain-http", is_flag=True, envvar="TAPSTACK_DEV_PLAIN_HTTP",
              help="Serve plain HTTP, for local development only: the credential and the "
              "session cross the network in clear (and browsers keep no Secure cookie "
              "from http:// but on localhost).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the address as JSON on stdout.")
@click.pass_context
def console_command(
    ctx: click.Context,
    bind: str,
    serve_home: Path | None,
    serve_db: str | None,
    dev_plain_http: bool,
    as_json: bool,
) -> None:
    """Run the issuer's web console: accounts, cards, tokens, terminals, ranges,
    authorisations as they arrive, events and their webhook deliveries, spending
    controls.

    HTTPS with the server certificate of the home's TLS folder (`issuer tls show`; no
    client certificate asked for). Operators sign in with the id and credential
    `issuer operator add` printed; scope read sees every page, operations also
    suspends and resumes cards and resends events (each asked to confirm, and written
    to the audit log as the operator's: `issuer audit list`), keys sees the ranges.
    PANs are masked as in the CLI. Sessions last 8 hours and end when the console
    stops. The same home and database as `issuer serve`, which may run at once.
    Prints "console on https://HOST:PORT" on standard error when ready (with --json
    also {"url": ...} on standard output). Stop with Ctrl-C or SIGTERM.
    """
    from httpserve import ListenError
    from httpserve.server import serve
    from issuer.bootstrap import open_issuer
    from issuer.console import IssuerConsole

    state: CliState = ctx.ensure_object(CliState)
    state.home = serve_home or state.home
    state.db = serve_db or state.db
    setup = state.service(
        bind, "127.0.0.1:8443", plain=dev_plain_http, what="serve plain HTTP", clients=False
    )
    scheme = "http" if setup.context is None else "https"

    def open_app() -> IssuerConsole:
        app = open_issuer(
            setup.config.home, db_url=state.db, passphrase=setup.secret, pin=setup.secret
        )
        return IssuerConsole(app)

    def ready(h: str, p: int) -> None:
        click.echo(f"console on {scheme}://{h}:{p}", err=True)
        if as_json:
            click.echo(json.dumps({"url": f"{scheme}://{h}:{p}"}))

    def reload() -> None:
        if setup.tls is not None and setup.context is not None:
            setup.tls.reload(setup.context)

    try:
        serve(open_app, setup.host, setup.port, ssl_context=setup.context, ready=ready,
              reload=reload)  # fmt: skip
    except ListenError as exc:
        raise ToolFailure.of(str(exc), listen_exit(exc.errno)) from None
