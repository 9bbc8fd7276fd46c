"""Terminal and kernel configuration as data (EMV Book B §3.1, Book A §5.7).

A terminal is configured the way contactless readers are: terminal-wide data objects
(country 9F1A, currency 5F2A, merchant category 9F15, terminal type 9F35, capabilities
9F33/9F40, terminal id 9F1C, ...), CA public keys, and a list of **combinations**,
each an AID and a kernel id with the Entry Point parameters of Book B §3.1.1
(transaction types, status check, zero amount, extended selection, the reader
contactless transaction/floor/CVM limits, terminal floor limit 9F1B, TTQ) and the
kernel's own configuration data objects (e.g. Kernel 2's DF8120-DF8122 terminal
action codes and DF8132-DF8137 relay resistance thresholds). Every parameter may be
absent, as Book B allows.

A combination's ``unverified_cdcvm`` (``decline``, the default, or ``require_cvm``) says
what kernel 3 does with a consumer device CVM claim that no verified signature covers
(:func:`terminal.kernel.k3.rules.visa_cvm`).

What one card may cost the terminal is bounded (``timing`` and ``records``,
:class:`CardTiming` and :class:`RecordLimits`): each command has a deadline, each pass
of a transaction a time budget, and the records a kernel reads from one card a number
of AFL entries, records and bytes. The defaults and why they were chosen are on those
classes; :mod:`terminal.kernel.bounds` applies them.

``card_reference_key`` (hex, 16 to 64 bytes) keys the HMAC that turns a PAN or token
into a card reference (:func:`emvwire.cardref.card_reference`); absent, the published
demo key :data:`emvwire.cardref.DEMO_CARD_REFERENCE_KEY` is used, which is fine for
demos and tests and wrong for production (anyone can recompute references under it).

Book B §3.1 configures the entry point per combination **and transaction type**: the
same AID and kernel may appear more than once, each time for other transaction types
(``transaction_types`` that do not overlap), with its own limits and flags; a refund
or a cash advance then gets the parameters of its own entry.

``autorun`` (:class:`Autorun`) is the transaction a reader started at Start B runs
without a request from the application (Book B §3.1 and §3.2.1.1, Autorun): its
transaction type and amount (and other amount), as a vending machine or a transit gate
is configured.

The file format is JSON, schema ``tapstack.terminal-config/1``; :func:`load_config`
validates it and names the first problem with its path. :func:`default_config` is
the configuration the CLI uses when none is given. A reading that authenticates
nothing (``terminal read``) loads it with ``ca_keys=False``: :data:`NO_CA_KEYS` stands
for the keys, and neither the key files nor :mod:`emvwire.oda` are read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from emvwire.cardref import DEMO_CARD_REFERENCE_KEY
from emvwire.errors import EmvWireError, OdaError
from emvwire.tags import Tag
from terminal.errors import TerminalError

if TYPE_CHECKING:
    from datetime import date

    from emvwire.oda.capk import AnyCaKey, CaKey, Sm2CaKey

__all__ = [
    "DEFAULT_CURRENCY",
    "NO_CA_KEYS",
    "SCHEMA",
    "TRANSACTION_TYPES",
    "UNVERIFIED_CDCVM_POLICIES",
    "Autorun",
    "CaKeys",
    "CardTiming",
    "Combination",
    "ConfigError",
    "RecordLimits",
    "TerminalConfig",
    "default_config",
    "load_config",
    "parse_config",
]

SCHEMA = "tapstack.terminal-config/1"
#: The Transaction Currency Code (5F2A, ISO 4217 numeric as n 3) of a terminal whose
#: configuration names none: 978, the euro.
DEFAULT_CURRENCY: Final = b"\x09\x78"


#: Transaction type (9C) by name (ISO 8583 processing code, first two digits).
TRANSACTION_TYPES: Mapping[str, int] = {
    "purchase": 0x00,
    "cash_advance": 0x01,
    "cashback": 0x09,
    "refund": 0x20,
}


class ConfigError(TerminalError, ValueError):
    """A configuration is malformed; ``path`` says where (``combinations[2].ttq``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, slots=True)
