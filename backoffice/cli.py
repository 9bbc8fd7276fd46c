"""``backoffice``: the transit back office as a click group (its own console script).

``init`` makes a home (keys, fares, database, TLS folder); ``gate add|renew|revoke|list``
registers gates (the key is printed once) and issues their TLS client certificates;
``tls show|renew-server`` shows and renews the server's certificate; ``serve`` runs
the gates' HTTP API with the engine in the background; ``aggregate`` runs one engine
pass now (deferred authorisations, trips and fares, aggregation at the issuer, debt
recovery), with a progress bar per stage on standard error when it is a terminal;
``consume`` is an instance on NATS JetStream instead of HTTP (taps from the operator's
stream, the deny list to its bucket, the engine in the background; ``nats setup``
makes the stream, consumer and bucket); ``--db postgresql://...`` puts the data on a
PostgreSQL database several instances share;
``trips``, ``riders``, ``aggregations`` and ``deny-list`` report; ``operator
add|list|revoke`` manages who signs in to ``console`` (the web console over HTTPS), whose
actions ``audit`` lists. ``--json`` everywhere;
data to standard output, messages to standard error; errors are
:class:`clikit.errors.ToolFailure` subclasses with the exit codes all four tools share
(:mod:`clikit.exits`, listed by ``backoffice --help``: :class:`HomeFailure` 10,
:class:`IssuerFailure` 2, a home made already or a folder that forbids the change 4, an
unknown gate 3, a busy address 4, NATS unreachable 7 or without the stream 10), with
``--json`` also as the JSON error object on standard output, never a traceback. The
engine, the HTTP service, the bus and the server are imported by the commands that run
them, not by ``--help`` or the reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from backoffice.errors import StoreError
from backoffice.operators import SCOPES as OPERATOR_SCOPES
from backoffice.store import CA_NAME, ENV_DB, ENV_HOME, Home, Store
from clikit.errors import ToolFailure, ToolGroup, listen_exit
from clikit.exits import Exit
from clikit.progress import stage_progress
from emvwire.pki import CLIENT_DAYS, DEFAULT_HOSTS, PkiError, hex_pairs
from emvwire.tls import (
    SERVER_CA,
    ClientTls,
    IssuedCertificate,
    TlsFolder,
    plan_folder,
    summary_lines,
)

if TYPE_CHECKING:  # imported by the commands that run them (not by --help)
    from backoffice.engine.context import PassReport, TransitHostClient
    from backoffice.stream import NatsLink, StreamError

__all__ = ["HomeFailure", "IssuerFailure", "StreamFailure", "backoffice", "main"]

DEFAULT_HOME = Path("var") / "backoffice"


class HomeFailure(ToolFailure):
    """No back office home, or one that cannot be used (exit 10)."""

    exit_code = Exit.CONFIG


class IssuerFailure(ToolFailure):
    """Issuer options missing or wrong (exit 2, usage)."""

    exit_code = Exit.USAGE


def _unknown_gate(exc: StoreError) -> ToolFailure:
    """A gate the store does not know, or revoked already (exit 3)."""
    return ToolFailure.of(f"{exc}: `backoffice gate list` shows the gates", Exit.NOT_FOUND)


class StreamFailure(ToolFailure):
    """NATS did not answer (exit 7); :func:`_stream_failure` also makes the exit 10 of
    a stream, consumer or bucket that is missing."""

    exit_code = Exit.UNREACHABLE


def _stream_failure(exc: StreamError) -> ToolFailure:
    """NATS unreachable (exit 7), or its names not set up (exit 10)."""
    from backoffice.stream import StreamUnreachableError

    if isinstance(exc, StreamUnreachableError):
        return StreamFailure(str(exc))
    return ToolFailure.of(str(exc), Exit.CONFIG)


def _home(ctx: click.Context, *, must_exist: bool = True) -> Home:
    home: Home = ctx.obj
    if must_exist and not home.exists():
        raise HomeFailure(f"{home.path} holds no back office: run `backoffice init`")
    return home


def _store(home: Home) -> Store:
    try:
        return Store(home)
    except (StoreError, OSError) as exc:
        raise HomeFailure(str(exc)) from None


def _out(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


#: Where the TLS options toward the issuer are kept for :func:`_issuer` (``ctx.meta``).
_ISSUER_TLS = "backoffice.issuer_tls"


def _keep_tls(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a TLS option toward the issuer for :func:`_issuer`."""
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_ISSUER_TLS, {})[param.name] = value


