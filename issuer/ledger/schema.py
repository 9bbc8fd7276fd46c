"""The issuer's database schema: one list of migrations for SQLite and PostgreSQL.

Each :class:`Migration` is a list of statements written once with three
placeholders filled per dialect (``{blob}``, ``{bigint}``, ``{serial_pk}``), plus
statements of its own per dialect where the two differ (triggers). The applied
versions are kept in ``schema_migrations`` (version, name, checksum, applied_at);
migrating applies the missing ones in order, in one transaction, under a lock
(PostgreSQL ``pg_advisory_xact_lock``, SQLite ``BEGIN IMMEDIATE``), so that two
services starting together migrate once.

Design (documented here because the tables are the contract):

- **PANs** are never stored in clear: ``pan_masked`` (first 6 / last 4, PCI DSS v4.0
  Req. 3.4.1) for display, ``pan_hash`` (HMAC-SHA256 under a key-store key: a keyed
  hash, since a plain one is brute-forced inside a BIN) for look-up and uniqueness,
  ``pan_sealed`` (AES-256-GCM under a key-store key, the card id as associated data)
  for the rare need of the PAN itself (``issuer card show --reveal``). Tokens alike.
- **Money** is double entry: ``journals`` of ``entries`` (account, book, signed
  amount), each book of a journal summing to zero against the issuer's system
  accounts. ``accounts.balance`` and ``accounts.held`` of a cardholder account are the
  sums of its ``posted`` and ``held`` entries, updated in the same transaction;
  ``Ledger.check`` proves it. System accounts keep no running balance (every journal
  touches one, and a running balance would queue all transactions on its row): theirs
  is the sum of their entries, read when asked. Journals, entries and authorisation
  events are append-only (triggers refuse UPDATE, DELETE and, on PostgreSQL, TRUNCATE).
- **Authorisations** are append-only records; only ``status`` (from ``pending``,
  once), ``captured_amount``, ``released_amount`` and ``updated_at`` may change, each
  change logged in ``authorisation_events``. ``(terminal_id, request_id)`` is unique:
  the idempotency key.
- **ATCs**: ``atc_state`` keeps per card application (card or token) the highest ATC
  and (migration 4) ``seen``, a bitmap of the ATCs accepted in the window below it; one
  upsert locks the row, decides and records, so one ATC is accepted once even by two
  services on one PostgreSQL. (Before migration 4, ``atc_seen`` kept a row per ATC.)
- **Cache generation** (migration 2): ``cache_generation`` holds one number that
  triggers raise in the transaction of any change to what a service caches between
  requests (:data:`GENERATION_COLUMNS`: card, token, account and terminal status and
  the like). A service reads it once per event-loop turn and drops its cached rows
  when it moved, so a pause, a suspension or a revoked terminal committed by any
  process (the CLI) is seen from the next turn on.
- **Terminal certificates** (migration 5): ``terminal_certificates`` records every
  client certificate issued to a terminal (serial, fingerprint, validity, status;
  never a key). ``issuer terminal revoke`` revokes the terminal and its certificates
  in one transaction; a certificate's status change bumps the cache generation
  (:data:`CERTIFICATE_GENERATION_COLUMNS`), so a service caching certificate rows
  refuses a revoked one from its next turn.
- **Ranges and key versions** (migration 6): a range has a ``status`` (``active``; a
  ``retired`` range issues and registers no more cards, its cards keep working). Each
  card and token records the ``key_version`` of the master keys its keys derive from
  (1 for everything made before); ``retired_master_keys`` lists the master key
  versions (scheme, prefix, CVN, version) whose cards are refused. Adding a row bumps
  the cache generation, so a running service refuses them from its next turn.
- **Events and webhooks** (migration 7): ``events`` is the outbox: every state change
  (:class:`issuer.model.events.EventType`) inserts its event in the transaction of the
  change, so none is lost and none outlives a rollback. ``object_seq`` numbers an
  object's events from 1; an event is inserted after the UPDATE of its object's row,
  whose lock it holds, so that order is the commit order. Events are append-only but
  for ``dispatched`` (0 until the delivery worker has made the event's deliveries; a
  partial index finds those). ``webhook_endpoints`` hold a URL, the subscribed types,
  an optional terminal filter and the signing secret sealed like a PAN (AES-256-GCM
  under the key store's data key, the endpoint id as associated data), with the
  previous secret and the end of its grace period after a rotation.
  ``webhook_deliveries`` is one row per event and endpoint (unique): attempts, the
  next attempt's time, a lease (``claimed_until``) that keeps two workers from sending
  it at once, the last HTTP status or error, and when it was delivered.
- **Operators and the audit log** (migration 8): ``operators`` are the people and
  programs of the operator API (``op_`` ids, scopes, an Argon2id credential hash, the
  serial of the client certificate issued to them, status); a change of their status,
  credential, scopes or certificate bumps the cache generation
  (:data:`OPERATOR_GENERATION_COLUMNS`), so a revoked operator is refused from the
  next turn. ``operator_requests`` keeps each operator POST's ``Idempotency-Key`` with
  the hash of its request and the object it made or changed, written in the
  transaction of the change. ``audit_log`` records who did what to which object,
  when, with what outcome (details masked); it is append-only (triggers refuse
  UPDATE, DELETE and, on PostgreSQL, TRUNCATE).
- **QR code payments** (migration 10): each authorisation records its ``channel``
  (``contactless``; ``qr_cpm``, a phone's code scanned by a till; ``qr_mpm``, a phone
  paying a merchant's code), written once like the rest of the record. A token's
  ``channels`` (a comma-separated list; NULL: every channel) restrict where it may
  pay. A terminal has a ``city`` and a ``currency`` for the codes made for it
  (NULL: none recorded; the currency then is its country's). ``wallets`` are the
  phone wallets allowed to pay merchant-presented codes (an id, a name, a credential
  hash as terminals have, a status). ``qr_sales`` are the sales of dynamic
  merchant-presented codes by (terminal, bill number): amount, currency, status
  (``open``, ``paying`` while a payment claims it, ``paid``, ``expired``,
  ``cancelled``), the request id that claimed it, the approved authorisation and the
  declined ones. A change of a token's channels, a terminal's city or currency, or a
  wallet's status or credential bumps the cache generation.
- **Spending controls, the program's decision endpoint, increments** (migration 9):
  ``spending_controls`` holds per account, card or token (``level``, ``subject_id``)
  its merchant category and country lists (allowed or blocked, never both) and its
  limits (per transaction; per day, week, month, year and all time by amount and by
  count); ``decision_endpoint`` the one program endpoint of the issuer (URL,
  deadline, fallback, CA, its signing secret sealed under a key-store key). A change
  to either bumps the cache generation. ``authorisation_decisions`` records what the
  program answered for an authorisation (or the fallback taken and why), in the
  transaction of the authorisation; ``authorisation_increments`` each increment asked
  of a pending authorisation (unique per terminal and request id: its stored
  answer). An approved increment raises the record's ``amount`` and ``held_amount``
  (the only change of either: the guards of migration 1 allow it on a pending record,
  upward, both by the same amount) and appends an ``incremented`` event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CERTIFICATE_GENERATION_COLUMNS",
    "DIALECT_TYPES",
    "GENERATION_COLUMNS",
    "MIGRATIONS",
    "OPERATOR_GENERATION_COLUMNS",
    "Migration",
    "statements_for",
]

#: Column types per dialect.
DIALECT_TYPES: Final[Mapping[str, Mapping[str, str]]] = {
    "sqlite": {
        "blob": "BLOB",
        "bigint": "INTEGER",
        "serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgresql": {
        "blob": "BYTEA",
        "bigint": "BIGINT",
        "serial_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: common statements, then each dialect's own."""

    version: int
    name: str
    common: tuple[str, ...]
    per_dialect: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def checksum(self, dialect: str) -> str:
        """SHA-256 of the statements this dialect runs (drift detection)."""
        text = "\n;\n".join(statements_for(self, dialect))
        return hashlib.sha256(text.encode()).hexdigest()


