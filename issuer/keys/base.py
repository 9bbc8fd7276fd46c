"""The key store interface: issuer master keys, RSA keys and data protection keys.

An issuer keeps three kinds of secret (EMV Book 2 §A1.4, Book 2 §5-6, PCI DSS v4.0
Req. 3.5):

- **Issuer master keys** (IMK), double-length TDES (SM4 for the CVNs of UnionPay's SM
  suite, :func:`is_sm4`: the file store only, PKCS#11 tokens have no SM4), one per
  purpose (application cryptogram ``ac``, secure messaging integrity ``smi`` and
  confidentiality ``smc``), scheme, BIN range and cryptogram version (CVN). They never
  leave the store: ICC master keys are derived *inside* it (Book 2 §A1.4.1 option A,
  §A1.4.2 option B) and only those leave, for personalisation and ARQC verification.
- **RSA keys** of the certification authority (test CA) and of the issuer, which sign
  issuer and ICC public key certificates (Book 2 §5.1, §6.1) without leaving an HSM;
  for the ranges of UnionPay's SM suite, **SM2 keys** in their place
  (:mod:`emvwire.oda.sm`; the file store only, as for SM4).
- **Data protection keys**: an AES-256 key sealing PANs at rest (AES-GCM, NIST SP
  800-38D) and an HMAC-SHA256 key giving each PAN a keyed hash for look-up (a plain
  hash of a PAN inside a known BIN is brute-forced in seconds).

Key identifiers are paths: ``imk/visa/476173/18/ac`` (version 1 of a master key;
a later version after rotation is ``imk/visa/476173/18/ac/v2``), ``rsa/ca/A000000003/F1``,
``rsa/issuer/visa``, ``sm2/ca/A000000333/E8``, ``sm2/issuer/unionpay``, ``data/pan-seal``,
``data/pan-hash``. Listing shows key check
values (ANSI X9.24-1 KCV: TDES of a zero block, three bytes; AES the same over a
16-byte zero block, as PKCS#11 ``CKA_CHECK_VALUE``), never key values.
"""

from __future__ import annotations

import builtins
import enum
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from emvwire.crypto.cryptogram import MasterKeyDerivation, cvn_spec
from emvwire.crypto.des import kcv as tdes_kcv
from emvwire.crypto.kdf import option_a_y, option_b_y
from emvwire.crypto.sm import kcv_sm4, sm3
from emvwire.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey
from emvwire.errors import CryptoError
from emvwire.oda import RsaPublicKey, SigningKey
from emvwire.profile import SUPPORTED_CVNS, IccKeys
from issuer.errors import KcvMismatchError, KeyStoreError, NotFoundError, ValidationError

__all__ = [
    "KCV_LENGTH",
    "MAX_KEY_VERSION",
    "PAN_HASH_KEY",
    "PAN_SEAL_KEY",
    "PURPOSES",
    "SCHEMES",
    "KeyInfo",
    "KeyKind",
    "KeyStore",
    "MasterKeyRef",
    "ca_key_id",
    "check_master_key",
    "check_sm4_master_key",
    "icc_derivation_data",
    "is_sm4",
    "issuer_key_id",
    "sm2_ca_key_id",
    "sm2_issuer_key_id",
    "sm2_kcv",
]

#: Payment schemes the issuer serves (the kernels of emvwire.profile).
SCHEMES: Final = ("visa", "mastercard", "amex", "unionpay")
#: Master key purposes (EMV Book 2 §A1.4: AC, SM integrity, SM confidentiality).
PURPOSES: Final = ("ac", "smi", "smc")
#: The highest master key version (rotations of one range and CVN).
MAX_KEY_VERSION: Final = 999
#: Bytes of key check value shown and stored (three is usual, ANSI X9.24-1).
KCV_LENGTH: Final = 3
#: The AES-256 key sealing PANs and tokens at rest.
PAN_SEAL_KEY: Final = "data/pan-seal"
#: The HMAC-SHA256 key of the PAN look-up hash.
PAN_HASH_KEY: Final = "data/pan-hash"

_BIN = re.compile(r"[0-9]{6,8}")
_KEY_ID = re.compile(r"[A-Za-z0-9/_.-]{1,120}")


class KeyKind(enum.StrEnum):
    """What a key is for."""

    MASTER = "master"
    RSA = "rsa"
    SM2 = "sm2"
    DATA = "data"
    MAC = "mac"


def ca_key_id(rid: bytes, index: int) -> str:
    """The key id of a CA private key: ``rsa/ca/A000000003/F1``."""
    return f"rsa/ca/{rid.hex().upper()}/{index:02X}"


