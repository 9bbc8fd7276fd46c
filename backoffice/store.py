"""The back office's state: a home folder with its keys and its database.

Home layout (``--home``, default ``$TAPSTACK_BACKOFFICE_HOME`` else ``./var/backoffice``):

- ``backoffice.db``: the SQLite database (WAL mode, ``synchronous=FULL``: a commit is
  on disk before it is acknowledged, so a tap answered "accepted" survives a power
  cut), unless the home is given a PostgreSQL database (``--db postgresql://...``,
  :mod:`backoffice.database`), which several back office instances share;
- ``fares.json``: the fare rules (:mod:`backoffice.fares`);
- ``sealing.key``: the X25519 private key that opens ``track2_sealed``
  (:mod:`emvwire.seal`, RFC 9180 HPKE), mode 0600; its public key is given to gates
  (``backoffice gate add`` prints it);
- ``card_reference.key``: the HMAC key of card references (the same as the gates',
  default the published demo key), mode 0600;
- ``tls/``: the back office's TLS folder (:class:`emvwire.tls.TlsFolder`): its private
  CA for gate certificates (``ca.crt``, ``ca.key``), the certificate it serves gates
  with (``server.crt``, ``server.key``) and what gates verify it with
  (``server-ca.crt``: their ``--backoffice-ca``). Keys mode 0600, like the sealing key.

The tables are described with their migrations (:mod:`backoffice.schema`). No PAN or
track 2 is stored readable: taps keep the masked PAN and the card reference; track 2
exists only sealed, and that box is deleted once the authorisation that needed it has
an answer (when the engine first sees the tap, for the taps that need none).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from backoffice.database import Connection, Database, open_database
from backoffice.errors import FareError, ForeignTapError, StoreError, TapError
from backoffice.fares import (
    FareRules,
    default_fares_text,
    load_fares,
    parse_fares,
)
from emvwire.cardref import DEMO_CARD_REFERENCE_KEY
from emvwire.pki import DEFAULT_HOSTS, PkiError, identity_of
from emvwire.seal import OVERHEAD as SEAL_OVERHEAD
from emvwire.seal import generate_keypair, public_key_of
from emvwire.tls import IssuedCertificate, TlsFolder, TlsPlan, plan_folder

__all__ = [
    "DB_FILE",
    "ENV_DB",
    "ENV_HOME",
    "MAX_TAPS_PER_REQUEST",
    "TAP_COLUMNS",
    "Home",
    "Store",
    "TapUpload",
    "now_text",
    "validate_tap",
]

ENV_HOME: Final = "TAPSTACK_BACKOFFICE_HOME"
#: The environment variable of ``--db`` (a PostgreSQL URL).
ENV_DB: Final = "TAPSTACK_BACKOFFICE_DB"
DB_FILE: Final = "backoffice.db"
FARES_FILE: Final = "fares.json"
SEALING_FILE: Final = "sealing.key"
CARD_REFERENCE_FILE: Final = "card_reference.key"
TLS_DIR: Final = "tls"
#: The common name of the back office's CA of gate certificates.
CA_NAME: Final = "tapstack back office gate CA"
#: At most this many taps in one upload (the gate protocol, backoffice/service.py).
MAX_TAPS_PER_REQUEST: Final = 500


def now_text(when: datetime | None = None) -> str:
    """A UTC timestamp ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class Home:
    """A back office home folder (module docstring); ``db_url`` a PostgreSQL database
    (``postgresql://...``) instead of the folder's SQLite file."""

    path: Path
    db_url: str | None = None

    @property
    def db(self) -> Path:
        """The SQLite database (when ``db_url`` is not given)."""
        return self.path / DB_FILE

    @property
    def fares_path(self) -> Path:
        """The fare rules."""
        return self.path / FARES_FILE

    @property
    def tls(self) -> TlsFolder:
        """The TLS folder (module docstring)."""
        return TlsFolder(self.path / TLS_DIR)

    def database(self) -> Database:
        """The database of this home (not connected yet)."""
        return open_database(self.db_url, self.db)

    def exists(self) -> bool:
        """Whether ``init`` made this home."""
        return (self.path / SEALING_FILE).exists() and (bool(self.db_url) or self.db.exists())

    def init(
        self,
        *,
        fares_text: str | None = None,
        card_reference_key: bytes | None = None,
        tls: TlsPlan | None = None,
    ) -> None:
        """Make a fresh home: keys, fares, database and the TLS folder (``tls``, checked
        by :func:`emvwire.tls.plan_folder`; default a new CA and a server certificate
        for localhost and 127.0.0.1). :class:`StoreError` if one is there."""
        if self.exists():
            raise StoreError(f"{self.path} already holds a back office")
        text = fares_text if fares_text is not None else default_fares_text()
        try:
            parse_fares(json.loads(text))
        except (ValueError, FareError) as exc:
            raise StoreError(f"fare configuration: {exc}") from None
        if tls is None:
            tls = plan_folder(CA_NAME, hosts=DEFAULT_HOSTS)
        self.path.mkdir(parents=True, exist_ok=True)
        private, _ = generate_keypair()
        for name in (SEALING_FILE, CARD_REFERENCE_FILE):
            (self.path / name).unlink(missing_ok=True)
        self.tls.remove()
        _write_secret(self.path / SEALING_FILE, private.hex())
        _write_secret(
            self.path / CARD_REFERENCE_FILE, (card_reference_key or DEMO_CARD_REFERENCE_KEY).hex()
        )
        self.fares_path.write_text(text)
        self.tls.create(tls)
        Store(self).close()

    def _secret(self, name: str) -> bytes:
        try:
            return bytes.fromhex((self.path / name).read_text().strip())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / name}: unreadable ({exc})") from None

    def sealing_private_key(self) -> bytes:
        """The X25519 private key that opens ``track2_sealed``."""
        return self._secret(SEALING_FILE)

    def sealing_public_key(self) -> bytes:
        """The public key gates seal track 2 to."""
        return public_key_of(self.sealing_private_key())

    def card_reference_key(self) -> bytes:
        """The card reference HMAC key shared with the gates."""
        return self._secret(CARD_REFERENCE_FILE)

    def fares(self) -> FareRules:
        """The fare rules of this home."""
        try:
            return load_fares(self.fares_path)
        except FareError as exc:
            raise StoreError(f"fare configuration: {exc}") from None