def statements_for(migration: Migration, dialect: str) -> list[str]:
    """The statements of ``migration`` for ``dialect``, placeholders filled."""
    types = DIALECT_TYPES[dialect]
    out = [s.format(**types) for s in migration.common]
    out.extend(migration.per_dialect.get(dialect, ()))
    return out


_CORE_TABLES: Final = (
    """CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('debit', 'credit', 'system')),
        currency TEXT NOT NULL,
        credit_limit {bigint} NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        balance {bigint} NOT NULL DEFAULT 0,
        held {bigint} NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    )""",
    """INSERT INTO accounts (id, holder, kind, currency, status, created_at) VALUES
        ('sys_funding', 'issuer: funding', 'system', 'XXX', 'open', '1970-01-01T00:00:00Z'),
        ('sys_holds', 'issuer: holds', 'system', 'XXX', 'open', '1970-01-01T00:00:00Z'),
        ('sys_settlement', 'issuer: settlement', 'system', 'XXX', 'open',
         '1970-01-01T00:00:00Z')""",
    """CREATE TABLE bin_ranges (
        prefix TEXT PRIMARY KEY,
        scheme TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('card', 'token')),
        cvn INTEGER NOT NULL,
        pan_length INTEGER NOT NULL CHECK (pan_length BETWEEN 12 AND 19),
        issuer_key_id TEXT NOT NULL,
        ca_rid {blob} NOT NULL,
        ca_index INTEGER NOT NULL,
        certificate {blob} NOT NULL,
        remainder {blob} NOT NULL,
        exponent {blob} NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE cards (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        scheme TEXT NOT NULL,
        bin TEXT NOT NULL REFERENCES bin_ranges (prefix),
        pan_masked TEXT NOT NULL,
        pan_last4 TEXT NOT NULL,
        pan_hash {blob} NOT NULL UNIQUE,
        pan_sealed {blob} NOT NULL,
        psn TEXT NOT NULL,
        expiry TEXT NOT NULL,
        cvn INTEGER NOT NULL,
        par TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'closed')),
        origin TEXT NOT NULL CHECK (origin IN ('provisioned', 'registered', 'funding')),
        flag TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX cards_account ON cards (account_id)",
    """CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        card_id TEXT NOT NULL REFERENCES cards (id),
        account_id TEXT NOT NULL REFERENCES accounts (id),
        scheme TEXT NOT NULL,
        bin TEXT NOT NULL REFERENCES bin_ranges (prefix),
        token_masked TEXT NOT NULL,
        token_last4 TEXT NOT NULL,
        token_hash {blob} NOT NULL UNIQUE,
        token_sealed {blob} NOT NULL,
        psn TEXT NOT NULL,
        expiry TEXT NOT NULL,
        cvn INTEGER NOT NULL,
        par TEXT NOT NULL,
        requestor_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
        contactless_only INTEGER NOT NULL CHECK (contactless_only IN (0, 1)),
        allowed_mccs TEXT,
        blocked_mccs TEXT,
        flag TEXT,
        created_at TEXT NOT NULL,
        CHECK (allowed_mccs IS NULL OR blocked_mccs IS NULL)
    )""",
    "CREATE INDEX tokens_card ON tokens (card_id)",
    "CREATE INDEX tokens_account ON tokens (account_id)",
    """CREATE TABLE terminals (
        id TEXT PRIMARY KEY,
        merchant TEXT NOT NULL,
        mcc TEXT NOT NULL,
        country TEXT NOT NULL,
        credential_hash TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE authorisations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('authorisation', 'refund')),
        terminal_id TEXT NOT NULL REFERENCES terminals (id),
        request_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        card_id TEXT REFERENCES cards (id),
        token_id TEXT REFERENCES tokens (id),
        account_id TEXT REFERENCES accounts (id),
        parent_id TEXT REFERENCES authorisations (id),
        amount {bigint} NOT NULL CHECK (amount >= 0),
        currency TEXT NOT NULL,
        mcc TEXT,
        approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
        decline_reason TEXT,
        response_code TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'closed', 'reversed', 'expired')),
        atc INTEGER,
        held_amount {bigint} NOT NULL DEFAULT 0 CHECK (held_amount >= 0),
        captured_amount {bigint} NOT NULL DEFAULT 0 CHECK (captured_amount >= 0),
        released_amount {bigint} NOT NULL DEFAULT 0 CHECK (released_amount >= 0),
        response TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at TEXT,
        UNIQUE (terminal_id, request_id),
        CHECK (released_amount <= held_amount)
    )""",
    "CREATE INDEX authorisations_card ON authorisations (card_id, created_at)",
    "CREATE INDEX authorisations_token ON authorisations (token_id, created_at)",
    "CREATE INDEX authorisations_account ON authorisations (account_id, created_at)",
    "CREATE INDEX authorisations_pending ON authorisations (status, expires_at)",
    "CREATE INDEX authorisations_parent ON authorisations (parent_id)",
    """CREATE TABLE authorisation_events (
        seq {serial_pk},
        transaction_id TEXT NOT NULL REFERENCES authorisations (id),
        kind TEXT NOT NULL,
        amount {bigint} NOT NULL,
        request_id TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX authorisation_events_txn ON authorisation_events (transaction_id)",
    """CREATE TABLE journals (
        seq {serial_pk},
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('credit', 'hold', 'release', 'capture', 'refund')),
        transaction_id TEXT REFERENCES authorisations (id),
        memo TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX journals_txn ON journals (transaction_id)",
    """CREATE TABLE entries (
        seq {serial_pk},
        journal_id TEXT NOT NULL REFERENCES journals (id),
        account_id TEXT NOT NULL REFERENCES accounts (id),
        book TEXT NOT NULL CHECK (book IN ('posted', 'held')),
        amount {bigint} NOT NULL CHECK (amount <> 0)
    )""",
    "CREATE INDEX entries_account ON entries (account_id)",
    "CREATE INDEX entries_journal ON entries (journal_id)",
    """CREATE TABLE atc_state (
        instrument_id TEXT PRIMARY KEY,
        highest_atc INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE atc_seen (
        instrument_id TEXT NOT NULL,
        atc INTEGER NOT NULL CHECK (atc BETWEEN 0 AND 65535),
        transaction_id TEXT,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (instrument_id, atc)
    )""",
)

#: Columns of an authorisation record that never change once written.
IMMUTABLE_AUTHORISATION_COLUMNS: Final = (
    "id",
    "kind",
    "terminal_id",
    "request_id",
    "request_hash",
    "card_id",
    "token_id",
    "account_id",
    "parent_id",
    "amount",
    "currency",
    "mcc",
    "approved",
    "decline_reason",
    "response_code",
    "atc",
    "held_amount",
    "response",
    "created_at",
    "expires_at",
)

_APPEND_ONLY: Final = ("journals", "entries", "authorisation_events")


def _sqlite_guards() -> tuple[str, ...]:
    out = []
    for table in _APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
            )
    out.append(
        "CREATE TRIGGER authorisations_no_delete BEFORE DELETE ON authorisations "
        "BEGIN SELECT RAISE(ABORT, 'authorisations are append-only'); END"
    )
    columns = ", ".join(IMMUTABLE_AUTHORISATION_COLUMNS)
    out.append(
        f"CREATE TRIGGER authorisations_immutable BEFORE UPDATE OF {columns} "
        "ON authorisations "
        "BEGIN SELECT RAISE(ABORT, 'authorisations are append-only'); END"
    )
    out.append(
        "CREATE TRIGGER authorisations_state BEFORE UPDATE OF status ON authorisations "
        "WHEN OLD.status <> 'pending' AND NEW.status <> OLD.status "
        "BEGIN SELECT RAISE(ABORT, 'only a pending authorisation changes state'); END"
    )
    return tuple(out)


def _postgres_guards() -> tuple[str, ...]:
    columns = ", ".join(IMMUTABLE_AUTHORISATION_COLUMNS)
    new = ", ".join(f"NEW.{c}" for c in IMMUTABLE_AUTHORISATION_COLUMNS)
    old = ", ".join(f"OLD.{c}" for c in IMMUTABLE_AUTHORISATION_COLUMNS)
    del columns
    out = [
        """CREATE FUNCTION tapstack_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% are append-only', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$""",
        f"""CREATE FUNCTION tapstack_authorisation_guard() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF ROW({new}) IS DISTINCT FROM ROW({old}) THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF NEW.status <> OLD.status AND OLD.status <> 'pending' THEN
                RAISE EXCEPTION 'only a pending authorisation changes state'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""",
    ]
    for table in _APPEND_ONLY:
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tapstack_append_only()"
        )
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_append_only()"
        )
    out.append(
        "CREATE TRIGGER authorisations_guard BEFORE UPDATE OR DELETE ON authorisations "
        "FOR EACH ROW EXECUTE FUNCTION tapstack_authorisation_guard()"
    )
    out.append(
        "CREATE TRIGGER authorisations_no_truncate BEFORE TRUNCATE ON authorisations "
        "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_append_only()"
    )
    return tuple(out)


