"""Wiring: one place that turns an issuer home into a ledger, a key store and the
domain services (the composition root; cosmicpython's ``bootstrap.py``).

The CLI and the authorisation service both call :func:`open_issuer`; tests can build an
:class:`IssuerApp` from any :class:`~issuer.ledger.repository.Ledger` and
:class:`~issuer.keys.base.KeyStore` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emvwire.oda import AnyCaKey
from emvwire.pki import DEFAULT_HOSTS
from emvwire.tls import TlsPlan, plan_folder
from issuer.config import (
    ENV_KEYSTORE_KEY,
    ENV_PKCS11_PIN,
    IssuerConfig,
    load_config,
    save_config,
)
from issuer.domain.cache import ReadCache
from issuer.domain.certificates import ClientCertificates
from issuer.domain.group_commit import GroupCommit
from issuer.domain.service import IssuerService
from issuer.domain.vault import TokenVault
from issuer.errors import ConfigError, ConflictError
from issuer.keys.base import KeyStore, ca_key_id, sm2_ca_key_id
from issuer.keys.file import DEFAULT_COST_LOG2, FileKeyStore
from issuer.ledger import Ledger, open_ledger
from issuer.ledger.repository import UnitOfWork
from issuer.model.entities import BinRange
from issuer.personalisation.ranges import (
    CA_FOR_SCHEME,
    DEFAULT_RANGES,
    SM2_CA_FOR_SCHEME,
    Progress,
    RangeSpec,
    ca_key_file,
    certify_range,
    check_range_spec,
    ensure_ca,
    ensure_master_keys,
    ensure_range_ca,
    ensure_sm2_ca,
    load_test_ca_key,
    load_test_sm2_ca_key,
    range_ca_key_id,
    sm_suite,
)
from issuer.pki import CA_NAME, tls_folder

__all__ = [
    "CA_FILE",
    "IssuerApp",
    "Secret",
    "add_range",
    "init_issuer",
    "open_issuer",
    "open_keystore",
    "setup_ranges",
    "write_ca_file",
]

#: The CA public key file written into the home (for terminals).
CA_FILE = "ca.json"

#: A secret given directly, or asked for when needed (a prompt).
Secret = str | bytes | Callable[[], str | bytes] | None


@dataclass
class IssuerApp:
    """An opened issuer: configuration, ledger, key store, services; what the
    authorisation service's domain needs (:class:`issuer.domain.decisions.Issuing`):
    the token vault, group commit on the ledger (``writes``: every write of the service
    goes through it, so that concurrent requests share transactions), the rows kept
    between requests (``cache``) and the per-request check of a terminal's TLS client
    certificate over them (``certificates``)."""

    config: IssuerConfig
    ledger: Ledger
    keys: KeyStore
    service: IssuerService = field(init=False)
    vault: TokenVault = field(init=False)
    writes: GroupCommit = field(init=False)
    cache: ReadCache = field(init=False)
    certificates: ClientCertificates = field(init=False)

    def __post_init__(self) -> None:
        self.service = IssuerService(self.ledger, self.keys)
        self.vault = TokenVault(self.keys)
        self.writes = GroupCommit.for_ledger(self.ledger)
        self.cache = ReadCache(self.ledger)
        self.certificates = ClientCertificates(self.ledger, self.cache)

    def close(self) -> None:
        """Close the ledger and the key store."""
        try:
            self.ledger.close()
        finally:
            self.keys.close()

    def __enter__(self) -> IssuerApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _secret(value: Secret, env: str, what: str) -> bytes:
    if value is None:
        text = os.environ.get(env)
        if not text:
            raise ConfigError(f"the {what} is needed: set {env} (or run interactively)")
        return text.encode()
    if callable(value):
        value = value()
    data = value.encode() if isinstance(value, str) else bytes(value)
    if not data:
        raise ConfigError(f"the {what} is empty")
    return data


def open_keystore(
    config: IssuerConfig, *, passphrase: Secret = None, pin: Secret = None
) -> KeyStore:
    """The home's key store, unlocked."""
    kind = config.keystore.get("type")
    if kind == "file":
        return FileKeyStore.open(
            config.keystore_path(), _secret(passphrase, ENV_KEYSTORE_KEY, "key store passphrase")
        )
    if kind == "pkcs11":
        from issuer.keys.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(
            config.keystore["module"],
            config.keystore["token"],
            _secret(pin, ENV_PKCS11_PIN, "PKCS#11 user PIN").decode(),
        )
    raise ConfigError(f"unknown key store type {kind!r}")


