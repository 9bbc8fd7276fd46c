"""Certification Authority public keys and the terminal's key store (EMV Book 2 §11).

A terminal holds, per RID (the first five bytes of the AID), the CA public keys named
by their index (tag ``8F`` on the card, ``9F22`` in the terminal). Each key carries a
check sum, SHA-1 over RID || index || modulus || exponent (Book 2 §11.2, the data a
terminal stores per CA key; Annex B3), which the store verifies when a file gives one.

Two file formats are read, both as text (``bytes`` or ``str``), so that the parsing
stays free of I/O; :meth:`CaKeyStore.load` is the one convenience that reads files.

*tapstack key file* (``fixtures/ca/*.json``)::

    {"format": "tapstack-capk/1",
     "keys": [{"rid": "A000000003", "index": "F1", "modulus": "<hex>",
               "exponent": "03", "expiry": "2035-12-31" | null,
               "hash_algorithm": "01", "pk_algorithm": "01",
               "checksum": "<40 hex digits, optional>", "note": "<optional text>"}]}

A file may instead hold one key object on its own. ``expiry`` is the last day the key
may be used (ISO date). Unknown fields are refused, so that a typo cannot silently
drop a check sum.

*terminal configuration* (``cfg_default_terminal.json`` of the public MohamedHassanNasr/emv
kernel): a ``publicKey`` list of objects with ``rId``, ``index``, ``modulus``,
``exponent`` (hex), ``expiryDate`` (MMYY, optional), ``checksum`` (optional),
``hashAlgorithmIndicator`` and ``publicKeyAlgorithmIndicator`` (integers).

An SM2 CA key (:class:`Sm2CaKey`, UnionPay's SM suite: :mod:`emvwire.oda.sm`) is a key
file entry with ``"pk_algorithm": "04"``, ``"hash_algorithm": "07"`` (SM3) and
``"public_key": "04 || x || y"`` (hex) in place of modulus and exponent; its check sum
is SM3(RID || index || x || y), the RSA one's construction with the key's own hash
(tapstack's choice: the public text gives none for SM2 CA keys).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from emvwire.crypto.sm import sm3
from emvwire.crypto.sm2 import Sm2PublicKey
from emvwire.errors import CryptoError, DecodeError, OdaError
from emvwire.oda._common import parse_mmyy
from emvwire.oda.rsa import (
    HASH_ALGORITHMS,
    HASH_SHA1,
    PK_ALGORITHMS,
    PK_RSA,
    RsaPublicKey,
    exponent_bytes,
)

__all__ = [
    "HASH_SM3",
    "KEY_FILE_FORMAT",
    "PK_SM2",
    "AnyCaKey",
    "CaKey",
    "CaKeyStore",
    "Sm2CaKey",
    "parse_key_file",
    "parse_terminal_config",
]

#: Value of the ``format`` member of a tapstack key file.
KEY_FILE_FORMAT = "tapstack-capk/1"
_KEY_FIELDS = frozenset(
    {"rid", "index", "modulus", "exponent", "expiry", "hash_algorithm", "pk_algorithm"}
    | {"checksum", "note"}
)
_SM2_KEY_FIELDS = (_KEY_FIELDS - {"modulus", "exponent"}) | {"public_key"}
#: Hash Algorithm Indicator of SM3 and Public Key Algorithm Indicator of SM2 (UnionPay's
#: SM suite as tapstack reads it, :mod:`emvwire.oda.sm`).
HASH_SM3 = 0x07
PK_SM2 = 0x04


class _CaKeyCommon:
    """What an RSA and an SM2 CA public key share: their RID and index, expiry, check
    sum and key file entry (Book 2 §11.2). The subclasses are the dataclasses."""

    __slots__ = ()
    rid: bytes
    index: int
    expiry: date | None
    hash_algorithm: int
    pk_algorithm: int

    def _check_identity(self) -> None:
        if len(self.rid) != 5:
            raise CryptoError(f"RID must be 5 bytes, got {len(self.rid)}")
        if not 0 <= self.index <= 0xFF:
            raise CryptoError(f"CA public key index {self.index} is not one byte")

    @property
    def label(self) -> str:
        """``RID/index`` in hex, e.g. ``A000000004/FA``."""
        return f"{self.rid.hex().upper()}/{self.index:02X}"

    @property
    def checksum(self) -> bytes:
        """The key's check sum (each kind says over what)."""
        raise NotImplementedError

    def check_checksum(self, checksum: bytes) -> None:
        """Raise :class:`OdaError` unless ``checksum`` is this key's check sum."""
        if not hmac.compare_digest(checksum, self.checksum):
            raise OdaError(f"CA public key {self.label}: check sum does not match")

    def expired(self, today: date) -> bool:
        """Whether the key's expiry date has passed on ``today``."""
        return self.expiry is not None and self.expiry < today

    def _key_file_entry(self, key: dict[str, str]) -> dict[str, Any]:
        """The key as a tapstack key file entry: ``key`` its own members, then the
        shared ones with its check sum."""
        return {
            "rid": self.rid.hex().upper(),
            "index": f"{self.index:02X}",
            **key,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "hash_algorithm": f"{self.hash_algorithm:02X}",
            "pk_algorithm": f"{self.pk_algorithm:02X}",
            "checksum": self.checksum.hex().upper(),
        }


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class CaKey(RsaPublicKey, _CaKeyCommon):
    """One CA public key: RID, index, modulus, exponent and its attributes (Book 2 §11.2)."""

    rid: bytes
    index: int
    expiry: date | None = None
    hash_algorithm: int = HASH_SHA1
    pk_algorithm: int = PK_RSA

    def __post_init__(self) -> None:
        RsaPublicKey.__post_init__(self)
        self._check_identity()
        if self.hash_algorithm not in HASH_ALGORITHMS:
            raise CryptoError(f"hash algorithm {self.hash_algorithm:02X} is not supported")
        if self.pk_algorithm not in PK_ALGORITHMS:
            raise CryptoError(f"public key algorithm {self.pk_algorithm:02X} is not supported")

    @property
    def checksum(self) -> bytes:
        """SHA-1(RID || index || modulus || exponent) (Book 2 §11.2)."""
        data = self.rid + bytes((self.index,)) + self.modulus + exponent_bytes(self.exponent)
        return HASH_ALGORITHMS[self.hash_algorithm](data)

    def to_json_object(self) -> dict[str, Any]:
        """The key as a tapstack key file entry (with its check sum)."""
        return self._key_file_entry(
            {
                "modulus": self.modulus.hex().upper(),
                "exponent": exponent_bytes(self.exponent).hex().upper(),
            }
        )

    def __repr__(self) -> str:
        return f"CaKey({self.label}, {len(self.modulus) * 8}-bit, e={self.exponent})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sm2CaKey(_CaKeyCommon):
    """One SM2 CA public key: RID, index, the point, expiry (module docstring)."""

    rid: bytes
    index: int
    public: Sm2PublicKey
    expiry: date | None = None
    hash_algorithm: int = HASH_SM3
    pk_algorithm: int = PK_SM2

    def __post_init__(self) -> None:
        self._check_identity()
        if (self.hash_algorithm, self.pk_algorithm) != (HASH_SM3, PK_SM2):
            raise CryptoError("an SM2 CA key has hash algorithm 07 (SM3) and algorithm 04 (SM2)")

    @property
    def checksum(self) -> bytes:
        """SM3(RID || index || x || y) (module docstring)."""
        return sm3(self.rid + bytes((self.index,)) + self.public.to_bytes(prefix=False))

    def to_json_object(self) -> dict[str, Any]:
        """The key as a tapstack key file entry (with its check sum)."""
        return self._key_file_entry({"public_key": self.public.to_bytes().hex().upper()})