#: The columns whose change bumps ``cache_generation``, per table: everything an
#: authorisation's read phase takes from a cached row (every column of a card or
#: token but its fraud flag; an account's status, kind and currency, never its
#: balances, which the write phase reads under lock; a terminal's credential, status
#: and merchant data). A new UPDATE of another column that the read phase uses must
#: be added here, in a new migration.
GENERATION_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "cards": ("account_id", "scheme", "bin", "pan_masked", "pan_last4", "pan_hash", "psn",
              "expiry", "cvn", "par", "status", "origin"),
    "tokens": ("card_id", "account_id", "scheme", "bin", "token_masked", "token_last4",
               "token_hash", "psn", "expiry", "cvn", "par", "requestor_id", "status",
               "contactless_only", "allowed_mccs", "blocked_mccs"),
    "accounts": ("kind", "currency", "status"),
    "terminals": ("merchant", "mcc", "country", "credential_hash", "status"),
}  # fmt: skip

_GENERATION_TABLE: Final = (
    """CREATE TABLE cache_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation {bigint} NOT NULL
    )""",
    "INSERT INTO cache_generation (id, generation) VALUES (1, 0)",
    # Velocity counts (approved authorisations of a card or token since a time) read
    # these indexes alone: no table row per counted authorisation.
    "DROP INDEX authorisations_card",
    "CREATE INDEX authorisations_card ON authorisations (card_id, created_at, approved, kind)",
    "DROP INDEX authorisations_token",
    "CREATE INDEX authorisations_token ON authorisations (token_id, created_at, approved, kind)",
)