class Combination:
    """One AID + kernel combination with its Entry Point parameters (Book B §3.1.1).

    Amounts are in minor units of the terminal currency. ``None`` means absent.
    """

    aid: bytes
    kernel_id: bytes
    transaction_types: frozenset[int] = frozenset(TRANSACTION_TYPES.values())
    status_check: bool = False
    zero_amount_allowed: bool | None = True
    extended_selection: bool = False
    transaction_limit: int | None = None
    floor_limit: int | None = None
    terminal_floor_limit: int | None = None
    cvm_required_limit: int | None = None
    ttq: bytes | None = None
    kernel_data: Mapping[int, bytes] = field(default_factory=dict)
    #: What kernel 3 does when the card claims a consumer device CVM (CTQ byte 2 bit 8)
    #: on a transaction needing a CVM, and no verified fDDA signature covers that claim
    #: (Basin, Sasse, Toro-Pozo, S&P 2021): ``decline`` (the default) or ``require_cvm``
    #: (ignore the claim and ask for the reader's own CVM: online PIN or signature).
    unverified_cdcvm: str = "decline"

    def __repr__(self) -> str:
        return f"Combination({self.aid.hex().upper()}, kernel {self.kernel_id.hex().upper()})"


@dataclass(frozen=True, slots=True)
class CardTiming:
    """How long a card may take (JSON ``timing``, in milliseconds).

    ``command_ms`` (default 2000): the deadline of one command, from the C-APDU sent to
    the last byte of its answer (GET RESPONSE rounds included). EMV Book D lets a card
    ask for a frame waiting time of up to 4949 ms (FWI 14), but payment cards answer in
    tens to hundreds of milliseconds: the slowest command of a slow plastic card (an
    RSA signature) takes well under one second, so 2 s leaves room for a slow card and
    a slow USB reader while a card that stops answering costs two seconds, not a hang.

    ``transaction_ms`` (default 5000): the budget of one pass of a transaction, from the
    card's activation (or a restart) to the outcome: every command after it is spent
    ends the transaction. A whole tap is expected within about 500 ms (Book A's timing
    guidance, as the payment networks quote it; Kernel 2's own Time Out Value DF8127 is
    500 ms in public configurations); 5 s is ten times that, for slow readers and
    loaded hosts, and still short enough that a card answering each command just under
    its deadline cannot keep the reader for long.
    """

    command_ms: int = 2000
    transaction_ms: int = 5000

    @property
    def command(self) -> float:
        """The command deadline in seconds."""
        return self.command_ms / 1000.0

    @property
    def transaction(self) -> float:
        """The pass budget in seconds."""
        return self.transaction_ms / 1000.0


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """How much record data a kernel accepts from one card (JSON ``records``).

    EMV allows an AFL (94) of 63 entries naming SFIs 1-30 and records 1-255 each (Book 3
    §10.2): 30 files of 255 records are 7,650 READ RECORDs, tens of seconds over the
    air. Real cards name two to five entries and under a dozen records (the fixture and
    public cards: 4 to 7 records, under 2 KiB). The defaults leave ample room:
    ``afl_entries`` 16, ``records`` 64 (counted over all entries) and ``total_bytes``
    16384 (the data of every record read, GET RESPONSE rounds included). An AFL past
    the first two bounds ends the transaction before any READ RECORD; a card whose
    records pass the third ends it when they do.
    """

    afl_entries: int = 16
    records: int = 64
    total_bytes: int = 16384


class CaKeys(Protocol):
    """The terminal's CA public keys as a kernel looks them up by (RID, index) (Book 2
    §11.2): an :class:`emvwire.oda.capk.CaKeyStore`, or :data:`NO_CA_KEYS`."""

    def find(self, rid: bytes, index: int) -> AnyCaKey | None:
        """The key for (RID, index), RSA or SM2, or ``None``."""

    def get(self, rid: bytes, index: int, *, today: date | None = None) -> CaKey:
        """The RSA key for (RID, index); :class:`~emvwire.errors.OdaError` if absent,
        an SM2 key or expired on ``today``."""

    def get_sm2(self, rid: bytes, index: int, *, today: date | None = None) -> Sm2CaKey:
        """The SM2 key for (RID, index), as :meth:`get` for RSA keys."""