def _issuer_options(f: Any) -> Any:
    f = click.option("--dev-plain-http", is_flag=True, default=None, expose_value=False,
                     envvar="TAPSTACK_DEV_PLAIN_HTTP", callback=_keep_tls,
                     help="Local development only: plain HTTP, credentials in clear (an "
                     "http:// issuer URL accepted; serve: no TLS) (env "
                     "TAPSTACK_DEV_PLAIN_HTTP=1).")(f)  # fmt: skip
    f = click.option("--cert-key", envvar="TAPSTACK_TERMINAL_CERT_KEY", metavar="FILE",
                     expose_value=False, callback=_keep_tls,
                     help="Its private key (PEM; env TAPSTACK_TERMINAL_CERT_KEY).")(f)  # fmt: skip
    f = click.option("--cert", envvar="TAPSTACK_TERMINAL_CERT", metavar="FILE",
                     expose_value=False, callback=_keep_tls,
                     help="The back office's TLS client certificate at the issuer (PEM, "
                     "`issuer terminal add`; env TAPSTACK_TERMINAL_CERT).")(f)  # fmt: skip
    f = click.option("--issuer-ca", envvar="TAPSTACK_ISSUER_CA", metavar="FILE",
                     expose_value=False, callback=_keep_tls,
                     help="CA (PEM) the issuer's certificate is verified with: the "
                     "issuer's tls/server-ca.crt (env TAPSTACK_ISSUER_CA).")(f)  # fmt: skip
    f = click.option("--terminal-key", envvar="TAPSTACK_TERMINAL_KEY", metavar="KEY",
                     help="The back office's credential at the issuer (env "
                     "TAPSTACK_TERMINAL_KEY).")(f)  # fmt: skip
    f = click.option("--terminal-id", envvar="TAPSTACK_TERMINAL_ID", metavar="ID",
                     help="The back office's terminal id at the issuer (MCC 4111; env "
                     "TAPSTACK_TERMINAL_ID).")(f)  # fmt: skip
    f = click.option("--issuer", "issuer_url", envvar="TAPSTACK_ISSUER_URL", metavar="URL",
                     help="Issuer service (https://HOST:PORT; env TAPSTACK_ISSUER_URL). "
                     "Without it nothing is authorised or aggregated.")(f)  # fmt: skip
    return f


def _issuer(url: str | None, terminal_id: str | None, key: str | None) -> TransitHostClient | None:
    """The issuer client of the options (TLS as ``--issuer-ca``, ``--cert``,
    ``--cert-key`` and ``--dev-plain-http`` say)."""
    if not url:
        return None
    if not terminal_id or not key:
        raise IssuerFailure(
            "--issuer needs --terminal-id and --terminal-key (or TAPSTACK_TERMINAL_ID and "
            "TAPSTACK_TERMINAL_KEY): `issuer terminal add` printed them"
        )
    given = click.get_current_context().meta.get(_ISSUER_TLS, {})
    tls = ClientTls(
        given.get("issuer_ca"), given.get("cert"), given.get("cert_key"),
        bool(given.get("dev_plain_http")),
    )  # fmt: skip
    from backoffice.engine.context import TransitHostClient

    try:
        return TransitHostClient(url, terminal_id, key, tls=tls, timeout=10.0, retries=2)
    except ValueError as exc:
        raise IssuerFailure(str(exc)) from None


@click.group("backoffice", cls=ToolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar=ENV_HOME,
              default=DEFAULT_HOME, show_default=True,
              help=f"Back office home folder (env {ENV_HOME}).")  # fmt: skip
@click.option("--db", "db_url", envvar=ENV_DB, metavar="URL",
              help="PostgreSQL database (postgresql://USER@HOST:PORT/NAME), shared by "
              f"several instances; default the home's SQLite file (env {ENV_DB}).")  # fmt: skip
@click.pass_context
def backoffice(ctx: click.Context, home: Path, db_url: str | None) -> None:
    """Transit back office: taps from gates, trips and capped fares, deferred
    authorisation and aggregation at the issuer (MCC 4111), the deny list gates fetch,
    and debt recovery."""
    ctx.obj = Home(home, db_url or None)


def _read(file: IO[bytes] | None) -> bytes | None:
    return None if file is None else file.read()


@backoffice.command("init")
@click.option("--fares", "fares_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Fare rules (JSON, format of default_fares.json); default the shipped "
              "ones.")  # fmt: skip
@click.option("--card-reference-key", metavar="HEX",
              help="The gates' card reference key (16-64 bytes hex); default the demo "
              "key.")  # fmt: skip
@click.option("--tls-host", "tls_hosts", multiple=True, metavar="HOST",
              help="A host name or IP address of the server certificate gates connect to "
              f"(repeat; default {' and '.join(DEFAULT_HOSTS)}).")  # fmt: skip
@click.option("--tls-cert", type=click.File("rb"), metavar="FILE",
              help="Import this server certificate chain (PEM, leaf first) instead of "
              "making one (with --tls-key).")  # fmt: skip
@click.option(
    "--tls-key",
    type=click.File("rb"),
    metavar="FILE",
    help="The imported server certificate's private key (PEM, EC, unencrypted).",
)
@click.option(
    "--tls-server-ca",
    type=click.File("rb"),
    metavar="FILE",
    help="The CA gates verify an imported server certificate with.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def init_command(
    ctx: click.Context,
    fares_path: Path | None,
    card_reference_key: str | None,
    tls_hosts: tuple[str, ...],
    tls_cert: IO[bytes] | None,
    tls_key: IO[bytes] | None,
    tls_server_ca: IO[bytes] | None,
    as_json: bool,
) -> None:
    """Make a fresh back office home: sealing key pair, card reference key, fare rules,
    database, and its TLS folder (HOME/tls): a private CA for gate certificates and the
    certificate it serves gates with (or an imported one)."""
    home = _home(ctx, must_exist=False)
    key = None
    if card_reference_key is not None:
        try:
            key = bytes.fromhex(card_reference_key)
        except ValueError:
            raise click.BadParameter("hex digits", param_hint="--card-reference-key") from None
        if not 16 <= len(key) <= 64:
            raise click.BadParameter("16 to 64 bytes", param_hint="--card-reference-key")
    text = None
    if fares_path is not None:
        from backoffice.errors import FareError
        from backoffice.fares import load_fares

        try:
            load_fares(fares_path)
            text = fares_path.read_text()
        except (FareError, OSError) as exc:
            raise HomeFailure(f"--fares: {exc}; fix the fare file") from None
    try:
        tls = plan_folder(
            CA_NAME, hosts=tls_hosts or DEFAULT_HOSTS, server_cert=_read(tls_cert),
            server_key=_read(tls_key), server_ca=_read(tls_server_ca),
        )  # fmt: skip
    except PkiError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-*") from None
    if home.exists():
        raise ToolFailure.of(
            f"{home.path} already holds a back office: init never overwrites its keys; "
            "choose another --home",
            Exit.CONFLICT,
        )
    try:
        home.init(fares_text=text, card_reference_key=key, tls=tls)
    except (StoreError, PkiError, OSError) as exc:
        raise HomeFailure(f"{exc}; nothing was made: fix it and run init again") from None
    summary = home.tls.summary()
    info = {
        "home": str(home.path),
        "sealing_public_key": home.sealing_public_key().hex(),
        "tls": summary,
    }
    if as_json:
        _out(info)
    else:
        click.echo(f"Back office initialised in {home.path}")
        click.echo(f"  sealing public key {info['sealing_public_key']}")
        for line in summary_lines(summary, "gates"):
            click.echo(f"  {line}")