#: Indexes of the authorisations that most records are not in: most are paid by card
#: (no token), have no parent (not a refund or resubmission) or are no longer pending;
#: a record outside an index costs no insert into it. Queries on ``token_id = ?`` and
#: ``parent_id = ?`` imply ``IS NOT NULL`` for both planners.
_PARTIAL_INDEXES: Final = (
    "DROP INDEX authorisations_token",
    "CREATE INDEX authorisations_token ON authorisations"
    " (token_id, created_at, approved, kind) WHERE token_id IS NOT NULL",
    "DROP INDEX authorisations_parent",
    "CREATE INDEX authorisations_parent ON authorisations (parent_id) WHERE parent_id IS NOT NULL",
    "DROP INDEX authorisations_pending",
    "CREATE INDEX authorisations_pending ON authorisations (expires_at) WHERE status = 'pending'",
)


#: The ATCs seen in the window below the highest as a bitmap of the state row (bit i:
#: highest - i), filled from ``atc_seen``, which goes: one row and one statement per
#: ATC check instead of two, one B-tree fewer written per authorisation.
_ATC_BITMAP: Final = (
    "ALTER TABLE atc_state ADD COLUMN seen {bigint} NOT NULL DEFAULT 1",
    "ALTER TABLE atc_state ADD COLUMN fresh INTEGER NOT NULL DEFAULT 1",
    "UPDATE atc_state SET seen = COALESCE((SELECT SUM(CAST(1 AS BIGINT)"
    " << (atc_state.highest_atc - s.atc)) FROM atc_seen s"
    " WHERE s.instrument_id = atc_state.instrument_id AND s.atc <= atc_state.highest_atc"
    " AND s.atc > atc_state.highest_atc - 63), 1)",
    "DROP TABLE atc_seen",
)