class _NoCaKeys:
    """The CA keys of a configuration loaded without them (``ca_keys=False``): none,
    so offline data authentication would fail as without the card's key (Book 2 §5.3
    step 1)."""

    def find(self, rid: bytes, index: int) -> AnyCaKey | None:
        return None

    def get(self, rid: bytes, index: int, *, today: date | None = None) -> CaKey:
        raise self._absent(rid, index)

    def get_sm2(self, rid: bytes, index: int, *, today: date | None = None) -> Sm2CaKey:
        raise self._absent(rid, index)

    @staticmethod
    def _absent(rid: bytes, index: int) -> OdaError:
        return OdaError(
            f"no CA public key {bytes(rid).hex().upper()}/{index:02X}: the configuration "
            "was loaded without its CA keys"
        )

    def __repr__(self) -> str:
        return "NO_CA_KEYS"


#: See :class:`_NoCaKeys`.
NO_CA_KEYS: Final[CaKeys] = _NoCaKeys()


@dataclass(frozen=True, slots=True)
class Autorun:
    """The configured Autorun transaction (Book B §3.1, §3.2.1.1; JSON ``autorun``):
    transaction type (9C), amount and other amount in minor units of the terminal's
    currency."""

    type: int = TRANSACTION_TYPES["purchase"]
    amount: int = 0
    other_amount: int = 0


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """Terminal-wide data objects, CA keys and the combinations, in priority order."""

    terminal_data: Mapping[int, bytes]
    combinations: tuple[Combination, ...]
    ca_keys: CaKeys
    card_reference_key: bytes = field(default=DEMO_CARD_REFERENCE_KEY, repr=False)
    timing: CardTiming = CardTiming()
    records: RecordLimits = RecordLimits()
    #: The Autorun transaction, ``None`` when the terminal has none configured.
    autorun: Autorun | None = None

    def data(self, tag: int, default: bytes = b"") -> bytes:
        """A terminal data object (9F1A, 5F2A, ...), or ``default``."""
        return self.terminal_data.get(tag, default)

    @property
    def currency(self) -> bytes:
        """The terminal's Transaction Currency Code (5F2A), or :data:`DEFAULT_CURRENCY`
        (euro) when the configuration names none."""
        return self.terminal_data.get(Tag.TRANSACTION_CURRENCY_CODE, DEFAULT_CURRENCY)


# --- parsing -----------------------------------------------------------------------------


def _hex(value: Any, path: str, lengths: tuple[int, ...] | None = None) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(path, "expected a hex string")
    try:
        out = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(path, "not a hex string") from None
    if lengths is not None and len(out) not in lengths:
        raise ConfigError(path, f"{len(out)} bytes, need {' or '.join(map(str, lengths))}")
    return out


def _tag(text: Any, path: str) -> int:
    return int.from_bytes(_hex(text, path, (1, 2, 3)), "big")


def _data_objects(obj: Any, path: str) -> dict[int, bytes]:
    if not isinstance(obj, dict):
        raise ConfigError(path, "expected an object of tag -> hex value")
    return {_tag(t, path): _hex(v, f"{path}.{t}") for t, v in obj.items()}