def open_issuer(
    home: Path,
    *,
    db_url: str | None = None,
    passphrase: Secret = None,
    pin: Secret = None,
) -> IssuerApp:
    """Open an initialised home: key store unlocked, database migrated."""
    config = load_config(home)
    keys = open_keystore(config, passphrase=passphrase, pin=pin)
    try:
        ledger = open_ledger(config.db_url(db_url))
        try:
            ledger.migrate()
        except BaseException:
            ledger.close()
            raise
    except BaseException:
        keys.close()
        raise
    return IssuerApp(config, ledger, keys)


def _quiet(_: str) -> None:
    return None


def init_issuer(
    home: Path,
    *,
    db_url: str | None = None,
    keystore: str = "file",
    passphrase: Secret = None,
    pkcs11_module: str | None = None,
    pkcs11_token: str | None = None,
    pin: Secret = None,
    ca: str = "test",
    ca_dir: Path | None = None,
    kdf_cost: int = DEFAULT_COST_LOG2,
    ranges: Sequence[RangeSpec] = DEFAULT_RANGES,
    progress: Progress = _quiet,
    tls: TlsPlan | None = None,
) -> IssuerApp:
    """Make a fresh issuer in ``home``: key store, database, CA, issuer keys, master
    keys and certificates of the ``ranges``, and the TLS folder (:mod:`issuer.pki`:
    ``tls``, made and checked by :func:`emvwire.tls.plan_folder` before anything is
    written; default a new CA and a server certificate for localhost and 127.0.0.1).
    Refused if ``home`` is initialised already, and before anything is made if the
    test CA's keys are not found. A failed init removes the files it made in ``home``
    (and ``home`` if it made it); it cannot take back tables made in a PostgreSQL
    database or keys made in an HSM, which a new init reuses. An init killed before
    its end can be run again (what exists is kept; the TLS folder is written last,
    whole or not at all)."""
    if (home / "config.json").exists():
        raise ConflictError(f"an issuer is initialised at {home} already")
    if ca not in ("test", "new"):
        raise ConfigError("the CA is 'test' (the published test CA) or 'new'")
    if ca == "test":
        for scheme in dict.fromkeys(r.scheme for r in ranges):
            load_test_ca_key(scheme, ca_dir)  # refused before anything is made
        for spec in ranges:
            if sm_suite(spec.scheme, spec.prefix, spec.cvn):
                load_test_sm2_ca_key(spec.scheme, ca_dir)
    made_home = not home.exists()
    before = set(home.iterdir()) if not made_home else set()
    try:
        return _init(
            home,
            db_url=db_url,
            keystore=keystore,
            passphrase=passphrase,
            pkcs11_module=pkcs11_module,
            pkcs11_token=pkcs11_token,
            pin=pin,
            ca=ca,
            ca_dir=ca_dir,
            kdf_cost=kdf_cost,
            ranges=ranges,
            progress=progress,
            tls=tls,
        )
    except BaseException:
        _remove_new(home, before, made_home)
        raise