def _sqlite_generation(
    columns_of: Mapping[str, tuple[str, ...]] = GENERATION_COLUMNS,
) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_generation AFTER UPDATE OF {', '.join(columns)} ON {table} "  # noqa: S608 - module constants
        "BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END"
        for table, columns in columns_of.items()
    )


def _postgres_generation_triggers(
    columns_of: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_generation AFTER UPDATE OF {', '.join(columns)} ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_bump_generation()"
        for table, columns in columns_of.items()
    )


def _postgres_generation() -> tuple[str, ...]:
    return (
        """CREATE FUNCTION tapstack_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE cache_generation SET generation = generation + 1 WHERE id = 1;
            RETURN NULL;
        END $$""",
        *_postgres_generation_triggers(GENERATION_COLUMNS),
    )


#: The column of a terminal's certificate record whose change bumps
#: ``cache_generation`` (migration 5): a revocation is seen from the next turn, as a
#: terminal's own status is.
CERTIFICATE_GENERATION_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "terminal_certificates": ("status",),
}

#: Client certificates issued to terminals (:mod:`issuer.pki`), by serial; a
#: revocation is one UPDATE of ``status`` (never back to active: the repository's
#: statement changes active rows only).
_CERTIFICATES: Final = (
    """CREATE TABLE terminal_certificates (
        serial TEXT PRIMARY KEY,
        terminal_id TEXT NOT NULL REFERENCES terminals (id),
        fingerprint TEXT NOT NULL UNIQUE,
        not_before TEXT NOT NULL,
        not_after TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    "CREATE INDEX terminal_certificates_terminal ON terminal_certificates (terminal_id)",
)


#: Range status, the key version of each card and token, retired key versions.
_RANGES_AND_KEY_VERSIONS: Final = (
    "ALTER TABLE bin_ranges ADD COLUMN status TEXT NOT NULL DEFAULT 'active'"
    " CHECK (status IN ('active', 'retired'))",
    "ALTER TABLE bin_ranges ADD COLUMN retired_at TEXT",
    "ALTER TABLE cards ADD COLUMN key_version INTEGER NOT NULL DEFAULT 1 CHECK (key_version >= 1)",
    "ALTER TABLE tokens ADD COLUMN key_version INTEGER NOT NULL DEFAULT 1 CHECK (key_version >= 1)",
    """CREATE TABLE retired_master_keys (
        scheme TEXT NOT NULL,
        prefix TEXT NOT NULL,
        cvn INTEGER NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        retired_at TEXT NOT NULL,
        PRIMARY KEY (scheme, prefix, cvn, version)
    )""",
)


#: The outbox of events, webhook endpoints and their deliveries (module docstring).
_EVENTS_AND_WEBHOOKS: Final = (
    """CREATE TABLE events (
        seq {serial_pk},
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        object_seq INTEGER NOT NULL CHECK (object_seq >= 1),
        terminal_id TEXT,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        dispatched INTEGER NOT NULL DEFAULT 0 CHECK (dispatched IN (0, 1)),
        UNIQUE (object_id, object_seq)
    )""",
    "CREATE INDEX events_undispatched ON events (seq) WHERE dispatched = 0",
    """CREATE TABLE webhook_endpoints (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        terminal_id TEXT REFERENCES terminals (id),
        description TEXT NOT NULL DEFAULT '',
        ca_file TEXT,
        status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
        secret_sealed {blob} NOT NULL,
        previous_secret_sealed {blob},
        previous_secret_until TEXT,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE webhook_deliveries (
        id {serial_pk},
        event_seq {bigint} NOT NULL,
        event_id TEXT NOT NULL REFERENCES events (id),
        endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
        object_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claimed_until TEXT,
        last_status INTEGER,
        last_error TEXT,
        delivered_at TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (endpoint_id, event_id)
    )""",
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)"
    " WHERE status = 'pending'",
    "CREATE INDEX webhook_deliveries_line ON webhook_deliveries"
    " (endpoint_id, object_id, event_seq) WHERE status = 'pending'",
    "CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)",
)

#: The columns of an event that never change (all but ``dispatched``).
_EVENT_COLUMNS: Final = (
    "seq, id, type, object_type, object_id, object_seq, terminal_id, data, created_at"
)


def _event_guards(dialect: str) -> tuple[str, ...]:
    """Events are append-only but for ``dispatched`` (module docstring)."""
    if dialect == "sqlite":
        return (
            f"CREATE TRIGGER events_immutable BEFORE UPDATE OF {_EVENT_COLUMNS} ON events "
            "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
            "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        )
    new = ", ".join(f"NEW.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
    old = ", ".join(f"OLD.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
    return (
        f"""CREATE FUNCTION tapstack_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' OR ROW({new}) IS DISTINCT FROM ROW({old}) THEN
                RAISE EXCEPTION 'events are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER events_guard BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION tapstack_event_guard()",
        "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_append_only()",
    )


#: The columns of an operator whose change bumps ``cache_generation`` (migration 8): a
#: revoked operator, a new credential or certificate, or other scopes are seen from the
#: next turn, as a terminal's are.
OPERATOR_GENERATION_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "operators": ("scopes", "credential_hash", "certificate_serial", "status"),
}