# --- gates -----------------------------------------------------------------------------------


@backoffice.group("gate")
def gate_group() -> None:
    """Gates allowed to upload taps."""


def _certificate_options(f: Any) -> Any:
    f = click.option("--days", type=click.IntRange(1, 3650), default=CLIENT_DAYS,
                     show_default=True, help="Validity of the certificate (days).")(f)  # fmt: skip
    f = click.option("--cert-dir", type=click.Path(file_okay=False, path_type=Path),
                     metavar="DIR",
                     help="Where to write ID.crt and, without --csr, ID.key (mode 0600, "
                     "written once) [default: HOME/gates].")(f)  # fmt: skip
    f = click.option("--csr", type=click.File("rb"), metavar="FILE",
                     help="Sign this certificate request (PEM, ECDSA P-256; `terminal csr "
                     "--kind gate` makes one): the gate's key never leaves it.")(f)  # fmt: skip
    return f


def _certify(
    home: Home, csr: IO[bytes] | None, days: int
) -> tuple[Callable[[str], IssuedCertificate], list[IssuedCertificate]]:
    """What issues a gate's certificate (for :meth:`Store.add_gate` and
    :meth:`Store.gate_certificate`) and the list it leaves the certificate in."""
    if not home.tls.exists():
        raise HomeFailure(f"{home.tls.path} holds no TLS folder: `backoffice tls init` "
                          "makes one")  # fmt: skip
    request = _read(csr)
    issued: list[IssuedCertificate] = []

    def certify(gate_id: str) -> IssuedCertificate:
        issued.append(home.tls.issue_client("gate", gate_id, csr=request, days=days))
        return issued[-1]

    return certify, issued


def _write_certificate(
    home: Home, issued: IssuedCertificate, gate_id: str, cert_dir: Path | None
) -> dict[str, Any]:
    """Write a gate's certificate (and its key if made here); what to show of it
    (:meth:`IssuedCertificate.write`) and the CA it verifies the back office with."""
    try:
        shown = issued.write(cert_dir or home.path / "gates", gate_id)
    except (PkiError, OSError) as exc:
        raise HomeFailure(f"certificate of {gate_id} not written: {exc}") from None
    return {**shown, "backoffice_ca_file": str(home.tls.file(SERVER_CA))}


def _echo_certificate(cert: dict[str, Any]) -> None:
    click.echo(f"  certificate        {hex_pairs(cert['serial'])} until {cert['not_after'][:10]}")
    click.echo(f"                     {cert['cert_file']}")
    if "key_file" in cert:
        click.echo(f"                     {cert['key_file']}  (its key, mode 0600: move it "
                   "to the gate)")  # fmt: skip
    click.echo(f"  back office CA     {cert['backoffice_ca_file']}  (the gate's --backoffice-ca)")


@gate_group.command("add")
@click.option("--name", required=True, help="A name for the gate (station, line).")
@click.option("--zone", help="The gate's fare zone (zone gates: tap on/off).")
@_certificate_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def gate_add(
    ctx: click.Context,
    name: str,
    zone: str | None,
    csr: IO[bytes] | None,
    cert_dir: Path | None,
    days: int,
    as_json: bool,
) -> None:
    """Register a gate; prints its id and key ONCE (only a hash is kept), the public
    key it seals track 2 to and the card reference key it must use, and issues its TLS
    client certificate (for the key of --csr, or a new key written next to it)."""
    home = _home(ctx)
    rules = home.fares()
    if zone is not None and rules.zones and zone not in rules.zones:
        raise click.BadParameter(f"not a zone of the fares ({', '.join(rules.zones)})",
                                 param_hint="--zone")  # fmt: skip
    certify, issued = _certify(home, csr, days)
    try:
        with _store(home) as store:
            gate_id, key = store.add_gate(name, zone, certify)
    except PkiError as exc:
        raise click.BadParameter(str(exc), param_hint="--csr") from None
    cert = _write_certificate(home, issued[0], gate_id, cert_dir)
    info = {
        "gate_id": gate_id,
        "key": key,
        "name": name,
        "zone": zone,
        "sealing_public_key": home.sealing_public_key().hex(),
        "card_reference_key": home.card_reference_key().hex(),
        "certificate": cert,
    }
    if as_json:
        _out(info)
        return
    click.echo(f"Gate {gate_id} ({name}{', zone ' + zone if zone else ''})")
    click.echo(f"  key                {key}   (shown once: keep it)")
    click.echo(f"  sealing public key {info['sealing_public_key']}")
    click.echo(f"  card reference key {info['card_reference_key']}")
    _echo_certificate(cert)