def _remove_new(home: Path, before: set[Path], made_home: bool) -> None:
    """Remove what a failed init wrote into ``home`` (the key store file, the SQLite
    database and its journal files, ca.json, the TLS folder), and ``home`` itself if
    it made it; what was there before stays."""
    if not home.is_dir():
        return
    for path in set(home.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if made_home:
        with contextlib.suppress(OSError):
            home.rmdir()


def _init(
    home: Path,
    *,
    db_url: str | None,
    keystore: str,
    passphrase: Secret,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    pin: Secret,
    ca: str,
    ca_dir: Path | None,
    kdf_cost: int,
    ranges: Sequence[RangeSpec],
    progress: Progress,
    tls: TlsPlan | None,
) -> IssuerApp:
    if tls is None:
        tls = plan_folder(CA_NAME, hosts=DEFAULT_HOSTS)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if keystore == "file":
        store_conf = {"type": "file", "path": "keystore.json"}
    elif keystore == "pkcs11":
        if not pkcs11_module or not pkcs11_token:
            raise ConfigError("a PKCS#11 key store needs --pkcs11-module and --pkcs11-token")
        store_conf = {"type": "pkcs11", "module": pkcs11_module, "token": pkcs11_token}
    else:
        raise ConfigError("the key store is file or pkcs11")
    config = IssuerConfig(home=home, db=db_url or "sqlite:issuer.db", keystore=store_conf, ca=ca)
    if keystore == "file" and not config.keystore_path().exists():
        keys: KeyStore = FileKeyStore.create(
            config.keystore_path(),
            _secret(passphrase, ENV_KEYSTORE_KEY, "key store passphrase"),
            cost_log2=kdf_cost,
        )
    else:
        keys = open_keystore(config, passphrase=passphrase, pin=pin)
    try:
        keys.ensure_data_keys()
        ledger = open_ledger(config.db_url())
        try:
            ledger.migrate()
            cas = setup_ranges(keys, ledger, ranges, ca=ca, ca_dir=ca_dir, progress=progress)
            ca_path = home / CA_FILE
            ca_path.write_text(json.dumps(ca_key_file(cas), indent=2) + "\n")
            folder = tls_folder(home, keys)
            folder.remove()  # left by an init interrupted before its configuration
            folder.create(tls)
            try:
                save_config(config)
            except BaseException:
                folder.remove()
                raise
        except BaseException:
            ledger.close()
            raise
    except BaseException:
        keys.close()
        raise
    return IssuerApp(config, ledger, keys)


def setup_ranges(
    keys: KeyStore,
    ledger: Ledger,
    ranges: Sequence[RangeSpec] = DEFAULT_RANGES,
    *,
    ca: str = "test",
    ca_dir: Path | None = None,
    progress: Progress = _quiet,
    master_keys: bool = True,
    added: Callable[[UnitOfWork, BinRange], None] | None = None,
) -> list[AnyCaKey]:
    """Put the CA and issuer keys of ``ranges`` into ``keys`` (keeping what is there;
    SM2 ones for a range of the SM suite),
    the master keys too unless ``master_keys`` is false, and the ranges with their
    certificates into ``ledger``; the CA public keys. ``added`` is called in the
    transaction adding each range (its audit record)."""
    cas: dict[str, AnyCaKey] = {}  # by label, in the order first needed
    range_cas: dict[str, AnyCaKey] = {}
    for spec in ranges:
        range_ca = ensure_range_ca(keys, spec, mode=ca, ca_dir=ca_dir, progress=progress)
        cas.setdefault(range_ca.label, range_ca)
        range_cas[spec.prefix] = range_ca
    with ledger.unit_of_work(write=False) as uow:
        existing = {r.prefix for r in uow.bins.list()}
    for spec in ranges:
        if master_keys:
            ensure_master_keys(keys, spec.scheme, spec.prefix, spec.cvn)
        if spec.prefix in existing:
            continue
        bin_range = certify_range(keys, spec, range_cas[spec.prefix])
        with ledger.unit_of_work() as uow:
            uow.bins.add(bin_range)
            if added is not None:
                added(uow, bin_range)
            uow.commit()
    return list(cas.values())


def add_range(
    app: IssuerApp,
    spec: RangeSpec,
    *,
    ca_dir: Path | None = None,
    generate_keys: bool = False,
    progress: Progress = _quiet,
    service: IssuerService | None = None,
) -> BinRange:
    """Add a range to an opened issuer: its issuer key certified by the scheme's CA
    (made first, as ``issuer init`` made the others, if the issuer has none yet: then
    ``HOME/ca.json`` is rewritten with every CA's public key). No master keys unless
    ``generate_keys``: import them (``issuer keys import``) or generate them later.
    :class:`ConflictError` if a range has this prefix or overlaps one. ``service``
    (default the app's) audits the addition as done by whom it acts for."""
    service = service or app.service
    check_range_spec(spec)
    for other in service.bin_ranges():
        if other.prefix.startswith(spec.prefix) or spec.prefix.startswith(other.prefix):
            raise ConflictError(
                f"range {spec.prefix} overlaps range {other.prefix} ({other.scheme} {other.kind})"
            )
    had_ca = app.keys.has(range_ca_key_id(spec))

    def audit(uow: UnitOfWork, bin_range: BinRange) -> None:
        service.record_change(
            uow, "range.add", "range", bin_range.prefix,
            {"scheme": bin_range.scheme, "kind": bin_range.kind, "cvn": bin_range.cvn,
             "pan_length": bin_range.pan_length, "generate_keys": generate_keys},
        )  # fmt: skip

    setup_ranges(
        app.keys,
        app.ledger,
        [spec],
        ca=app.config.ca,
        ca_dir=ca_dir,
        progress=progress,
        master_keys=generate_keys,
        added=audit,
    )
    if not had_ca:
        write_ca_file(app)
    return service.bin_range(spec.prefix)


def write_ca_file(app: IssuerApp) -> Path:
    """Write ``HOME/ca.json``: the public keys of the CAs in the key store (RSA, and
    SM2 for the SM suite)."""
    mode = app.config.ca
    cas: list[AnyCaKey] = [
        ensure_ca(app.keys, scheme, mode=mode)
        for scheme, spec in CA_FOR_SCHEME.items()
        if app.keys.has(ca_key_id(spec.rid, spec.index))
    ]
    cas += [
        ensure_sm2_ca(app.keys, scheme, mode=mode)
        for scheme, sm2 in SM2_CA_FOR_SCHEME.items()
        if app.keys.has(sm2_ca_key_id(sm2.rid, sm2.index))
    ]
    path = app.config.home / CA_FILE
    path.write_text(json.dumps(ca_key_file(cas), indent=2) + "\n")
    return path