#: Operators of the API, their requests' idempotency keys, the audit log.
_OPERATORS_AND_AUDIT: Final = (
    """CREATE TABLE operators (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scopes TEXT NOT NULL,
        credential_hash TEXT NOT NULL,
        certificate_serial TEXT,
        certificate_not_after TEXT,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    """CREATE TABLE operator_requests (
        operator_id TEXT NOT NULL REFERENCES operators (id),
        idempotency_key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status INTEGER NOT NULL,
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (operator_id, idempotency_key)
    )""",
    """CREATE TABLE audit_log (
        seq {serial_pk},
        id TEXT NOT NULL UNIQUE,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        details TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed'))
    )""",
    "CREATE INDEX audit_log_actor ON audit_log (actor, seq)",
    "CREATE INDEX audit_log_object ON audit_log (object_id, seq)",
)


def _sqlite_audit_guards() -> tuple[str, ...]:
    return (
        *(
            f"CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log rows are append-only'); END"
            for op in ("UPDATE", "DELETE")
        ),
        *_sqlite_generation(OPERATOR_GENERATION_COLUMNS),
    )


def _postgres_audit_guards() -> tuple[str, ...]:
    return (
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION tapstack_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_append_only()",
        *_postgres_generation_triggers(OPERATOR_GENERATION_COLUMNS),
    )


#: QR code payments (module docstring, migration 10).
_QR_PAYMENTS: Final = (
    "ALTER TABLE authorisations ADD COLUMN channel TEXT NOT NULL DEFAULT 'contactless'"
    " CHECK (channel IN ('contactless', 'qr_cpm', 'qr_mpm'))",
    "ALTER TABLE tokens ADD COLUMN channels TEXT",
    "ALTER TABLE terminals ADD COLUMN city TEXT",
    "ALTER TABLE terminals ADD COLUMN currency TEXT",
    """CREATE TABLE wallets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        credential_hash TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE qr_sales (
        terminal_id TEXT NOT NULL REFERENCES terminals (id),
        bill TEXT NOT NULL,
        amount {bigint} NOT NULL CHECK (amount > 0),
        currency TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('open', 'paying', 'paid', 'expired', 'cancelled')),
        claim TEXT,
        transaction_id TEXT REFERENCES authorisations (id),
        declined TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (terminal_id, bill)
    )""",
)
#: The columns of migration 10 whose change bumps ``cache_generation``.
_QR_GENERATION: Final[Mapping[str, tuple[str, ...]]] = {
    "tokens": ("channels",),
    "terminals": ("city", "currency"),
    "wallets": ("name", "credential_hash", "status"),
}


def _qr_triggers(dialect: str) -> tuple[str, ...]:
    """Migration 10's triggers: the cache generation, and ``channel`` written once."""
    guard: tuple[str, ...]
    if dialect == "sqlite":
        bump = "BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END"
        guard = (
            "CREATE TRIGGER authorisations_channel_immutable BEFORE UPDATE OF channel"
            " ON authorisations BEGIN SELECT RAISE(ABORT, 'authorisations are append-only');"
            " END",
        )
    else:
        bump = "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_bump_generation()"
        guard = (
            """CREATE FUNCTION tapstack_channel_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.channel IS DISTINCT FROM OLD.channel THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""",
            "CREATE TRIGGER authorisations_channel_guard BEFORE UPDATE OF channel ON"
            " authorisations FOR EACH ROW EXECUTE FUNCTION tapstack_channel_guard()",
        )
    generation = tuple(
        f"CREATE TRIGGER {table}_qr_generation AFTER UPDATE OF {', '.join(columns)} ON {table} "
        + bump
        for table, columns in _QR_GENERATION.items()
    )
    return generation + guard