# --- taps ---------------------------------------------------------------------------------

_HEX32: Final = re.compile(r"[0-9a-fA-F]{32}")
_MASKED: Final = re.compile(r"\d{4,8}\*{2,13}\d{0,4}")
_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")
_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
_OUTCOMES: Final = frozenset({"approved", "online_request"})
_ODA: Final = frozenset({"passed", "not_performed", "failed"})
_DENY_REASONS: Final = frozenset({"deny_list", "first_ride_limit", "card_error"})
_DIRECTIONS: Final = frozenset({"single", "on", "off"})
#: Columns of ``taps`` that an upload fills, in order.
TAP_COLUMNS: Final = (
    "tap_id", "gate_id", "time", "time_ms", "travel_day", "direction", "zone",
    "card_reference", "masked_pan", "token", "scheme", "aid", "outcome", "oda", "decision",
    "deny_reason", "amount", "currency", "icc_data", "received_at", "track2_sealed",
)  # fmt: skip


_INSERT_TAP: Final = (
    f"INSERT INTO taps ({', '.join(TAP_COLUMNS)}) "  # noqa: S608 (constant columns)
    f"VALUES ({', '.join('?' * len(TAP_COLUMNS))}) ON CONFLICT (tap_id) DO NOTHING RETURNING 1"
)


@dataclass(frozen=True, slots=True)
class TapUpload:
    """The answer to an upload: tap ids stored now, and those stored before."""

    accepted: list[str]
    duplicates: list[str]