#: A CA public key of either kind.
AnyCaKey = CaKey | Sm2CaKey


def _hex(entry: Mapping[str, Any], name: str, where: str, length: int | None = None) -> bytes:
    value = entry.get(name)
    if not isinstance(value, str):
        raise DecodeError(f"{where}: {name} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"{where}: {name} is not hex") from None
    if length is not None and len(data) != length:
        raise DecodeError(f"{where}: {name} must be {length} bytes, got {len(data)}")
    return data


def _build(
    where: str,
    rid: bytes,
    index: bytes,
    modulus: bytes,
    exponent: bytes,
    expiry: date | None,
    hash_algorithm: int,
    pk_algorithm: int,
    checksum: bytes | None,
) -> CaKey:
    if len(exponent) not in (1, 3):
        raise DecodeError(f"{where}: exponent must be 1 or 3 bytes")
    try:
        key = CaKey(
            rid=rid,
            index=index[0],
            modulus=modulus,
            exponent=int.from_bytes(exponent, "big"),
            expiry=expiry,
            hash_algorithm=hash_algorithm,
            pk_algorithm=pk_algorithm,
        )
    except CryptoError as exc:
        raise DecodeError(f"{where}: {exc}") from None
    if checksum is not None:
        key.check_checksum(checksum)
    return key


def _parse_key_entry(entry: Any, position: int) -> AnyCaKey:
    where = f"key {position}"
    if not isinstance(entry, Mapping):
        raise DecodeError(f"{where}: not an object")
    sm2 = entry.get("pk_algorithm") == f"{PK_SM2:02X}"
    unknown = set(entry) - (_SM2_KEY_FIELDS if sm2 else _KEY_FIELDS)
    if unknown:
        raise DecodeError(f"{where}: unknown fields {sorted(unknown)}")
    rid = _hex(entry, "rid", where, 5)
    index = _hex(entry, "index", where, 1)
    where = f"key {rid.hex().upper()}/{index.hex().upper()}"
    expiry: date | None = None
    raw_expiry = entry.get("expiry")
    if raw_expiry is not None:
        if not isinstance(raw_expiry, str):
            raise DecodeError(f"{where}: expiry must be an ISO date string or null")
        try:
            expiry = date.fromisoformat(raw_expiry)
        except ValueError:
            raise DecodeError(f"{where}: expiry is not an ISO date") from None
    hash_algorithm = _hex(entry, "hash_algorithm", where, 1)[0] if "hash_algorithm" in entry else 1
    pk_algorithm = _hex(entry, "pk_algorithm", where, 1)[0] if "pk_algorithm" in entry else 1
    checksum = _hex(entry, "checksum", where) if entry.get("checksum") is not None else None
    if sm2:
        return _build_sm2(where, rid, index, entry, expiry, hash_algorithm, checksum)
    return _build(
        where,
        rid,
        index,
        _hex(entry, "modulus", where),
        _hex(entry, "exponent", where),
        expiry,
        hash_algorithm,
        pk_algorithm,
        checksum,
    )


def _build_sm2(
    where: str,
    rid: bytes,
    index: bytes,
    entry: Mapping[str, Any],
    expiry: date | None,
    hash_algorithm: int,
    checksum: bytes | None,
) -> Sm2CaKey:
    try:
        key = Sm2CaKey(
            rid=rid,
            index=index[0],
            public=Sm2PublicKey.from_bytes(_hex(entry, "public_key", where)),
            expiry=expiry,
            hash_algorithm=hash_algorithm,
        )
    except CryptoError as exc:
        raise DecodeError(f"{where}: {exc}") from None
    if checksum is not None:
        key.check_checksum(checksum)
    return key


def _load_json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None


def parse_key_file(text: str | bytes) -> list[AnyCaKey]:
    """The keys of a tapstack key file (format in the module docstring).

    Malformed files raise :class:`DecodeError`; a check sum that does not match
    raises :class:`OdaError`.
    """
    doc = _load_json(text)
    if isinstance(doc, Mapping) and "keys" in doc:
        if doc.get("format") != KEY_FILE_FORMAT:
            raise DecodeError(f"key file format must be {KEY_FILE_FORMAT!r}")
        entries = doc["keys"]
        if not isinstance(entries, list):
            raise DecodeError("keys must be a list")
        return [_parse_key_entry(entry, i) for i, entry in enumerate(entries)]
    return [_parse_key_entry(doc, 0)]


def _int_field(entry: Mapping[str, Any], name: str, where: str) -> int:
    value = entry.get(name, 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise DecodeError(f"{where}: {name} must be an integer 0-255")
    return value


def _parse_terminal_entry(entry: Any, position: int) -> CaKey:
    where = f"publicKey[{position}]"
    if not isinstance(entry, Mapping):
        raise DecodeError(f"{where}: not an object")
    rid = _hex(entry, "rId", where, 5)
    index = _hex(entry, "index", where, 1)
    where = f"CA public key {rid.hex().upper()}/{index.hex().upper()}"
    expiry: date | None = None
    if entry.get("expiryDate"):
        expiry = parse_mmyy(_hex(entry, "expiryDate", where, 2))
        if expiry is None:
            raise DecodeError(f"{where}: expiryDate is not MMYY")
    checksum = _hex(entry, "checksum", where, 20) if entry.get("checksum") else None
    return _build(
        where,
        rid,
        index,
        _hex(entry, "modulus", where),
        _hex(entry, "exponent", where),
        expiry,
        _int_field(entry, "hashAlgorithmIndicator", where),
        _int_field(entry, "publicKeyAlgorithmIndicator", where),
        checksum,
    )


def parse_terminal_config(
    config: str | bytes | Mapping[str, Any], *, skip_invalid: bool = False
) -> tuple[list[CaKey], list[tuple[str, str]]]:
    """The CA keys of a terminal configuration's ``publicKey`` list.

    Returns ``(keys, rejected)``. With ``skip_invalid`` an entry that is malformed or
    whose check sum does not match is left out and listed in ``rejected`` as
    ``(where, reason)``; without it the first such entry raises.
    """
    doc = config if isinstance(config, Mapping) else _load_json(config)
    if not isinstance(doc, Mapping):
        raise DecodeError("terminal configuration is not a JSON object")
    entries = doc.get("publicKey", [])
    if not isinstance(entries, list):
        raise DecodeError("publicKey must be a list")
    keys: list[CaKey] = []
    rejected: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        try:
            keys.append(_parse_terminal_entry(entry, i))
        except (DecodeError, OdaError) as exc:
            if not skip_invalid:
                raise
            where = f"publicKey[{i}]"
            if isinstance(entry, Mapping):
                where = f"{entry.get('rId', '?')}/{entry.get('index', '?')}"
            rejected.append((where, str(exc)))
    return keys, rejected


class CaKeyStore:
    """The terminal's CA public keys, looked up by (RID, index) (Book 2 §11.2)."""

    def __init__(self, keys: Iterable[AnyCaKey] = ()) -> None:
        self._keys: dict[tuple[bytes, int], AnyCaKey] = {}
        #: Entries left out by a ``skip_invalid`` load, as ``(where, reason)``.
        self.rejected: list[tuple[str, str]] = []
        for key in keys:
            self.add(key)

    def add(self, key: AnyCaKey, *, replace: bool = False) -> None:
        """Add ``key``; a different key under the same (RID, index) needs ``replace``."""
        slot = (key.rid, key.index)
        old = self._keys.get(slot)
        if old is not None and old != key and not replace:
            raise OdaError(f"CA public key {key.label} is already stored with another key")
        self._keys[slot] = key

    def find(self, rid: bytes, index: int) -> AnyCaKey | None:
        """The key for (RID, index), RSA or SM2, or ``None``."""
        return self._keys.get((bytes(rid), index))

    def _get(self, rid: bytes, index: int, today: date | None) -> AnyCaKey:
        key = self.find(rid, index)
        label = f"{bytes(rid).hex().upper()}/{index:02X}"
        if key is None:
            raise OdaError(f"no CA public key {label}")
        if today is not None and key.expired(today):
            raise OdaError(f"CA public key {label} has expired")
        return key

    def get(self, rid: bytes, index: int, *, today: date | None = None) -> CaKey:
        """The RSA key for (RID, index); :class:`OdaError` if absent, an SM2 key or
        expired on ``today``.

        Book 2 §5.3 step 1 / §6.3 step 1: ODA fails when the terminal lacks the key.
        """
        key = self._get(rid, index, today)
        if not isinstance(key, CaKey):
            raise OdaError(f"CA public key {key.label} is an SM2 key, not RSA")
        return key

    def get_sm2(self, rid: bytes, index: int, *, today: date | None = None) -> Sm2CaKey:
        """The SM2 key for (RID, index), as :meth:`get` for RSA keys."""
        key = self._get(rid, index, today)
        if not isinstance(key, Sm2CaKey):
            raise OdaError(f"CA public key {key.label} is an RSA key, not SM2")
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[AnyCaKey]:
        return iter(sorted(self._keys.values(), key=lambda k: (k.rid, k.index)))

    def __contains__(self, slot: object) -> bool:
        return slot in self._keys

    def __repr__(self) -> str:
        return f"CaKeyStore({len(self._keys)} keys)"

    def to_json(self) -> str:
        """The keys as a tapstack key file."""
        doc = {"format": KEY_FILE_FORMAT, "keys": [k.to_json_object() for k in self]}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> CaKeyStore:
        """A store from one tapstack key file."""
        return cls(parse_key_file(text))

    @classmethod
    def from_terminal_config(
        cls, config: str | bytes | Mapping[str, Any], *, skip_invalid: bool = False
    ) -> CaKeyStore:
        """A store from a terminal configuration (see :func:`parse_terminal_config`)."""
        keys, rejected = parse_terminal_config(config, skip_invalid=skip_invalid)
        store = cls(keys)
        store.rejected = rejected
        return store

    @classmethod
    def load(cls, *paths: str | Path) -> CaKeyStore:
        """Read tapstack key files: each path is a ``.json`` file or a folder of them."""
        store = cls()
        for path in map(Path, paths):
            files = sorted(path.glob("*.json")) if path.is_dir() else [path]
            for file in files:
                try:
                    text = file.read_bytes()
                except OSError as exc:
                    raise DecodeError(f"cannot read {file.name}: {exc.strerror}") from None
                for key in parse_key_file(text):
                    store.add(key)
        return store