#: Migration 9: the columns of an authorisation record that never change once written
#: (migration 1's less ``amount`` and ``held_amount``, which an increment raises).
_IMMUTABLE_AFTER_INCREMENTS: Final = tuple(
    c for c in IMMUTABLE_AUTHORISATION_COLUMNS if c not in ("amount", "held_amount")
)
#: An increment's change: a pending record's amount and hold up by one same amount.
_INCREMENT_ONLY: Final = (
    "(NEW.amount <> OLD.amount OR NEW.held_amount <> OLD.held_amount) AND ("
    "OLD.status <> 'pending' OR NEW.amount < OLD.amount"
    " OR NEW.held_amount - OLD.held_amount <> NEW.amount - OLD.amount)"
)

_CONTROLS: Final = (
    """CREATE TABLE spending_controls (
        level TEXT NOT NULL CHECK (level IN ('account', 'card', 'token')),
        subject_id TEXT NOT NULL,
        allowed_mccs TEXT,
        blocked_mccs TEXT,
        allowed_countries TEXT,
        blocked_countries TEXT,
        max_per_transaction {bigint} CHECK (max_per_transaction > 0),
        daily_amount {bigint} CHECK (daily_amount > 0),
        weekly_amount {bigint} CHECK (weekly_amount > 0),
        monthly_amount {bigint} CHECK (monthly_amount > 0),
        yearly_amount {bigint} CHECK (yearly_amount > 0),
        all_time_amount {bigint} CHECK (all_time_amount > 0),
        daily_count INTEGER CHECK (daily_count > 0),
        weekly_count INTEGER CHECK (weekly_count > 0),
        monthly_count INTEGER CHECK (monthly_count > 0),
        yearly_count INTEGER CHECK (yearly_count > 0),
        all_time_count INTEGER CHECK (all_time_count > 0),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (level, subject_id),
        CHECK (allowed_mccs IS NULL OR blocked_mccs IS NULL),
        CHECK (allowed_countries IS NULL OR blocked_countries IS NULL)
    )""",
    """CREATE TABLE decision_endpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        url TEXT NOT NULL,
        deadline_ms INTEGER NOT NULL CHECK (deadline_ms BETWEEN 1 AND 60000),
        fallback TEXT NOT NULL CHECK (fallback IN ('issuer', 'decline')),
        ca_pem TEXT,
        secret_sealed {blob} NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE authorisation_decisions (
        transaction_id TEXT PRIMARY KEY REFERENCES authorisations (id),
        outcome TEXT NOT NULL CHECK (outcome IN ('approve', 'decline', 'partial', 'none')),
        amount {bigint},
        fallback TEXT CHECK (fallback IN ('issuer', 'decline')),
        cause TEXT,
        latency_ms INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE authorisation_increments (
        id TEXT PRIMARY KEY,
        transaction_id TEXT NOT NULL REFERENCES authorisations (id),
        terminal_id TEXT NOT NULL REFERENCES terminals (id),
        request_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        amount {bigint} NOT NULL CHECK (amount > 0),
        approved_amount {bigint} NOT NULL CHECK (approved_amount >= 0),
        approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
        response_code TEXT NOT NULL,
        decline_reason TEXT,
        response TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (terminal_id, request_id)
    )""",
    "CREATE INDEX authorisation_increments_txn ON authorisation_increments (transaction_id)",
)
_CONTROLS_APPEND_ONLY: Final = ("authorisation_decisions", "authorisation_increments")