def validate_tap(obj: Any, gate_id: str, rules: FareRules, received_at: str) -> tuple[Any, ...]:
    """One uploaded TAP (the gate protocol, backoffice/service.py) checked and turned
    into a ``taps`` row
    (:data:`TAP_COLUMNS`); :class:`~backoffice.errors.TapError` says what is wrong. A
    tap of another gate raises :class:`~backoffice.errors.ForeignTapError`."""
    if not isinstance(obj, dict):
        raise TapError("a tap is a JSON object")
    tap_id = obj.get("tap_id")
    if not isinstance(tap_id, str) or not 3 <= len(tap_id) <= 100:
        raise TapError("tap_id: a string '<gate_id>:<seq>'")

    def bad(name: str, why: str) -> TapError:
        return TapError(f"tap {tap_id}: {name}: {why}")

    def text(name: str, allowed: frozenset[str] | None = None, *, null: bool = False) -> Any:
        value = obj.get(name)
        if value is None and null:
            return None
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            choices = f" one of {', '.join(sorted(allowed))}" if allowed else " a string"
            raise bad(name, f"expected{choices}{' or null' if null else ''}, got {value!r}")
        return value

    gate = text("gate_id")
    if gate != gate_id:
        raise ForeignTapError(f"tap {tap_id} is of gate {gate}, not of the caller {gate_id}")
    prefix, _, seq = tap_id.rpartition(":")
    if prefix != gate or not seq.isdigit():
        raise bad("tap_id", f"must be '{gate}:<seq>'")
    when_text = text("time")
    if not _TIME.fullmatch(when_text):
        raise bad("time", "UTC, e.g. 2026-11-24T07:31:02.123Z")
    try:
        when = datetime.fromisoformat(when_text.replace("Z", "+00:00"))
    except ValueError:
        raise bad("time", "not a date and time") from None
    if text("mode") != "transit":
        raise bad("mode", "only 'transit' taps come here")
    direction = text("direction", _DIRECTIONS)
    zone = text("zone", null=True)
    if direction != "single" and zone is None:
        raise bad("zone", f"a tap {direction} needs its zone")
    reference = text("card_reference")
    if not _HEX32.fullmatch(reference):
        raise bad("card_reference", "32 hex digits")
    masked = text("masked_pan")
    if not _MASKED.fullmatch(masked):
        raise bad("masked_pan", "a masked PAN such as 476173******0010 (never a full PAN)")
    token = obj.get("token")
    if not isinstance(token, bool):
        raise bad("token", "true or false")
    scheme = text("scheme")
    aid = text("aid")
    if not (_HEX.fullmatch(aid) and 10 <= len(aid) <= 32):
        raise bad("aid", "5 to 16 bytes, hex")
    outcome = text("outcome", _OUTCOMES)
    oda = text("oda", _ODA)
    decision = text("decision", frozenset({"open", "deny"}))
    deny_reason = text("deny_reason", _DENY_REASONS, null=True)
    if (decision == "deny") != (deny_reason is not None):
        raise bad("deny_reason", "given exactly when the decision is 'deny'")
    amount = obj.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount < 10**12:
        raise bad("amount", "minor units, a whole number")
    currency = text("currency")
    if not (len(currency) == 3 and currency.isdigit()):
        raise bad("currency", "ISO 4217 numeric, e.g. '978'")
    blobs: list[bytes | None] = []
    for name in ("icc_data", "track2_sealed"):
        value = obj.get(name)
        if value is None and decision == "deny":
            blobs.append(None)
            continue
        if not isinstance(value, str) or not _HEX.fullmatch(value) or not value:
            raise bad(name, "hex")
        if len(value) > 4096:
            raise bad(name, "too long")
        blobs.append(bytes.fromhex(value))
    if decision == "open" and blobs[1] is not None and len(blobs[1]) <= SEAL_OVERHEAD:
        raise bad("track2_sealed", "not a sealed box")
    time_ms = int(when.timestamp() * 1000)
    return (
        tap_id, gate, when_text, time_ms, rules.travel_day(when).isoformat(), direction, zone,
        reference.lower(), masked, int(token), scheme, aid.upper(), outcome, oda, decision,
        deny_reason, amount, currency, blobs[0], received_at, blobs[1],
    )  # fmt: skip


# --- the store ------------------------------------------------------------------------------


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record_certificate(conn: Connection, gate_id: str, issued: IssuedCertificate) -> None:
    conn.execute(
        "INSERT INTO gate_certificates (serial, gate_id, fingerprint, not_after, created_at) "
        "VALUES (?,?,?,?,?)",
        (issued.identity.serial, gate_id, issued.fingerprint,
         issued.identity.not_after.isoformat(), now_text()),
    )  # fmt: skip