def _amount(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{path}.{key}", "expected an amount in minor units >= 0, or null")
    return value


def _flag(obj: dict[str, Any], key: str, path: str, default: bool | None) -> bool | None:
    value = obj.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{path}.{key}", "expected true, false or null")
    return value


_COMBINATION_KEYS = {
    "aid", "kernel_id", "transaction_types", "status_check", "zero_amount_allowed",
    "extended_selection", "limits", "ttq", "kernel", "unverified_cdcvm",
}  # fmt: skip
#: Values of a combination's ``unverified_cdcvm``.
UNVERIFIED_CDCVM_POLICIES = ("decline", "require_cvm")
_LIMIT_KEYS = {"transaction", "floor", "terminal_floor", "cvm_required"}


def _combination(obj: Any, path: str) -> Combination:
    if not isinstance(obj, dict):
        raise ConfigError(path, "expected an object")
    unknown = set(obj) - _COMBINATION_KEYS
    if unknown:
        raise ConfigError(path, f"unknown keys {sorted(unknown)}")
    if "aid" not in obj or "kernel_id" not in obj:
        raise ConfigError(path, "a combination needs an aid and a kernel_id")
    types_raw = obj.get("transaction_types", list(TRANSACTION_TYPES))
    if not isinstance(types_raw, list) or not types_raw:
        raise ConfigError(f"{path}.transaction_types", "expected a non-empty list")
    types = set()
    for name in types_raw:
        if name not in TRANSACTION_TYPES:
            known = ", ".join(TRANSACTION_TYPES)
            raise ConfigError(f"{path}.transaction_types", f"{name!r} is not one of {known}")
        types.add(TRANSACTION_TYPES[name])
    limits = obj.get("limits", {})
    if not isinstance(limits, dict) or set(limits) - _LIMIT_KEYS:
        raise ConfigError(f"{path}.limits", f"expected an object with keys {sorted(_LIMIT_KEYS)}")
    ttq = obj.get("ttq")
    zero = _flag(obj, "zero_amount_allowed", path, True)
    cdcvm_policy = obj.get("unverified_cdcvm", "decline")
    if cdcvm_policy not in UNVERIFIED_CDCVM_POLICIES:
        raise ConfigError(
            f"{path}.unverified_cdcvm", f"expected one of {list(UNVERIFIED_CDCVM_POLICIES)}"
        )
    return Combination(
        aid=_hex(obj["aid"], f"{path}.aid", tuple(range(5, 17))),
        kernel_id=_hex(obj["kernel_id"], f"{path}.kernel_id", (1, 3)),
        transaction_types=frozenset(types),
        status_check=bool(_flag(obj, "status_check", path, False)),
        zero_amount_allowed=zero,
        extended_selection=bool(_flag(obj, "extended_selection", path, False)),
        transaction_limit=_amount(limits, "transaction", f"{path}.limits"),
        floor_limit=_amount(limits, "floor", f"{path}.limits"),
        terminal_floor_limit=_amount(limits, "terminal_floor", f"{path}.limits"),
        cvm_required_limit=_amount(limits, "cvm_required", f"{path}.limits"),
        ttq=None if ttq is None else _hex(ttq, f"{path}.ttq", (4,)),
        kernel_data=_data_objects(obj.get("kernel", {}), f"{path}.kernel"),
        unverified_cdcvm=cdcvm_policy,
    )


def _bounded(obj: Any, path: str, cls: type[Any], low: int, high: int) -> Any:
    """A :class:`CardTiming` or :class:`RecordLimits` from its JSON object: each key one
    of the class's fields, an integer from ``low`` to ``high``; absent keys default."""
    if obj is None:
        return cls()
    known = set(cls.__dataclass_fields__)
    if not isinstance(obj, dict) or set(obj) - known:
        raise ConfigError(path, f"expected an object with keys {sorted(known)}")
    for key, value in obj.items():
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{path}.{key}", f"expected an integer from {low} to {high}")
    return cls(**obj)


def parse_config(
    obj: Any, *, base: str | os.PathLike[str] | None = None, ca_keys: bool = True
) -> TerminalConfig:
    """Validate JSON data into a :class:`TerminalConfig` (or raise :class:`ConfigError`).

    ``ca_keys`` is a list whose items are either key files/folders (paths relative to
    ``base``, read with :meth:`~emvwire.oda.capk.CaKeyStore.load`) or inline key
    objects; with ``ca_keys=False`` they are neither read nor checked
    (:data:`NO_CA_KEYS`).
    """
    if not isinstance(obj, dict):
        raise ConfigError("", "a configuration is a JSON object")
    if obj.get("schema") != SCHEMA:
        raise ConfigError("schema", f"expected {SCHEMA!r}, found {obj.get('schema')!r}")
    terminal = _data_objects(obj.get("terminal", {}), "terminal")
    combos_raw = obj.get("combinations")
    if not isinstance(combos_raw, list) or not combos_raw:
        raise ConfigError("combinations", "expected a non-empty list")
    combos = tuple(_combination(c, f"combinations[{i}]") for i, c in enumerate(combos_raw))
    _check_types_per_combination(combos)
    store = _ca_keys(obj.get("ca_keys", []), base) if ca_keys else NO_CA_KEYS
    raw_key = obj.get("card_reference_key")
    ref_key = (
        DEMO_CARD_REFERENCE_KEY
        if raw_key is None
        else _hex(raw_key, "card_reference_key", tuple(range(16, 65)))
    )
    timing = _bounded(obj.get("timing"), "timing", CardTiming, 1, 600_000)
    records = _bounded(obj.get("records"), "records", RecordLimits, 1, 1 << 24)
    autorun = _autorun(obj.get("autorun"))
    return TerminalConfig(terminal, combos, store, ref_key, timing, records, autorun)


def _check_types_per_combination(combos: tuple[Combination, ...]) -> None:
    """Book B §3.1: one set of parameters per combination and transaction type; the
    same AID and kernel id may appear again for other transaction types only."""
    seen: dict[tuple[bytes, bytes], frozenset[int]] = {}
    names = {v: k for k, v in TRANSACTION_TYPES.items()}
    for i, c in enumerate(combos):
        key = (c.aid, c.kernel_id)
        both = seen.get(key, frozenset()) & c.transaction_types
        if both:
            raise ConfigError(
                f"combinations[{i}]",
                "the same AID and kernel id appear twice for transaction type "
                + ", ".join(sorted(names[t] for t in both)),
            )
        seen[key] = seen.get(key, frozenset()) | c.transaction_types


def _autorun(obj: Any) -> Autorun | None:
    """The ``autorun`` object: ``type`` (a transaction type name, default purchase),
    ``amount`` and ``other_amount`` (minor units, default 0)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or set(obj) - {"type", "amount", "other_amount"}:
        raise ConfigError("autorun", "expected an object with keys type, amount, other_amount")
    name = obj.get("type", "purchase")
    if name not in TRANSACTION_TYPES:
        known = ", ".join(TRANSACTION_TYPES)
        raise ConfigError("autorun.type", f"{name!r} is not one of {known}")
    return Autorun(
        TRANSACTION_TYPES[name],
        _amount(obj, "amount", "autorun") or 0,
        _amount(obj, "other_amount", "autorun") or 0,
    )


def _ca_keys(items: Any, base: str | os.PathLike[str] | None) -> CaKeys:
    from emvwire.oda.capk import CaKeyStore

    if not isinstance(items, list):
        raise ConfigError("ca_keys", "expected a list of key files or folders")
    paths = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ConfigError(f"ca_keys[{i}]", "expected a path to a key file or folder")
        path = item if base is None else os.path.join(base, item)  # item if it is absolute
        if not os.path.exists(path):
            raise ConfigError(f"ca_keys[{i}]", f"{path} does not exist")
        paths.append(path)
    try:
        return CaKeyStore.load(*paths) if paths else CaKeyStore([])
    except EmvWireError as exc:
        raise ConfigError("ca_keys", str(exc)) from None


def load_config(path: str | os.PathLike[str], *, ca_keys: bool = True) -> TerminalConfig:
    """Read and validate a configuration file; every problem is a :class:`ConfigError`
    (``ca_keys``: as :func:`parse_config`'s). Paths are :mod:`os.path`'s: no
    :mod:`pathlib` (with :mod:`urllib.parse` and :mod:`ipaddress`) in a command's start."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise ConfigError("", f"cannot read configuration {file}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"{file} is not JSON: line {exc.lineno}: {exc.msg}") from None
    return parse_config(obj, base=os.path.dirname(file), ca_keys=ca_keys)


def default_config(*, ca_keys: bool = True) -> TerminalConfig:
    """The built-in configuration: Visa, Mastercard, American Express and UnionPay in
    EUR in France, the EMV test CA keys and the tapstack test CA
    (``terminal/kernel/default_config.json``).

    Read beside this module: its ``ca_keys`` are folders relative to it, so the package
    is a folder on disk anyway (and ``importlib.resources``, with the zipfile and
    tempfile modules it loads, would cost every command's start some 10 ms)."""
    here = os.path.dirname(__file__)
    return load_config(os.path.join(here, "default_config.json"), ca_keys=ca_keys)