def _sqlite_controls() -> tuple[str, ...]:
    out = [
        f"CREATE TRIGGER {table}_generation_{op.lower()} AFTER {op} ON {table} BEGIN"  # noqa: S608 - module constants
        " UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END"
        for table in ("spending_controls", "decision_endpoint")
        for op in ("INSERT", "UPDATE", "DELETE")
    ]
    for table in _CONTROLS_APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
            )
    columns = ", ".join(_IMMUTABLE_AFTER_INCREMENTS)
    out += [
        "DROP TRIGGER authorisations_immutable",
        f"CREATE TRIGGER authorisations_immutable BEFORE UPDATE OF {columns} "
        "ON authorisations "
        "BEGIN SELECT RAISE(ABORT, 'authorisations are append-only'); END",
        "CREATE TRIGGER authorisations_increment BEFORE UPDATE OF amount, held_amount "
        f"ON authorisations WHEN {_INCREMENT_ONLY} "
        "BEGIN SELECT RAISE(ABORT, 'authorisations are append-only'); END",
    ]
    return tuple(out)


def _postgres_controls() -> tuple[str, ...]:
    new = ", ".join(f"NEW.{c}" for c in _IMMUTABLE_AFTER_INCREMENTS)
    old = ", ".join(f"OLD.{c}" for c in _IMMUTABLE_AFTER_INCREMENTS)
    out = [
        f"CREATE TRIGGER {table}_generation AFTER INSERT OR UPDATE OR DELETE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION tapstack_bump_generation()"
        for table in ("spending_controls", "decision_endpoint")
    ]
    for table in _CONTROLS_APPEND_ONLY:
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tapstack_append_only()"
        )
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tapstack_append_only()"
        )
    out.append(
        f"""CREATE OR REPLACE FUNCTION tapstack_authorisation_guard() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF ROW({new}) IS DISTINCT FROM ROW({old}) THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF {_INCREMENT_ONLY} THEN
                RAISE EXCEPTION 'authorisations are append-only'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF NEW.status <> OLD.status AND OLD.status <> 'pending' THEN
                RAISE EXCEPTION 'only a pending authorisation changes state'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$"""
    )
    return tuple(out)


#: Every schema version, in order.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "accounts, ranges, cards, tokens, terminals, authorisations, ledger, ATCs",
        _CORE_TABLES,
        {"sqlite": _sqlite_guards(), "postgresql": _postgres_guards()},
    ),
    Migration(
        2,
        "cache generation (bumped by triggers on what cached rows hold); covering velocity indexes",
        _GENERATION_TABLE,
        {"sqlite": _sqlite_generation(), "postgresql": _postgres_generation()},
    ),
    Migration(
        3,
        "partial indexes: a token's and a parent's authorisations, pending holds",
        _PARTIAL_INDEXES,
    ),
    Migration(4, "ATC window as a bitmap in atc_state; atc_seen dropped", _ATC_BITMAP),
    Migration(
        5,
        "terminal client certificates by serial; a revocation bumps the cache generation",
        _CERTIFICATES,
        {
            "sqlite": _sqlite_generation(CERTIFICATE_GENERATION_COLUMNS),
            "postgresql": _postgres_generation_triggers(CERTIFICATE_GENERATION_COLUMNS),
        },
    ),
    Migration(
        6,
        "range status; each card's and token's master key version; retired key versions",
        _RANGES_AND_KEY_VERSIONS,
        {
            "sqlite": (
                "CREATE TRIGGER retired_master_keys_generation AFTER INSERT ON"
                " retired_master_keys BEGIN UPDATE cache_generation SET generation ="
                " generation + 1 WHERE id = 1; END",
            ),
            "postgresql": (
                "CREATE TRIGGER retired_master_keys_generation AFTER INSERT ON"
                " retired_master_keys FOR EACH STATEMENT EXECUTE FUNCTION"
                " tapstack_bump_generation()",
            ),
        },
    ),
    Migration(
        7,
        "events (the outbox), webhook endpoints with sealed secrets, webhook deliveries",
        _EVENTS_AND_WEBHOOKS,
        {"sqlite": _event_guards("sqlite"), "postgresql": _event_guards("postgresql")},
    ),
    Migration(
        8,
        "operators of the API, their idempotency keys; the append-only audit log",
        _OPERATORS_AND_AUDIT,
        {"sqlite": _sqlite_audit_guards(), "postgresql": _postgres_audit_guards()},
    ),
    Migration(
        9,
        "spending controls; the program's decision endpoint and its answers; increments",
        _CONTROLS,
        {"sqlite": _sqlite_controls(), "postgresql": _postgres_controls()},
    ),
    Migration(
        10,
        "QR code payments: authorisation channel, token channels, terminal city and"
        " currency, wallets, sales of dynamic merchant-presented codes",
        _QR_PAYMENTS,
        {"sqlite": _qr_triggers("sqlite"), "postgresql": _qr_triggers("postgresql")},
    ),
    Migration(
        11,
        "authorisations newest first: an index the console's live list and the operator"
        " API's list read, instead of sorting the whole table",
        ("CREATE INDEX authorisations_recent ON authorisations (created_at, id)",),
    ),
)