class Store:
    """The database of a home (:mod:`backoffice.database`: SQLite or PostgreSQL), one
    connection per thread, migrated when opened (:mod:`backoffice.schema`)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.db = home.database()
        try:
            self.db.migrate(now_text())
        except BaseException:
            self.db.close()
            raise

    def __repr__(self) -> str:
        return f"Store({self.db!r})"

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    @property
    def conn(self) -> Connection:
        """This thread's connection (autocommit mode; :meth:`write` makes transactions)."""
        return self.db.conn

    def close(self) -> None:
        """Close every connection this store opened."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction (committed at the end, rolled back on error)."""
        return self.db.write()

    # -- gates -------------------------------------------------------------------------------

    def add_gate(
        self,
        name: str,
        zone: str | None,
        certify: Callable[[str], IssuedCertificate] | None = None,
    ) -> tuple[str, str]:
        """Register a gate: (gate id, key). The key is returned once; a hash is kept.
        With ``certify`` (the gate id -> its TLS client certificate, issued) the
        certificate is recorded in the same transaction: both or neither."""
        key = secrets.token_hex(16)
        with self.write() as conn:
            count = int(conn.execute("SELECT COUNT(*) FROM gates").fetchone()[0])
            gate_id = f"G{count + 1}"
            conn.execute(
                "INSERT INTO gates (gate_id, name, zone, key_hash, created_at) VALUES (?,?,?,?,?)",
                (gate_id, name, zone, _hash_key(key), now_text()),
            )
            if certify is not None:
                _record_certificate(conn, gate_id, certify(gate_id))
        return gate_id, key

    def gates(self) -> list[dict[str, Any]]:
        """Every gate (no keys)."""
        rows = self.conn.execute(
            "SELECT gate_id, name, zone, created_at, revoked FROM gates "
            "ORDER BY CAST(SUBSTR(gate_id, 2) AS INTEGER), gate_id"
        ).fetchall()
        return [
            {"gate_id": g, "name": n, "zone": z, "created_at": c, "revoked": bool(r)}
            for g, n, z, c, r in rows
        ]

    def authenticate(self, gate_id: str, key: str) -> bool:
        """Whether ``key`` is the key of the (not revoked) gate ``gate_id``; the hashes
        are compared in constant time."""
        row = self.conn.execute(
            "SELECT key_hash FROM gates WHERE gate_id = ? AND revoked = 0", (gate_id,)
        ).fetchone()
        expected = row[0] if row else "0" * 64
        return hmac.compare_digest(expected, _hash_key(key)) and row is not None

    def gate_certificate(
        self, gate_id: str, certify: Callable[[str], IssuedCertificate]
    ) -> IssuedCertificate:
        """Record a new TLS client certificate of a gate that is not revoked
        (``certify`` issues it: at ``gate add``, or a renewal, after which the gate's
        earlier certificates stay valid until they expire). :class:`StoreError` for an
        unknown or revoked gate."""
        with self.write() as conn:
            row = conn.execute("SELECT revoked FROM gates WHERE gate_id = ?", (gate_id,)).fetchone()
            if row is None or row[0]:
                raise StoreError(f"gate {gate_id} is {'revoked' if row else 'unknown'}")
            issued = certify(gate_id)
            _record_certificate(conn, gate_id, issued)
        return issued

    def gate_certificates(self, gate_id: str) -> list[dict[str, Any]]:
        """A gate's certificates, oldest first (serial, fingerprint, validity, revoked)."""
        return self.query(
            "SELECT serial, fingerprint, not_after, created_at, revoked_at FROM "
            "gate_certificates WHERE gate_id = ? ORDER BY created_at, serial",
            (gate_id,),
        )

    def revoke_gate(self, gate_id: str) -> int:
        """Refuse a gate's key and every certificate of it from now on (one
        transaction); how many certificates were revoked. :class:`StoreError` for an
        unknown or revoked gate."""
        at = now_text()
        with self.write() as conn:
            if not conn.execute(
                "UPDATE gates SET revoked = 1 WHERE gate_id = ? AND revoked = 0", (gate_id,)
            ).rowcount:
                raise StoreError(f"gate {gate_id} is unknown or revoked already")
            return int(
                conn.execute(
                    "UPDATE gate_certificates SET revoked_at = ? "
                    "WHERE gate_id = ? AND revoked_at IS NULL",
                    (at, gate_id),
                ).rowcount
            )

    def certificate_allowed(self, certificate: str | bytes, gate_id: str) -> bool:
        """Whether gate ``gate_id``'s request (its bearer key verified) may be served on
        a TLS connection whose verified client certificate is ``certificate`` (PEM, the
        leaf): it names this gate, is recorded for it and not revoked, has not
        expired, and the gate is not revoked. One indexed read."""
        try:
            identity = identity_of(certificate)
        except PkiError:
            return False
        if identity.kind != "gate" or identity.id != gate_id:
            return False
        if datetime.now(UTC) >= identity.not_after:
            return False
        row = self.conn.execute(
            "SELECT 1 FROM gate_certificates c JOIN gates g ON g.gate_id = c.gate_id "
            "WHERE c.serial = ? AND c.gate_id = ? AND c.revoked_at IS NULL AND g.revoked = 0",
            (identity.serial, gate_id),
        ).fetchone()
        return row is not None

    # -- taps --------------------------------------------------------------------------------

    def insert_taps(self, gate_id: str, taps: Sequence[Any], rules: FareRules) -> TapUpload:
        """Store an upload all or nothing (``POST /v1/taps`` of the gate protocol): every tap is
        validated first (:class:`TapError`, :class:`ForeignTapError`), then inserted in
        one transaction; a tap id already stored is a duplicate and changes nothing."""
        received = now_text()
        return self.store_taps([validate_tap(t, gate_id, rules, received) for t in taps])

    def store_taps(self, rows: Sequence[tuple[Any, ...]]) -> TapUpload:
        """Insert validated ``taps`` rows (:func:`validate_tap`) in one transaction; a
        tap id stored before is a duplicate and changes nothing (the idempotent apply
        of a re-sent or redelivered tap)."""
        with self.write() as conn:
            fresh = conn.inserted(_INSERT_TAP, rows)
        accepted = [row[0] for row, new in zip(rows, fresh, strict=True) if new]
        duplicates = [row[0] for row, new in zip(rows, fresh, strict=True) if not new]
        return TapUpload(accepted, duplicates)

    def gate_active(self, gate_id: str) -> bool:
        """Whether ``gate_id`` is a registered gate that is not revoked."""
        row = self.conn.execute(
            "SELECT 1 FROM gates WHERE gate_id = ? AND revoked = 0", (gate_id,)
        ).fetchone()
        return row is not None

    # -- deny list ---------------------------------------------------------------------------

    def deny_version(self) -> int:
        """The deny list's current version (0: never changed)."""
        row = self.conn.execute("SELECT MAX(version) FROM deny_changes").fetchone()
        return int(row[0] or 0)

    def deny_add(
        self,
        conn: Connection,
        references: Sequence[str],
        *,
        reason: str,
        rider_id: int | None,
        aggregation_id: str | None,
    ) -> int:
        """Put references on the deny list in the caller's transaction; one version per
        reference added; how many were added."""
        at, added = now_text(), 0
        if references:
            self.db.lock_deny_list(conn)
        for ref in references:
            if conn.execute("SELECT 1 FROM deny_list WHERE card_reference = ?", (ref,)).fetchone():
                continue
            version = conn.execute(
                "INSERT INTO deny_changes (card_reference, op, at) VALUES (?, 'add', ?) "
                "RETURNING version",
                (ref, at),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO deny_list VALUES (?,?,?,?,?,?)",
                (ref, rider_id, reason, aggregation_id, version, at),
            )
            added += 1
        return added

    def deny_remove(self, conn: Connection, references: Sequence[str]) -> int:
        """Take references off the deny list in the caller's transaction."""
        at, removed = now_text(), 0
        if references:
            self.db.lock_deny_list(conn)
        for ref in references:
            if conn.execute("DELETE FROM deny_list WHERE card_reference = ?", (ref,)).rowcount:
                conn.execute(
                    "INSERT INTO deny_changes (card_reference, op, at) VALUES (?, 'remove', ?)",
                    (ref, at),
                )
                removed += 1
        return removed

    def deny_changes(self, since: int) -> dict[str, Any]:
        """``GET /v1/deny-list?since=N`` of the gate protocol: changes after version ``since``
        (net per reference), or the full list when ``since`` is 0 or unknown."""
        with self.db.snapshot() as conn:  # one snapshot for the version and the changes
            version = int(conn.execute("SELECT MAX(version) FROM deny_changes").fetchone()[0] or 0)
            if since <= 0 or since > version:
                refs = [
                    r[0]
                    for r in conn.execute("SELECT card_reference FROM deny_list ORDER BY version")
                ]
                return {"version": version, "full": True, "add": refs, "remove": []}
            last: dict[str, str] = {}
            for ref, op in conn.execute(
                "SELECT card_reference, op FROM deny_changes WHERE version > ? ORDER BY version",
                (since,),
            ):
                last[ref] = op
            return {
                "version": version,
                "full": False,
                "add": [r for r, op in last.items() if op == "add"],
                "remove": [r for r, op in last.items() if op == "remove"],
            }

    def deny_list(self) -> list[dict[str, Any]]:
        """Every entry of the deny list, oldest first."""
        rows = self.conn.execute(
            "SELECT d.card_reference, d.rider_id, d.reason, d.aggregation_id, d.version, "
            "d.added_at, c.masked_pan FROM deny_list d LEFT JOIN cards c "
            "USING (card_reference) ORDER BY d.version"
        ).fetchall()
        keys = ("card_reference", "rider_id", "reason", "aggregation_id", "version", "added_at",
                "masked_pan")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # -- reports -----------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