@gate_group.command("renew")
@click.argument("gate_id")
@_certificate_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def gate_renew(
    ctx: click.Context,
    gate_id: str,
    csr: IO[bytes] | None,
    cert_dir: Path | None,
    days: int,
    as_json: bool,
) -> None:
    """Issue a new TLS client certificate to a gate; its earlier ones stay valid until
    they expire, so the gate switches without downtime."""
    home = _home(ctx)
    certify, _ = _certify(home, csr, days)
    try:
        with _store(home) as store:
            issued = store.gate_certificate(gate_id, certify)
    except PkiError as exc:
        raise click.BadParameter(str(exc), param_hint="--csr") from None
    except StoreError as exc:
        raise _unknown_gate(exc) from None
    cert = _write_certificate(home, issued, gate_id, cert_dir)
    if as_json:
        _out({"gate_id": gate_id, "certificate": cert})
        return
    click.echo(f"Gate {gate_id}")
    _echo_certificate(cert)


@gate_group.command("revoke")
@click.argument("gate_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def gate_revoke(ctx: click.Context, gate_id: str, as_json: bool) -> None:
    """Refuse a gate's key and all its TLS certificates from now on (its next request
    is refused)."""
    try:
        with _store(_home(ctx)) as store:
            revoked = store.revoke_gate(gate_id)
    except StoreError as exc:
        raise _unknown_gate(exc) from None
    if as_json:
        _out({"gate_id": gate_id, "revoked": True, "certificates_revoked": revoked})
        return
    click.echo(f"Gate {gate_id} revoked ({revoked} certificates)")


@gate_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def gate_list(ctx: click.Context, as_json: bool) -> None:
    """Every gate (never a key)."""
    with _store(_home(ctx)) as store:
        gates = store.gates()
    if as_json:
        _out({"gates": gates})
        return
    for g in gates:
        revoked = "  (revoked)" if g["revoked"] else ""
        click.echo(f"{g['gate_id']:<6} {g['name']:<24} zone {g['zone'] or '-':<4} "
                   f"since {g['created_at']}{revoked}")  # fmt: skip
    if not gates:
        click.echo("No gates.", err=True)


# --- operators of the console -------------------------------------------------------------


@backoffice.group("operator")
def operator_group() -> None:
    """Operators of the console (`backoffice console`): add, list, revoke."""


@operator_group.command("add")
@click.argument("name")
@click.option("--scope", "scopes", type=click.Choice(OPERATOR_SCOPES), multiple=True,
              required=True,
              help="What the operator may do (repeat): read (every page, masked), "
              "operations (read, and the console's actions: deny-list removal).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def operator_add(ctx: click.Context, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Make an operator of the console; prints its id and credential ONCE (only an
    Argon2id hash is kept). It signs in to the console with both."""
    from backoffice.operators import Operators

    with _store(_home(ctx)) as store:
        try:
            made, credential = Operators(store).add(name, scopes)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None
    if as_json:
        _out({**made.to_json(), "credential": credential})
        return
    click.echo(f"Operator {made.id} ({made.name}), scopes {' '.join(made.scopes)}")
    click.echo(f"  credential {credential}   (shown once: keep it)")


@operator_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def operator_list(ctx: click.Context, as_json: bool) -> None:
    """Every operator, oldest first (never a credential)."""
    from backoffice.operators import Operators

    with _store(_home(ctx)) as store:
        found = Operators(store).all()
    if as_json:
        _out({"operators": [o.to_json() for o in found]})
        return
    for o in found:
        status = f"revoked {o.revoked_at}" if o.revoked_at else "active"
        click.echo(f"{o.id}  {o.name:<20} {' '.join(o.scopes):<16} since {o.created_at}  "
                   f"{status}")  # fmt: skip
    if not found:
        click.echo("No operators: `backoffice operator add NAME --scope read` makes one.",
                   err=True)  # fmt: skip


@operator_group.command("revoke")
@click.argument("operator_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def operator_revoke(ctx: click.Context, operator_id: str, as_json: bool) -> None:
    """Refuse an operator from now on (a running console refuses its next request)."""
    from backoffice.operators import Operators

    with _store(_home(ctx)) as store:
        try:
            revoked = Operators(store).revoke(operator_id)
        except StoreError as exc:
            raise ToolFailure.of(
                f"{exc}: `backoffice operator list` shows the operators", Exit.NOT_FOUND
            ) from None
    if as_json:
        _out(revoked.to_json())
        return
    click.echo(f"Operator {revoked.id} revoked")


@backoffice.command("audit")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def audit_command(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit log of the console's actions, newest first: who, what, to which
    object, when, with which outcome (details masked)."""
    from backoffice.operators import Operators

    with _store(_home(ctx)) as store:
        records = Operators(store).audit(limit)
    if as_json:
        _out({"audit": [r.to_json() for r in records]})
        return
    for r in records:
        click.echo(f"{r.at}  {r.actor:<27} {r.action:<18} {r.object_type} {r.object_id}  "
                   f"{r.outcome}")  # fmt: skip
    if not records:
        click.echo("No audit records.", err=True)


# --- TLS ---------------------------------------------------------------------------------------


@backoffice.group("tls")
def tls_group() -> None:
    """The back office's TLS: its CA for gate certificates and its server certificate."""


def _show_tls(folder: TlsFolder, as_json: bool) -> None:
    """The TLS folder's CA and server certificate, as JSON or lines."""
    summary = folder.summary()
    if as_json:
        _out(summary)
        return
    for line in summary_lines(summary, "gates"):
        click.echo(line)


@tls_group.command("init")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Host name or IP address (repeat; default "
              f"{' and '.join(DEFAULT_HOSTS)}).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def tls_init(ctx: click.Context, hosts: tuple[str, ...], as_json: bool) -> None:
    """Give a home made before TLS its TLS folder: a new CA for gate certificates and a
    server certificate (`backoffice init` makes them for a new home)."""
    folder = _home(ctx).tls
    try:
        folder.create(plan_folder(CA_NAME, hosts=hosts or DEFAULT_HOSTS))
    except PkiError as exc:
        raise ToolFailure.of(
            f"{exc}; `backoffice tls show` shows the folder there", Exit.CONFLICT
        ) from None
    _show_tls(folder, as_json)


@tls_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def tls_show(ctx: click.Context, as_json: bool) -> None:
    """The CA and the server certificate (subject, serial, end of validity, SHA-256
    fingerprint, host names)."""
    _show_tls(_home(ctx).tls, as_json)


@tls_group.command("renew-server")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help=f"Host name or IP address (repeat; default {' and '.join(DEFAULT_HOSTS)}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def tls_renew_server(ctx: click.Context, hosts: tuple[str, ...], as_json: bool) -> None:
    """A new server key and certificate signed by the back office's CA; gates need no
    change. A running `backoffice serve` presents it once it reloads its TLS folder
    (SIGHUP)."""
    folder = _home(ctx).tls
    try:
        folder.renew_server(hosts or DEFAULT_HOSTS)
    except PkiError as exc:
        raise ToolFailure.of(str(exc), Exit.CONFLICT) from None
    _show_tls(folder, as_json)


# --- serve and aggregate ------------------------------------------------------------------


def _report_text(report: PassReport) -> list[str]:
    r = report
    lines = [
        f"taps {r.taps} new; riders {r.riders_new} new, {r.riders_merged} joined by PAR",
        f"authorisations: {r.authorised} approved, {r.declined} declined, "
        f"{r.auth_failed} failed, {r.auth_waiting} waiting for the issuer",
        f"trips {r.trips}, fares charged {r.fares_charged}; taps on waiting for their "
        f"tap off {r.taps_waiting}",
        f"aggregations closed {r.closed}: {r.completed} completed ({r.captured} captured), "
        f"{r.reversed} reversed, {r.debts} debts, {r.recovered} recovered, "
        f"{r.written_off} written off",
        f"deny list +{r.deny_added} -{r.deny_removed}; {r.issuer_calls} issuer calls; "
        f"{r.seconds:.2f} s",
    ]
    lines += [f"problem: {e}" for e in r.errors[:20]]
    return lines


def _log_pass(report: PassReport) -> None:
    """One line on standard error for each engine pass of ``serve`` that did work."""
    r = report
    if not (r.taps or r.authorised or r.declined or r.trips or r.closed or r.recovered
            or r.auth_failed or r.errors):  # fmt: skip
        return
    click.echo(
        f"pass: {r.taps} taps, {r.authorised} authorised, {r.declined} declined, "
        f"{r.trips} trips ({r.fares_charged}), {r.closed} closed, {r.captured} captured, "
        f"deny list +{r.deny_added} -{r.deny_removed}, {r.seconds:.2f} s",
        err=True,
    )
    for problem in r.errors[:5]:
        click.echo(f"  problem: {problem}", err=True)


@backoffice.command("serve")
@click.option("--bind", default="127.0.0.1:8700", show_default=True, metavar="HOST:PORT",
              envvar="TAPSTACK_BACKOFFICE_BIND",
              help="Address to listen on (port 0: any free).")  # fmt: skip
@_issuer_options
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="S",
              help="Seconds between engine passes (also a second after uploads).")  # fmt: skip
@click.option("--no-engine", is_flag=True, help="Serve the API only (run `aggregate` apart).")
@click.pass_context
def serve_command(
    ctx: click.Context,
    bind: str,
    issuer_url: str | None,
    terminal_id: str | None,
    terminal_key: str | None,
    interval: float,
    no_engine: bool,
) -> None:
    """Run the gates' API (POST /v1/taps, GET /v1/deny-list, GET /v1/health) and the
    engine in the background, until SIGTERM or Ctrl-C.

    HTTPS with mutual TLS (`backoffice tls show`): each gate proves itself with the
    certificate `backoffice gate add` issued it. SIGHUP takes up a renewed server
    certificate (`backoffice tls renew-server`). --dev-plain-http (local development
    only) serves plain HTTP and accepts an http:// issuer."""
    home = _home(ctx)
    issuer = _issuer(issuer_url, terminal_id, terminal_key)
    plain = bool(ctx.meta.get(_ISSUER_TLS, {}).get("dev_plain_http"))
    from httpserve.server import parse_bind, serve

    try:
        host, port = parse_bind(bind)
    except ValueError:
        raise click.BadParameter(
            f"{bind!r} is not HOST:PORT, e.g. 127.0.0.1:8700", param_hint="--bind"
        ) from None
    try:
        context = None if plain else home.tls.server_context()
    except PkiError as exc:
        raise HomeFailure(
            f"{exc}; make the TLS folder with `backoffice tls init` (or serve plain HTTP "
            "for local development: --dev-plain-http)"
        ) from None
    from backoffice.service import EngineWorker, make_app
    from httpserve import ListenError

    try:
        app = make_app(home, require_certificate=context is not None)
    except (OSError, StoreError) as exc:
        raise HomeFailure(f"cannot serve on {bind}: {exc}") from None
    worker = None
    if not no_engine:
        worker = EngineWorker(home, issuer, interval=interval, on_report=_log_pass)
        app.notify = worker.nudge
        worker.start()

    def ready(bound_host: str, bound_port: int) -> None:
        scheme = "http" if context is None else "https"
        click.echo(f"backoffice listening on {scheme}://{bound_host}:{bound_port}", err=True)
        if issuer is None:
            click.echo("  no --issuer: taps are stored, nothing is authorised", err=True)

    try:
        serve(
            lambda: app, host, port, ssl_context=context, ready=ready,
            reload=None if context is None else lambda: home.tls.reload(context),
        )  # fmt: skip
    except ListenError as exc:
        app.close()
        raise ToolFailure.of(str(exc), listen_exit(exc.errno)) from None
    finally:
        if worker is not None:
            worker.stop()
            worker.join(timeout=30)
    click.echo("stopped", err=True)


@backoffice.command("console")
@click.option("--bind", default="127.0.0.1:8701", show_default=True, metavar="HOST:PORT",
              envvar="TAPSTACK_BACKOFFICE_CONSOLE_BIND",
              help="Address to listen on (port 0: any free; env "
              "TAPSTACK_BACKOFFICE_CONSOLE_BIND).")  # fmt: skip
@click.pass_context
def console_command(ctx: click.Context, bind: str) -> None:
    """Serve the web console until SIGTERM or Ctrl-C: riders, trips, aggregations,
    debts, the deny list (an entry removed after confirmation, audited), taps per hour
    and revenue per day.

    HTTPS with the back office's server certificate (`backoffice tls show`; browsers
    verify it with HOME/tls/server-ca.crt), no client certificate: operators sign in
    with the id and credential `backoffice operator add` printed, and see what their
    scopes allow (read; operations: the actions too). SIGHUP takes up a renewed server
    certificate."""
    from httpserve.server import parse_bind, serve

    home = _home(ctx)
    try:
        host, port = parse_bind(bind)
    except ValueError:
        raise click.BadParameter(
            f"{bind!r} is not HOST:PORT, e.g. 127.0.0.1:8701", param_hint="--bind"
        ) from None
    try:
        context = home.tls.server_context(clients=False)  # browsers: no client certificate
    except PkiError as exc:
        raise HomeFailure(f"{exc}; make the TLS folder with `backoffice tls init`") from None
    from backoffice.console.app import BackOfficeConsole
    from httpserve import ListenError

    try:
        console = BackOfficeConsole(home)
    except (OSError, StoreError) as exc:
        raise HomeFailure(f"cannot serve the console on {bind}: {exc}") from None

    def ready(bound_host: str, bound_port: int) -> None:
        click.echo(f"backoffice console on https://{bound_host}:{bound_port}", err=True)

    try:
        serve(lambda: console.app, host, port, ssl_context=context, ready=ready,
              reload=lambda: home.tls.reload(context))  # fmt: skip
    except ListenError as exc:
        raise ToolFailure.of(str(exc), listen_exit(exc.errno)) from None
    finally:
        console.close()
    click.echo("stopped", err=True)


@backoffice.command("aggregate")
@_issuer_options
@click.option("--all", "close_all", is_flag=True,
              help="Close every open aggregation now, today's too (end of a demo day); "
              "taps on with no tap off become incomplete trips.")  # fmt: skip
@click.option("--now", "now_text", metavar="TIME",
              help="Run as if it were TIME (ISO 8601, UTC if no offset): which periods "
              "are over.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def aggregate_command(
    ctx: click.Context,
    issuer_url: str | None,
    terminal_id: str | None,
    terminal_key: str | None,
    close_all: bool,
    now_text: str | None,
    as_json: bool,
) -> None:
    """Run the engine once now: new taps to riders, deferred authorisations, trips
    and capped fares, aggregation of the periods that are over into one completion
    each, and debt recovery. Safe to run again after a crash: nothing is charged twice."""
    from datetime import UTC, datetime

    home = _home(ctx)
    issuer = _issuer(issuer_url, terminal_id, terminal_key)
    now = None
    if now_text:
        try:
            now = datetime.fromisoformat(now_text.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter("ISO 8601 date and time", param_hint="--now") from None
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
    from backoffice.engine import Engine

    with _store(home) as store:
        engine = Engine.for_home(store, issuer, progress=stage_progress())
        with store.db.engine_lock(wait=False) as mine:
            if not mine:
                click.echo("waiting for the engine pass under way...", err=True)
        with store.db.engine_lock():
            report = engine.run(now=now, close_all=close_all)
    if issuer is not None:
        issuer.close()
    if as_json:
        _out(report.to_json())
    else:
        for line in _report_text(report):
            click.echo(line)


# --- NATS JetStream ----------------------------------------------------------------------------


def _nats_options(f: Any) -> Any:
    f = click.option("--nats-key", envvar="TAPSTACK_NATS_KEY", metavar="FILE",
                     help="Its private key (PEM; env TAPSTACK_NATS_KEY).")(f)  # fmt: skip
    f = click.option("--nats-cert", envvar="TAPSTACK_NATS_CERT", metavar="FILE",
                     help="The back office's client certificate at NATS (PEM; env "
                     "TAPSTACK_NATS_CERT).")(f)  # fmt: skip
    f = click.option("--nats-ca", envvar="TAPSTACK_NATS_CA", metavar="FILE",
                     help="CA (PEM) NATS's certificate is verified with (env "
                     "TAPSTACK_NATS_CA; default the system's).")(f)  # fmt: skip
    f = click.option("--operator", envvar="TAPSTACK_OPERATOR", required=True, metavar="NAME",
                     help="The transit operator: the names of the stream (TAPS_NAME), "
                     "subjects (taps.NAME.GATE) and deny-list bucket (deny_NAME) (env "
                     "TAPSTACK_OPERATOR).")(f)  # fmt: skip
    f = click.option("--nats", "nats_url", envvar="TAPSTACK_NATS_URL", required=True,
                     metavar="URL",
                     help="NATS with JetStream: tls://HOST:PORT (nats:// only with "
                     "--dev-plain-http, a local server without TLS; env "
                     "TAPSTACK_NATS_URL).")(f)  # fmt: skip
    return f


def _nats_link(
    nats_url: str, operator: str, ca: str | None, cert: str | None, key: str | None,
    plain: bool,
) -> NatsLink:  # fmt: skip
    """The NATS server of the options (:mod:`backoffice.stream`)."""
    from backoffice.stream import Names, NatsLink

    try:
        names = Names(operator)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--operator") from None
    try:
        context = ClientTls(ca, cert, key, plain).for_nats(nats_url)
    except PkiError as exc:
        raise click.BadParameter(str(exc), param_hint="--nats") from None
    return NatsLink(nats_url, names, context)


@backoffice.group("nats")
def nats_group() -> None:
    """Tap ingestion and the deny list over NATS JetStream (instead of HTTP uploads)."""


@nats_group.command("setup")
@_nats_options
@click.option("--dev-plain-http", "plain", is_flag=True, envvar="TAPSTACK_DEV_PLAIN_HTTP",
              help="Local development only: a nats:// server without TLS.")  # fmt: skip
@click.option("--duplicate-window", type=click.FloatRange(min=1), default=7200.0,
              show_default=True, metavar="S",
              help="Seconds in which a re-sent tap id is dropped by NATS.")  # fmt: skip
@click.option("--ack-wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              metavar="S",
              help="Seconds before a fetched, unacknowledged tap goes to another "
              "instance.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def nats_setup(
    nats_url: str, operator: str, nats_ca: str | None, nats_cert: str | None,
    nats_key: str | None, plain: bool, duplicate_window: float, ack_wait: float,
    as_json: bool,
) -> None:  # fmt: skip
    """Make the stream of taps (TAPS_NAME, subjects taps.NAME.GATE, work queue), the
    back office's durable consumer and the deny-list bucket; running it again changes
    nothing (or updates the duplicate window and the ack wait)."""
    import asyncio

    from backoffice.stream import StreamError, setup

    link = _nats_link(nats_url, operator, nats_ca, nats_cert, nats_key, plain)
    try:
        info = asyncio.run(setup(link, duplicate_window=duplicate_window, ack_wait=ack_wait))
    except StreamError as exc:
        raise _stream_failure(exc) from None
    if as_json:
        _out(info)
        return
    click.echo(f"stream {info['stream']} ({info['subjects']}): duplicate window "
               f"{info['duplicate_window_s']:.0f} s, {info['taps_waiting']} taps "
               "waiting")  # fmt: skip
    click.echo(f"consumer {info['consumer']}: ack wait {info['ack_wait_s']:.0f} s")
    click.echo(f"deny list bucket {info['deny_list_bucket']}")


@backoffice.command("consume")
@_nats_options
@_issuer_options
@click.option("--batch", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Taps fetched and committed at once.")  # fmt: skip
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="S",
              help="Seconds between engine passes (also a second after new taps).")  # fmt: skip
@click.option("--no-engine", is_flag=True, help="Consume only (run `aggregate` apart).")
@click.pass_context
def consume_command(
    ctx: click.Context, nats_url: str, operator: str, nats_ca: str | None,
    nats_cert: str | None, nats_key: str | None, issuer_url: str | None,
    terminal_id: str | None, terminal_key: str | None, batch: int, interval: float,
    no_engine: bool,
) -> None:  # fmt: skip
    """Run a back office instance on NATS JetStream until SIGTERM or Ctrl-C: taps from
    the operator's stream (the durable consumer every instance shares: two instances
    share the load), committed then acknowledged; deny-list changes to the bucket gates
    watch; and the engine in the background. Start several on one PostgreSQL database
    (--db): an instance that dies leaves its unacknowledged taps to the others.
    --dev-plain-http (local development only) also accepts a nats:// server."""
    import asyncio
    import signal

    from backoffice.service import EngineWorker
    from backoffice.stream import StreamError, TapConsumer

    home = _home(ctx)
    issuer = _issuer(issuer_url, terminal_id, terminal_key)
    plain = bool(ctx.meta.get(_ISSUER_TLS, {}).get("dev_plain_http"))
    link = _nats_link(nats_url, operator, nats_ca, nats_cert, nats_key, plain)
    store = _store(home)
    worker = None
    if not no_engine:
        worker = EngineWorker(home, issuer, interval=interval, on_report=_log_pass)
        worker.start()
    consumer = TapConsumer(
        store, home.fares(), link, batch=batch,
        on_stored=lambda count: worker.nudge() if worker is not None else None,
    )  # fmt: skip

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"backoffice consuming {link.names.stream} on {nats_url}", err=True)
        await consumer.run(stop)

    try:
        asyncio.run(run())
    except StreamError as exc:
        raise _stream_failure(exc) from None
    finally:
        if worker is not None:
            worker.stop()
            worker.join(timeout=30)
        store.close()
        if issuer is not None:
            issuer.close()
    click.echo(f"stopped: {consumer.stored} taps stored, {consumer.duplicates} duplicates, "
               f"{consumer.refused} refused", err=True)  # fmt: skip


# --- reports -----------------------------------------------------------------------------------


@backoffice.command("trips")
@click.option("--rider", type=int, help="Only this rider's.")
@click.option("--day", metavar="YYYY-MM-DD", help="Only this travel day's.")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def trips_command(
    ctx: click.Context, rider: int | None, day: str | None, limit: int, as_json: bool
) -> None:
    """Trips with their micropayment (fare type, nominal fare, charge, cap), newest first."""
    where: list[str] = []
    params: list[Any] = []
    if rider is not None:
        where.append("rider_id = ?")
        params.append(rider)
    if day is not None:
        where.append("travel_day = ?")
        params.append(day)
    sql = (
        "SELECT trip_id, rider_id, travel_day, start_time, end_time, from_zone, to_zone, "  # noqa: S608
        "fare_type, fare, charge, adjustment, aggregation_id FROM trips "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY trip_id DESC LIMIT ?"
    )
    with _store(_home(ctx)) as store:
        trips = store.query(sql, [*params, limit])
    if as_json:
        _out({"trips": trips})
        return
    for t in trips:
        zones = f"{t['from_zone'] or '-'}->{t['to_zone'] or '-'}"
        adj = f" ({t['adjustment']})" if t["adjustment"] else ""
        click.echo(f"#{t['trip_id']:<6} rider {t['rider_id']:<5} {t['start_time']}  {zones:<6} "
                   f"{t['fare_type']:<24} fare {t['fare']:>5} "
                   f"charge {t['charge']:>5}{adj}")  # fmt: skip
    if not trips:
        click.echo("No trips.", err=True)


@backoffice.command("riders")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def riders_command(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Riders (one per payment account reference where the issuer gave one) with their
    cards (masked), trips, fares charged and amount captured."""
    with _store(_home(ctx)) as store:
        riders = store.query(
            "SELECT r.rider_id, r.par, "
            "(SELECT COUNT(*) FROM trips t WHERE t.rider_id = r.rider_id) AS trips, "
            "(SELECT CAST(COALESCE(SUM(charge), 0) AS BIGINT) FROM trips t "
            "WHERE t.rider_id = r.rider_id) AS charged, (SELECT CAST(COALESCE(SUM(captured), "
            "0) AS BIGINT) FROM aggregations a WHERE a.rider_id = r.rider_id) AS captured, "
            "EXISTS (SELECT 1 FROM deny_list d WHERE d.rider_id = r.rider_id) AS denied "
            "FROM riders r WHERE r.merged_into IS NULL ORDER BY r.rider_id LIMIT ?",
            (limit,),
        )
        cards: dict[int, list[dict[str, Any]]] = {}
        if riders:
            for card in store.query(
                "SELECT rider_id, card_reference, masked_pan, token FROM cards "
                "WHERE rider_id BETWEEN ? AND ? ORDER BY first_seen, card_reference",
                (riders[0]["rider_id"], riders[-1]["rider_id"]),
            ):
                rider = card.pop("rider_id")
                cards.setdefault(rider, []).append({**card, "token": bool(card["token"])})
    for r in riders:
        r["cards"] = cards.get(r["rider_id"], [])
        r["denied"] = bool(r["denied"])
    if as_json:
        _out({"riders": riders})
        return
    for r in riders:
        shown = ", ".join(c["masked_pan"] + (" (token)" if c["token"] else "") for c in r["cards"])
        denied = "  DENIED" if r["denied"] else ""
        click.echo(f"rider {r['rider_id']:<5} {shown}  trips {r['trips']}, charged "
                   f"{r['charged']}, captured {r['captured']}{denied}")  # fmt: skip
    if not riders:
        click.echo("No riders.", err=True)


@backoffice.command("aggregations")
@click.option("--state", help="Only this state (open, closing, completed, debt, ...).")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def aggregations_command(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """Aggregations (one authorisation and one completion per rider and period)."""
    sql = (
        "SELECT aggregation_id, rider_id, travel_day, state, auth_state, transaction_id, "  # noqa: S608
        "decline_reason, total, captured, recovery_attempts, error FROM aggregations "
        + ("WHERE state = ? " if state else "")
        + "ORDER BY opened_at DESC, aggregation_id DESC LIMIT ?"
    )
    with _store(_home(ctx)) as store:
        rows = store.query(sql, [state, limit] if state else [limit])
    if as_json:
        _out({"aggregations": rows})
        return
    for a in rows:
        why = f" ({a['decline_reason']})" if a["decline_reason"] else ""
        click.echo(f"{a['aggregation_id']:<24} rider {a['rider_id']:<5} {a['travel_day']} "
                   f"{a['state']:<11} auth {a['auth_state']}{why}  total {a['total']} "
                   f"captured {a['captured']}")  # fmt: skip
    if not rows:
        click.echo("No aggregations.", err=True)


@backoffice.command("deny-list")
@click.option("--since", type=click.IntRange(min=0), default=0, show_default=True,
              help="Changes after this version (0: the full list, as gates fetch it).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def deny_list_command(ctx: click.Context, since: int, as_json: bool) -> None:
    """The deny list (card references; masked PAN shown for the operator)."""
    with _store(_home(ctx)) as store:
        changes = store.deny_changes(since)
        entries = store.deny_list()
    if as_json:
        _out({**changes, "entries": entries if since == 0 else None})
        return
    click.echo(f"version {changes['version']}")
    if since:
        for ref in changes["add"]:
            click.echo(f"+ {ref}")
        for ref in changes["remove"]:
            click.echo(f"- {ref}")
        return
    for e in entries:
        click.echo(f"{e['card_reference']}  {e['masked_pan'] or '-':<17} {e['reason']:<20} "
                   f"v{e['version']} {e['added_at']}")  # fmt: skip


def main() -> None:
    """The ``backoffice`` console script."""
    backoffice(prog_name="backoffice")
