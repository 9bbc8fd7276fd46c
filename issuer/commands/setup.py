"""``issuer init``, ``issuer keys ...`` and ``issuer ledger check``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click

from emvwire.pki import DEFAULT_HOSTS, PkiError
from emvwire.tls import plan_folder, summary_lines
from issuer.bootstrap import CA_FILE, init_issuer
from issuer.commands.common import (
    BadArgumentError,
    CliError,
    CliState,
    ConfigCliError,
    ConflictCliError,
    emit,
    json_option,
    pass_state,
    progress_printer,
    table,
)
from issuer.config import ENV_KEYSTORE_KEY, ENV_PKCS11_PIN, redact_url
from issuer.domain.audit import cli_actor
from issuer.errors import IntegrityError, ValidationError
from issuer.keys.base import PURPOSES, SCHEMES, KeyInfo, MasterKeyRef
from issuer.personalisation.ranges import DEFAULT_RANGES
from issuer.pki import CA_NAME, tls_folder

__all__ = ["init", "keys", "ledger", "tls"]


def _hex(text: str, what: str) -> bytes:
    cleaned = "".join(str(text).split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValidationError(f"the {what} is not hexadecimal") from None


@click.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Issuer home.")
@click.option("--db", "db_url", help="Database URL (default: SQLite file in the home).")
@click.option(
    "--keystore",
    type=click.Choice(["file", "pkcs11"]),
    default="file",
    show_default=True,
    help="Where keys live.",
)
@click.option("--pkcs11-module", help="PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).")
@click.option("--pkcs11-token", help="PKCS#11 token label.")
@click.option(
    "--ca",
    type=click.Choice(["test", "new"]),
    default="test",
    show_default=True,
    help="The published tapstack test CA, or a new CA (public keys written to ca.json).",
)
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the test CA private keys (default: the copy packaged with the issuer).",
)
@click.option("--no-default-ranges", is_flag=True,
              help="Make no ranges and no master keys: add ranges with `issuer range add`, "
              "keys with `issuer keys import` or `issuer keys generate`.")  # fmt: skip
@click.option(
    "--kdf-cost",
    type=click.IntRange(10, 20),
    default=15,
    show_default=True,
    help="scrypt cost (log2 N) of the key store passphrase; lower only for tests.",
)
@click.option("--tls-host", "tls_hosts", multiple=True, metavar="HOST",
              help="A host name or IP address of the server certificate (repeat; default "
              f"{' and '.join(DEFAULT_HOSTS)}).")  # fmt: skip
@click.option("--tls-ca-cert", type=click.File("rb"), metavar="FILE",
              help="Import this CA (PEM) for terminal certificates instead of making one "
              "(with --tls-ca-key).")  # fmt: skip
@click.option(
    "--tls-ca-key",
    type=click.File("rb"),
    metavar="FILE",
    help="The imported CA's private key (PEM, ECDSA P-256, unencrypted).",
)
@click.option("--tls-cert", type=click.File("rb"), metavar="FILE",
              help="Import this server certificate chain (PEM, leaf first) instead of "
              "making one (with --tls-key).")  # fmt: skip
@click.option(
    "--tls-key",
    type=click.File("rb"),
    metavar="FILE",
    help="The imported server certificate's private key (PEM, EC, unencrypted).",
)
@click.option("--tls-server-ca", type=click.File("rb"), metavar="FILE",
              help="The CA terminals verify an imported server certificate with (needed "
              "unless the terminal CA signed it).")  # fmt: skip
@json_option
@pass_state
def init(
    state: CliState,
    home: Path | None,
    db_url: str | None,
    keystore: str,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    ca: str,
    ca_dir: Path | None,
    no_default_ranges: bool,
    kdf_cost: int,
    tls_hosts: tuple[str, ...],
    tls_ca_cert: IO[bytes] | None,
    tls_ca_key: IO[bytes] | None,
    tls_cert: IO[bytes] | None,
    tls_key: IO[bytes] | None,
    tls_server_ca: IO[bytes] | None,
    as_json: bool,
) -> None:
    """Make a fresh issuer: key store, database, CA, issuer keys and the default
    ranges (Visa 476173, token 489537; Mastercard 541333, token 520474) with their
    master keys (none of these with --no-default-ranges), and its TLS folder
    (HOME/tls): a private CA for terminal certificates and the server's certificate,
    or imported ones. A failed init removes what it made.

    The key store passphrase comes from TAPSTACK_KEYSTORE_KEY or a prompt; a PKCS#11
    PIN from TAPSTACK_PKCS11_PIN or a prompt. The TLS private keys are kept encrypted
    under a password the key store derives. Terminals verify the server with
    HOME/tls/server-ca.crt (their --issuer-ca).
    """
    target = home or state.home_dir
    try:
        tls = plan_folder(
            CA_NAME,
            hosts=tls_hosts or DEFAULT_HOSTS,
            ca_cert=_read(tls_ca_cert),
            ca_key=_read(tls_ca_key),
            server_cert=_read(tls_cert),
            server_key=_read(tls_key),
            server_ca=_read(tls_server_ca),
        )
    except PkiError as exc:
        raise BadArgumentError(f"TLS: {exc}") from None
    app = init_issuer(
        target,
        db_url=db_url or state.db,
        keystore=keystore,
        passphrase=state.secret_prompt(ENV_KEYSTORE_KEY, "New key store passphrase", confirm=True),
        pkcs11_module=pkcs11_module,
        pkcs11_token=pkcs11_token,
        pin=state.secret_prompt(ENV_PKCS11_PIN, "PKCS#11 user PIN"),
        ca=ca,
        ca_dir=ca_dir,
        kdf_cost=kdf_cost,
        ranges=() if no_default_ranges else DEFAULT_RANGES,
        progress=progress_printer(),
        tls=tls,
    )
    try:
        app.service.acting_as(cli_actor()).record_outcome(
            "issuer.init", "issuer", str(target), "succeeded",
            {"ca": ca, "default_ranges": not no_default_ranges},
        )  # fmt: skip
        ranges = app.service.bin_ranges()
        infos = app.keys.list()
        tls_summary = tls_folder(target, app.keys).summary()
        data = {
            "home": str(target),
            "db": redact_url(app.config.db_url(db_url or state.db)),
            "keystore": app.keys.backend,
            "ca": ca,
            "ca_file": str(target / CA_FILE),
            "tls": tls_summary,
            "ranges": [r.to_json() for r in ranges],
            "keys": [i.to_json() for i in infos],
        }
        lines = [
            f"issuer initialised in {target}",
            f"database: {data['db']}",
            f"key store: {app.keys.backend}; CA: {ca} (public keys in {target / CA_FILE})",
            *summary_lines(tls_summary, "terminals"),
            "",
            *table(
                ["range", "scheme", "kind", "CVN", "CA"],
                [
                    (
                        r.prefix,
                        r.scheme,
                        r.kind,
                        r.cvn,
                        f"{r.ca_rid.hex().upper()}/{r.ca_index:02X}",
                    )
                    for r in ranges
                ],
            ),
            "",
            *table(
                ["key", "algorithm", "KCV"],
                [(i.key_id, i.algorithm, i.kcv.hex().upper()) for i in infos],
            ),
        ]
        emit(data, as_json, lines)
    finally:
        app.close()


def _read(file: IO[bytes] | None) -> bytes | None:
    return None if file is None else file.read()


@click.group()
def tls() -> None:
    """The issuer's TLS: its CA for terminal certificates and its server certificate."""