def issuer_key_id(scheme: str) -> str:
    """The key id of a scheme's issuer private key: ``rsa/issuer/visa``."""
    return f"rsa/issuer/{scheme}"


def sm2_ca_key_id(rid: bytes, index: int) -> str:
    """The key id of an SM2 CA private key: ``sm2/ca/A000000333/E8``."""
    return f"sm2/ca/{rid.hex().upper()}/{index:02X}"


def sm2_issuer_key_id(scheme: str) -> str:
    """The key id of a scheme's issuer SM2 private key: ``sm2/issuer/unionpay``."""
    return f"sm2/issuer/{scheme}"


def sm2_kcv(public: Sm2PublicKey) -> bytes:
    """SM2 key fingerprint: SM3 of ``x || y``, leftmost 3 bytes (as the RSA one)."""
    return sm3(public.to_bytes(prefix=False))[:KCV_LENGTH]


def check_key_id(key_id: str) -> str:
    """Refuse key ids outside ``[A-Za-z0-9/_.-]`` (they become labels and file keys)."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValidationError("a key id is 1-120 characters of A-Z a-z 0-9 / _ . -")
    return key_id


@dataclass(frozen=True, slots=True)
class MasterKeyRef:
    """Which issuer master key: scheme, BIN range (6-8 digit prefix), CVN, purpose and
    version (1, then one more at each rotation: ``issuer keys rotate``)."""

    scheme: str
    bin: str
    cvn: int
    purpose: str = "ac"
    version: int = 1

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValidationError(f"scheme must be one of {', '.join(SCHEMES)}")
        if not isinstance(self.bin, str) or not _BIN.fullmatch(self.bin):
            raise ValidationError("a BIN range is a prefix of 6 to 8 digits")
        if self.cvn not in SUPPORTED_CVNS[self.scheme]:
            known = ", ".join(str(c) for c in sorted(SUPPORTED_CVNS[self.scheme]))
            raise ValidationError(f"CVN {self.cvn} is not one of {self.scheme}'s: {known}")
        if self.purpose not in PURPOSES:
            raise ValidationError(f"key purpose must be one of {', '.join(PURPOSES)}")
        if not isinstance(self.version, int) or not 1 <= self.version <= MAX_KEY_VERSION:
            raise ValidationError(f"a key version is 1 to {MAX_KEY_VERSION}")

    @property
    def key_id(self) -> str:
        """``imk/<scheme>/<bin>/<cvn>/<purpose>`` (version 1, the id keys had before
        versions), ``.../<purpose>/v<version>`` for later versions."""
        base = f"imk/{self.scheme}/{self.bin}/{self.cvn}/{self.purpose}"
        return base if self.version == 1 else f"{base}/v{self.version}"

    def with_purpose(self, purpose: str) -> MasterKeyRef:
        """The same range, CVN and version, another purpose."""
        return MasterKeyRef(self.scheme, self.bin, self.cvn, purpose, self.version)

    def with_version(self, version: int) -> MasterKeyRef:
        """The same range, CVN and purpose, another version."""
        return MasterKeyRef(self.scheme, self.bin, self.cvn, self.purpose, version)

    @classmethod
    def parse(cls, key_id: str) -> MasterKeyRef:
        """The reference named by ``imk/<scheme>/<bin>/<cvn>/<purpose>[/v<version>]``."""
        parts = key_id.split("/")
        version = 1
        if len(parts) == 6 and parts[5][:1] == "v" and parts[5][1:].isdigit():
            version = int(parts[5][1:])
            parts = parts[:5]
        if len(parts) != 5 or parts[0] != "imk" or not parts[3].isdigit():
            raise ValidationError(
                "a master key id is imk/<scheme>/<bin>/<cvn>/<purpose>[/v<version>]"
            )
        return cls(parts[1], parts[2], int(parts[3]), parts[4], version)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown of a key: id, kind, algorithm, KCV, creation time."""

    key_id: str
    kind: KeyKind
    algorithm: str
    kcv: bytes
    created: str | None = None

    @property
    def master(self) -> MasterKeyRef | None:
        """The master key reference, for a master key."""
        return MasterKeyRef.parse(self.key_id) if self.kind is KeyKind.MASTER else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the KCV in hex; never key material)."""
        out: dict[str, Any] = {
            "id": self.key_id,
            "kind": self.kind.value,
            "algorithm": self.algorithm,
            "kcv": self.kcv.hex().upper(),
            "created": self.created,
        }
        ref = self.master
        if ref is not None:
            out.update(
                scheme=ref.scheme,
                bin=ref.bin,
                cvn=ref.cvn,
                purpose=ref.purpose,
                version=ref.version,
            )
        return out


def check_master_key(key: bytes, given_kcv: bytes) -> bytes:
    """Validate an imported master key against its KCV; the key as 16 bytes.

    A master key is double-length TDES (16 bytes; a 24-byte K1K2K1 form is accepted and
    shortened). A single-length key in disguise (K1 = K2) is refused. The KCV given may
    be 2 to 8 bytes; it is compared in constant time with the key's own.
    """
    if not isinstance(key, bytes | bytearray):
        raise ValidationError("a key is bytes")
    key = bytes(key)
    if len(key) == 24 and key[16:] == key[:8]:
        key = key[:16]
    if len(key) != 16:
        raise ValidationError("an issuer master key is a double-length TDES key (16 bytes)")
    if key[:8] == key[8:]:
        raise ValidationError("the two halves of the key are equal (single DES): refused")
    if not isinstance(given_kcv, bytes | bytearray) or not 2 <= len(given_kcv) <= 8:
        raise ValidationError("a key check value is 2 to 8 bytes")
    actual = tdes_kcv(key, len(given_kcv))
    if not hmac.compare_digest(actual, bytes(given_kcv)):
        raise KcvMismatchError("the key does not match its key check value: not imported")
    return key


def is_sm4(ref: MasterKeyRef) -> bool:
    """Whether the master keys of ``ref`` are SM4 keys: its CVN derives ICC master keys
    with SM4 (:data:`~emvwire.crypto.cryptogram.MasterKeyDerivation` ``SM4``, UnionPay's
    SM suite, :mod:`emvwire.crypto.sm`); all other master keys are TDES."""
    return cvn_spec(ref.cvn).master_key is MasterKeyDerivation.SM4


def check_sm4_master_key(key: bytes, given_kcv: bytes) -> bytes:
    """Validate an imported SM4 master key (16 bytes) against its KCV (2 to 8 bytes,
    SM4 of a zero block, compared in constant time); the key."""
    if not isinstance(key, bytes | bytearray) or len(key) != 16:
        raise ValidationError("an SM4 master key is 16 bytes")
    if not isinstance(given_kcv, bytes | bytearray) or not 2 <= len(given_kcv) <= 8:
        raise ValidationError("a key check value is 2 to 8 bytes")
    if not hmac.compare_digest(kcv_sm4(bytes(key), len(given_kcv)), bytes(given_kcv)):
        raise KcvMismatchError("the key does not match its key check value: not imported")
    return bytes(key)


def icc_derivation_data(cvn: int, pan: str, psn: str) -> bytes:
    """``Y || (Y xor FF..FF)``: the 16 bytes an IMK enciphers to give an ICC master key.

    ``Y`` is option A (Book 2 §A1.4.1) or option B (§A1.4.2) as the CVN's row of
    :data:`emvwire.crypto.cryptogram.CVN_TABLE` says; option B equals option A for PANs
    of 16 digits or fewer. AES master keys are not supported by these stores.
    """
    try:
        method = cvn_spec(cvn).master_key
        if method is MasterKeyDerivation.OPTION_A:
            y = option_a_y(pan, psn)
        elif method is MasterKeyDerivation.OPTION_B:
            y = option_b_y(pan, psn)
        else:
            raise KeyStoreError("AES and SM4 master keys do not derive by TDES data (SM4: is_sm4)")
    except CryptoError as exc:
        raise ValidationError(f"cannot derive ICC keys: {exc}") from None
    return y + bytes(b ^ 0xFF for b in y)


class KeyStore(ABC):
    """Where the issuer's keys live; see the module docstring.

    Implementations: :class:`issuer.keys.file.FileKeyStore` (encrypted file) and
    :class:`issuer.keys.pkcs11.Pkcs11KeyStore` (HSM). Both are safe to share between
    threads.
    """

    #: ``"file"`` or ``"pkcs11"``.
    backend: str = ""

    # -- inventory -----------------------------------------------------------------

    @abstractmethod
    def list(self) -> list[KeyInfo]:
        """Every key, sorted by id: KCVs, never keys."""

    def info(self, key_id: str) -> KeyInfo:
        """One key's :class:`KeyInfo`; :class:`NotFoundError` if absent."""
        for item in self.list():
            if item.key_id == key_id:
                return item
        raise NotFoundError(f"no key {key_id!r} in the key store")

    def kcv(self, key_id: str) -> bytes:
        """The key check value of a key (three bytes)."""
        return self.info(key_id).kcv

    def has(self, key_id: str) -> bool:
        """Whether the store holds ``key_id``."""
        try:
            self.info(key_id)
        except NotFoundError:
            return False
        return True

    # -- issuer master keys --------------------------------------------------------

    @abstractmethod
    def generate(self, ref: MasterKeyRef) -> KeyInfo:
        """Create a random master key; :class:`ConflictError` if one exists."""

    @abstractmethod
    def import_(self, ref: MasterKeyRef, key: bytes, kcv: bytes) -> KeyInfo:
        """Store a master key given in clear with its KCV (:func:`check_master_key`)."""

    @abstractmethod
    def derive_icc_mk(self, ref: MasterKeyRef, pan: str, psn: str) -> bytes:
        """The 16-byte ICC master key of one purpose, derived inside the store."""

    def generate_set(
        self, scheme: str, bin: str, cvn: int, version: int = 1
    ) -> builtins.list[KeyInfo]:
        """Generate the AC, SMI and SMC master keys of a range, CVN and version."""
        return [self.generate(MasterKeyRef(scheme, bin, cvn, p, version)) for p in PURPOSES]

    def derive_icc_keys(
        self, scheme: str, bin: str, cvn: int, pan: str, psn: str, version: int = 1
    ) -> IccKeys:
        """The card's ICC master keys (AC, SMI, SMC) for ``pan`` and ``psn`` under the
        master keys of ``version``."""
        ref = MasterKeyRef(scheme, bin, cvn, "ac", version)
        ac, smi, smc = (self.derive_icc_mk(ref.with_purpose(p), pan, psn) for p in PURPOSES)
        return IccKeys(ac, smi, smc)

    def master_versions(self, scheme: str, bin: str, cvn: int) -> builtins.list[int]:
        """The versions of the range's master keys whose AC, SMI and SMC keys are all
        in the store, oldest first."""
        found: dict[int, set[str]] = {}
        for item in self.list():
            ref = item.master
            if ref is not None and (ref.scheme, ref.bin, ref.cvn) == (scheme, bin, cvn):
                found.setdefault(ref.version, set()).add(ref.purpose)
        return sorted(v for v, purposes in found.items() if purposes == set(PURPOSES))

    # -- RSA keys ------------------------------------------------------------------

    @abstractmethod
    def generate_rsa(self, key_id: str, bits: int, exponent: int) -> RsaPublicKey:
        """Create an RSA key pair (``bits`` a multiple of 8 in 1024-1984, e 3 or 65537)."""

    @abstractmethod
    def import_rsa(self, key_id: str, key: SigningKey) -> RsaPublicKey:
        """Store an RSA private key (the published test CA, an existing issuer key)."""

    @abstractmethod
    def rsa_public(self, key_id: str) -> RsaPublicKey:
        """The public half of an RSA key."""

    @abstractmethod
    def signing_key(self, key_id: str) -> SigningKey:
        """A :class:`SigningKey` whose ``sign`` runs inside the store."""

    # -- SM2 keys (UnionPay's SM suite) ---------------------------------------------

    def import_sm2(self, key_id: str, key: Sm2PrivateKey) -> Sm2PublicKey:
        """Store an SM2 private key (the SM2 test CA, an issuer key). Only the file
        store keeps SM2 keys: PKCS#11 has no standard SM2 mechanism (as for SM4)."""
        raise KeyStoreError(
            f"{key_id}: SM2 keys are not available through the {self.backend} key store; "
            "use the file key store for a range of the SM suite"
        )

    def generate_sm2(self, key_id: str) -> Sm2PublicKey:
        """Create an SM2 key pair on sm2p256v1 (:meth:`import_sm2`)."""
        return self.import_sm2(key_id, Sm2PrivateKey.generate())

    def sm2_key(self, key_id: str) -> Sm2PrivateKey:
        """The SM2 private key ``key_id`` (it signs certificates in this process)."""
        raise KeyStoreError(
            f"{key_id}: SM2 keys are not available through the {self.backend} key store"
        )

    # -- data protection -----------------------------------------------------------

    @abstractmethod
    def ensure_data_keys(self) -> None:
        """Create the PAN sealing and hashing keys if they do not exist yet."""

    @abstractmethod
    def pan_hash(self, pan: str) -> bytes:
        """HMAC-SHA256 of the PAN (or token) digits under :data:`PAN_HASH_KEY`."""

    @abstractmethod
    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM under :data:`PAN_SEAL_KEY`: ``01 || nonce(12) || ct || tag``."""

    @abstractmethod
    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        """Open a :meth:`seal` blob; :class:`KeyStoreError` if it was altered."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (sessions, files)."""

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rsa_algorithm(key: RsaPublicKey) -> str:
    """``RSA-1024/e=3``: the algorithm string of an RSA key."""
    return f"RSA-{len(key.modulus) * 8}/e={key.exponent}"


def sorted_infos(items: Iterable[KeyInfo]) -> list[KeyInfo]:
    """Key infos sorted by id."""
    return sorted(items, key=lambda i: i.key_id)