@tls.command("init")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Host name or IP address (repeat; default "
              f"{' and '.join(DEFAULT_HOSTS)}).")  # fmt: skip
@json_option
@pass_state
def tls_init(state: CliState, hosts: tuple[str, ...], as_json: bool) -> None:
    """Give a home made before TLS its TLS folder: a new CA for terminal certificates
    and a server certificate (`issuer init` makes them for a new home)."""
    folder = tls_folder(state.home_dir, state.app().keys)
    try:
        folder.create(plan_folder(CA_NAME, hosts=hosts or DEFAULT_HOSTS))
    except PkiError as exc:
        raise ConflictCliError(f"TLS: {exc}") from None
    summary = folder.summary()
    state.app().service.record_outcome(
        "tls.init", "tls", "server", "succeeded", {"hosts": list(hosts or DEFAULT_HOSTS)}
    )
    emit(summary, as_json, summary_lines(summary, "terminals"))


@tls.command("show")
@json_option
@pass_state
def tls_show(state: CliState, as_json: bool) -> None:
    """The CA and the server certificate: subject, serial, end of validity, SHA-256
    fingerprint, host names."""
    summary = tls_folder(state.home_dir, state.app().keys).summary()
    emit(summary, as_json, summary_lines(summary, "terminals"))


@tls.command("renew-server")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help=f"Host name or IP address (repeat; default {' and '.join(DEFAULT_HOSTS)}).",
)
@json_option
@pass_state
def tls_renew_server(state: CliState, hosts: tuple[str, ...], as_json: bool) -> None:
    """A new server key and certificate signed by the issuer's CA. A running `issuer
    serve` presents it after SIGHUP (no restart); terminals need no change."""
    folder = tls_folder(state.home_dir, state.app().keys)
    try:
        cert = folder.renew_server(hosts or DEFAULT_HOSTS)
    except PkiError as exc:
        raise ConfigCliError(f"TLS: {exc}") from None
    summary = folder.summary()
    state.app().service.record_outcome(
        "tls.renew-server", "tls", "server", "succeeded",
        {"hosts": list(hosts or DEFAULT_HOSTS), "not_after": cert.not_valid_after_utc},
    )  # fmt: skip
    emit(
        summary,
        as_json,
        [f"new server certificate until {cert.not_valid_after_utc:%Y-%m-%d}",
         *summary_lines(summary, "terminals")[1:],
         "send SIGHUP to `issuer serve` to present it"],
    )  # fmt: skip


@click.group()
def keys() -> None:
    """Issuer master keys (per scheme, BIN range, CVN and version) and RSA keys:
    versions and KCVs only, never a key."""


def _key_rows(infos: list[KeyInfo], retired: frozenset[tuple[str, str, int, int]]) -> list[str]:
    rows = []
    for i in infos:
        ref = i.master
        status = "-"
        if ref is not None:
            gone = (ref.scheme, ref.bin, ref.cvn, ref.version) in retired
            status = "retired" if gone else "active"
        rows.append(
            (
                i.key_id,
                i.kind.value,
                f"v{ref.version}" if ref is not None else "-",
                status,
                i.algorithm,
                i.kcv.hex().upper(),
            )
        )
    return table(["key", "kind", "version", "status", "algorithm", "KCV"], rows)


def _key_json(info: KeyInfo, retired: frozenset[tuple[str, str, int, int]]) -> dict[str, Any]:
    data = info.to_json()
    ref = info.master
    if ref is not None:
        data["retired"] = (ref.scheme, ref.bin, ref.cvn, ref.version) in retired
    return data


def _audit_key(state: CliState, action: str, key_id: str, kcv: bytes) -> None:
    """Audit a change of the key store (outside the ledger: its own transaction, after
    the change), with the key's id and KCV, never the key."""
    state.app().service.record_outcome(
        action, "key", key_id, "succeeded", {"kcv": kcv.hex().upper()}
    )


@keys.command("list")
@click.option("--bin", "bin_", help="Only the master keys of this range.")
@json_option
@pass_state
def keys_list(state: CliState, bin_: str | None, as_json: bool) -> None:
    """Every key with its version (master keys), status and key check value (never a
    key)."""
    app = state.app()
    infos = app.keys.list()
    if bin_ is not None:
        infos = [i for i in infos if i.master is not None and i.master.bin == bin_]
    retired = app.service.retired_keys()
    emit([_key_json(i, retired) for i in infos], as_json, _key_rows(infos, retired))


@keys.command("kcv")
@click.argument("key_id")
@json_option
@pass_state
def keys_kcv(state: CliState, key_id: str, as_json: bool) -> None:
    """The key check value of KEY_ID (e.g. imk/visa/476173/18/ac, imk/visa/476173/18/ac/v2)."""
    info = state.app().keys.info(key_id)
    emit(info.to_json(), as_json, f"{info.key_id}  KCV {info.kcv.hex().upper()}")


_scheme = click.option("--scheme", type=click.Choice(SCHEMES), required=True, help="Scheme.")
_bin = click.option("--bin", "bin_", required=True, help="BIN range prefix (6-8 digits).")
_cvn = click.option("--cvn", type=int, required=True, help="Cryptogram version number.")


@keys.command("generate")
@_scheme
@_bin
@_cvn
@click.option(
    "--purpose",
    type=click.Choice([*PURPOSES, "all"]),
    default="all",
    show_default=True,
    help="Which master key (AC, SM integrity, SM confidentiality).",
)
@json_option
@pass_state
def keys_generate(
    state: CliState, scheme: str, bin_: str, cvn: int, purpose: str, as_json: bool
) -> None:
    """Generate the first version of issuer master keys for a scheme, BIN range and
    CVN (a new version of existing ones: `issuer keys rotate`)."""
    purposes = PURPOSES if purpose == "all" else (purpose,)
    refs = [MasterKeyRef(scheme, bin_, cvn, p) for p in purposes]
    store = state.app().keys
    for ref in refs:
        if store.has(ref.key_id):
            raise ConflictCliError(
                f"{ref.key_id} exists already: `issuer keys rotate` makes a new version"
            )
    infos = [store.generate(ref) for ref in refs]
    for i in infos:
        _audit_key(state, "keys.generate", i.key_id, i.kcv)
    emit(
        [i.to_json() for i in infos],
        as_json,
        [f"generated {i.key_id}  KCV {i.kcv.hex().upper()}" for i in infos],
    )


@keys.command("rotate")
@_scheme
@_bin
@_cvn
@json_option
@pass_state
def keys_rotate(state: CliState, scheme: str, bin_: str, cvn: int, as_json: bool) -> None:
    """Generate a new version of a range's AC, SMI and SMC master keys for a CVN (one
    more than the highest version held). New cards get it; cards made before keep
    theirs (each card records its key version). Import a new version instead with
    `issuer keys import` (it takes the next version by default)."""
    app = state.app()
    held = [i.master for i in app.keys.list() if i.master is not None]
    same = [r.version for r in held if (r.scheme, r.bin, r.cvn) == (scheme, bin_, cvn)]
    version = max(same, default=0) + 1
    infos = app.keys.generate_set(scheme, bin_, cvn, version)
    for i in infos:
        _audit_key(state, "keys.rotate", i.key_id, i.kcv)
    emit(
        {"version": version, "keys": [i.to_json() for i in infos]},
        as_json,
        [f"version {version} of {scheme} {bin_} CVN {cvn}",
         *(f"generated {i.key_id}  KCV {i.kcv.hex().upper()}" for i in infos)],
    )  # fmt: skip


@keys.command("retire")
@_scheme
@_bin
@_cvn
@click.option("--version", "version", type=click.IntRange(1), required=True,
              help="The master key version to retire.")  # fmt: skip
@json_option
@pass_state
def keys_retire(
    state: CliState, scheme: str, bin_: str, cvn: int, version: int, as_json: bool
) -> None:
    """Retire a version of a range's master keys: its cards and tokens are declined
    (KEY_RETIRED) from a running service's next turn, and no card gets it any more.
    The keys stay in the store (KCVs still shown)."""
    app = state.app()
    app.service.retire_key_version(scheme, bin_, cvn, version)
    left = [v for v, gone in app.service.key_versions(scheme, bin_, cvn) if not gone]
    emit(
        {"scheme": scheme, "bin": bin_, "cvn": cvn, "version": version, "retired": True,
         "active_versions": left},
        as_json,
        [f"retired version {version} of {scheme} {bin_} CVN {cvn}",
         f"active versions: {', '.join(f'v{v}' for v in left) or 'none'}"],
    )  # fmt: skip


@keys.command("import")
@_scheme
@_bin
@_cvn
@click.option("--purpose", type=click.Choice(PURPOSES), required=True, help="Which master key.")
@click.option("--kcv", "kcv_hex", required=True, help="Key check value (2-8 bytes, hex).")
@click.option("--version", "version", type=click.IntRange(1),
              help="Key version (default: the next one this purpose lacks, 1 for a new "
              "range; importing all three purposes of a new version rotates).")  # fmt: skip
@click.option(
    "--key-file",
    type=click.File("r"),
    help="File holding the key in hex ('-' for stdin); otherwise asked without echo.",
)
@json_option
@pass_state
def keys_import(
    state: CliState,
    scheme: str,
    bin_: str,
    cvn: int,
    purpose: str,
    kcv_hex: str,
    version: int | None,
    key_file: IO[str] | None,
    as_json: bool,
) -> None:
    """Import a master key given in clear with its KCV, for any range (one not added
    yet too), CVN and purpose; a KCV mismatch is refused.

    The key is read from --key-file or typed at a hidden prompt: never from the
    command line, where shell history would keep it.
    """
    ref = MasterKeyRef(scheme, bin_, cvn, purpose)
    kcv = _hex(kcv_hex, "KCV")
    store = state.app().keys
    if version is None:
        version = 1
        while store.has(ref.with_version(version).key_id):
            version += 1
    ref = ref.with_version(version)
    if key_file is not None:
        key_text = key_file.read()
    elif state.can_prompt():
        key_text = click.prompt("Key (hex)", hide_input=True, err=True)
    else:
        key_text = sys.stdin.readline()
    if not key_text.strip():
        raise BadArgumentError("no key given")
    info = store.import_(ref, _hex(key_text, "key"), kcv)
    _audit_key(state, "keys.import", info.key_id, info.kcv)
    emit(
        info.to_json(),
        as_json,
        f"imported {info.key_id} (version {version})  KCV {info.kcv.hex().upper()}",
    )


@click.group()
def ledger() -> None:
    """The ledger's own checks."""


@ledger.command("check")
@json_option
@pass_state
def ledger_check(state: CliState, as_json: bool) -> None:
    """Check that every balance equals the sum of its entries, every journal balances
    and every hold matches its authorisation. Exit 7 if not."""
    problems = state.app().service.check_ledger()
    if as_json:
        emit({"consistent": not problems, "problems": [str(p) for p in problems]}, True)
    else:
        emit(None, False, [str(p) for p in problems] or ["ledger consistent"])
    if problems:
        raise CliError.from_issuer(IntegrityError(f"{len(problems)} ledger discrepancies"))
