"""A key store in one file, encrypted at rest.

File format (JSON, ``tapstack-keystore/1``, mode 0600)::

    {"format": "tapstack-keystore/1",
     "kdf": {"name": "scrypt", "salt": "<hex>", "n": 32768, "r": 8, "p": 1},
     "check": "<hex>",
     "keys": [{"id": "imk/visa/476173/18/ac", "kind": "master", "algorithm": "TDES-128",
               "kcv": "08D7B4", "created": "2026-...Z", "sealed": "<hex>"}, ...]}

The file key is derived from a passphrase with scrypt (RFC 7914; the salt and cost
are in the file, the passphrase is not: it comes from ``TAPSTACK_KEYSTORE_KEY`` or a
prompt, never from a file beside the store). Each key is sealed with AES-256-GCM
(NIST SP 800-38D) under the file key, its id, kind, algorithm and KCV bound as
associated data, so moving a sealed value to another entry fails to open. ``check``
seals a constant: a wrong passphrase is told apart from a damaged file.

Writes take an exclusive ``fcntl`` lock on ``<file>.lock``, re-read the file, add the
key and replace the file atomically (``os.replace`` of a 0600 temporary file), so
that two processes adding keys never lose one.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from emvwire.crypto.des import adjust_odd_parity, tdes_ecb_encrypt
from emvwire.crypto.des import kcv as tdes_kcv
from emvwire.crypto.sm import derive_icc_mk_sm4, kcv_sm4
from emvwire.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey
from emvwire.errors import EmvWireError
from emvwire.oda import RsaPublicKey, SigningKey
from issuer.errors import ConflictError, KeyStoreError, NotFoundError
from issuer.keys.base import (
    KCV_LENGTH,
    PAN_HASH_KEY,
    PAN_SEAL_KEY,
    KeyInfo,
    KeyKind,
    KeyStore,
    MasterKeyRef,
    check_key_id,
    check_master_key,
    check_sm4_master_key,
    icc_derivation_data,
    is_sm4,
    rsa_algorithm,
    sm2_kcv,
    sorted_infos,
)

__all__ = ["FORMAT", "FileKeyStore", "aes_kcv", "mac_kcv", "rsa_kcv", "seal_with", "unseal_with"]

FORMAT: Final = "tapstack-keystore/1"
#: scrypt cost (RFC 7914 §2: N = 2^15, r = 8, p = 1 costs about 0.2 s and 32 MiB here).
DEFAULT_COST_LOG2: Final = 15
_CHECK_PLAINTEXT: Final = b"tapstack-keystore check"
_SEAL_VERSION: Final = 1


def aes_kcv(key: bytes) -> bytes:
    """AES key check value: AES-ECB of a zero block, leftmost 3 bytes (as PKCS#11
    ``CKA_CHECK_VALUE`` of an AES key)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - a KCV
    return (enc.update(bytes(16)) + enc.finalize())[:KCV_LENGTH]


def mac_kcv(key: bytes) -> bytes:
    """HMAC key check value: HMAC-SHA256 of 32 zero bytes, leftmost 3 bytes."""
    return hmac.new(key, bytes(32), hashlib.sha256).digest()[:KCV_LENGTH]


def rsa_kcv(public: RsaPublicKey) -> bytes:
    """RSA key fingerprint: SHA-256 of modulus || exponent, leftmost 3 bytes."""
    return hashlib.sha256(public.modulus + public.exponent.to_bytes(4, "big")).digest()[:3]


def seal_with(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM seal: ``01 || nonce(12) || ciphertext || tag(16)``."""
    nonce = os.urandom(12)
    return bytes((_SEAL_VERSION,)) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal_with(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Open a :func:`seal_with` blob; :class:`KeyStoreError` if altered or foreign."""
    if len(blob) < 29 or blob[0] != _SEAL_VERSION:
        raise KeyStoreError("sealed value is malformed")
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], aad)
    except InvalidTag:
        raise KeyStoreError("sealed value does not open (altered, or another key)") from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aad(entry: dict[str, Any]) -> bytes:
    bound = {k: entry[k] for k in ("id", "kind", "algorithm", "kcv")}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


class FileKeyStore(KeyStore):
    """The default key store: one encrypted JSON file (module docstring).

    Open with :meth:`create` or :meth:`open`; keys are decrypted into memory once.
    """

    backend = "file"

    def __init__(self, path: Path, file_key: bytes, document: dict[str, Any]) -> None:
        self.path = path
        self._file_key = file_key
        self._lock = threading.RLock()
        self._secrets: dict[str, bytes] = {}
        self._infos: dict[str, KeyInfo] = {}
        self._signers: dict[str, SigningKey] = {}
        self._load(document)

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self.path)!r}, {len(self._infos)} keys)"

    # -- opening -------------------------------------------------------------------

    @staticmethod
    def _derive(passphrase: bytes, kdf: dict[str, Any]) -> bytes:
        if kdf.get("name") != "scrypt":
            raise KeyStoreError("key store file: unknown key derivation")
        try:
            return Scrypt(
                salt=bytes.fromhex(kdf["salt"]),
                length=32,
                n=int(kdf["n"]),
                r=int(kdf["r"]),
                p=int(kdf["p"]),
            ).derive(passphrase)
        except (KeyError, ValueError, TypeError):
            raise KeyStoreError("key store file: bad key derivation parameters") from None

    @classmethod
    def create(
        cls, path: str | Path, passphrase: bytes, *, cost_log2: int = DEFAULT_COST_LOG2
    ) -> FileKeyStore:
        """Make a new, empty store at ``path`` (refused if the file exists)."""
        target = Path(path)
        if not passphrase:
            raise KeyStoreError("the key store passphrase is empty")
        if not 10 <= cost_log2 <= 20:
            raise KeyStoreError("scrypt cost must be 2^10 to 2^20")
        kdf = {"name": "scrypt", "salt": secrets.token_hex(16), "n": 1 << cost_log2}
        kdf.update(r=8, p=1)
        file_key = cls._derive(passphrase, kdf)
        document = {
            "format": FORMAT,
            "kdf": kdf,
            "check": seal_with(file_key, _CHECK_PLAINTEXT, b"check").hex(),
            "keys": [],
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConflictError(f"a key store already exists at {target}") from None
        with os.fdopen(fd, "w") as out:
            json.dump(document, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        return cls(target, file_key, document)

    @classmethod
    def open(cls, path: str | Path, passphrase: bytes) -> FileKeyStore:
        """Open an existing store; :class:`KeyStoreError` on a wrong passphrase."""
        target = Path(path)
        document = cls._read(target)
        file_key = cls._derive(passphrase, document["kdf"])
        wrong = (
            "wrong key store passphrase: give the one set at `issuer init` "
            "(TAPSTACK_KEYSTORE_KEY, or at the prompt)"
        )
        try:
            check = unseal_with(file_key, bytes.fromhex(document["check"]), b"check")
        except (KeyStoreError, ValueError):
            raise KeyStoreError(wrong) from None
        if not hmac.compare_digest(check, _CHECK_PLAINTEXT):
            raise KeyStoreError(wrong)
        return cls(target, file_key, document)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyStoreError(f"no key store at {path}") from None
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"key store {path} is unreadable: {type(exc).__name__}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise KeyStoreError(f"{path} is not a {FORMAT} file")
        return document

    def _load(self, document: dict[str, Any]) -> None:
        secrets_: dict[str, bytes] = {}
        infos: dict[str, KeyInfo] = {}
        for entry in document.get("keys", []):
            try:
                info = KeyInfo(
                    entry["id"],
                    KeyKind(entry["kind"]),
                    entry["algorithm"],
                    bytes.fromhex(entry["kcv"]),
                    entry.get("created"),
                )
                secret = unseal_with(self._file_key, bytes.fromhex(entry["sealed"]), _aad(entry))
            except (KeyError, ValueError, TypeError):
                raise KeyStoreError("key store file: a key entry is malformed") from None
            secrets_[info.key_id] = secret
            infos[info.key_id] = info
        with self._lock:
            self._secrets, self._infos = secrets_, infos

    # -- writing -------------------------------------------------------------------

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _add(
        self, key_id: str, kind: KeyKind, algorithm: str, kcv: bytes, secret: bytes
    ) -> KeyInfo:
        check_key_id(key_id)
        with self._lock, self._file_lock():
            document = self._read(self.path)
            self._load(document)
            if key_id in self._infos:
                raise ConflictError(f"key {key_id!r} already exists")
            entry: dict[str, Any] = {
                "id": key_id,
                "kind": kind.value,
                "algorithm": algorithm,
                "kcv": kcv.hex().upper(),
                "created": _now(),
            }
            entry["sealed"] = seal_with(self._file_key, secret, _aad(entry)).hex()
            document["keys"].append(entry)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(document, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            info = KeyInfo(key_id, kind, algorithm, kcv, entry["created"])
            self._secrets[key_id] = secret
            self._infos[key_id] = info
            return info

    def _secret(self, key_id: str) -> bytes:
        with self._lock:
            secret = self._secrets.get(key_id)
        if secret is None:
            raise NotFoundError(f"no key {key_id!r} in the key store")
        return secret

    # -- inventory -----------------------------------------------------------------

    def list(self) -> list[KeyInfo]:
        with self._lock:
            return sorted_infos(self._infos.values())

    def info(self, key_id: str) -> KeyInfo:
        with self._lock:
            info = self._infos.get(key_id)
        if info is None:
            raise NotFoundError(f"no key {key_id!r} in the key store")
        return info

    # -- master keys ---------------------------------------------------------------

    def generate(self, ref: MasterKeyRef) -> KeyInfo:
        if is_sm4(ref):
            sm4 = os.urandom(16)
            return self._add(ref.key_id, KeyKind.MASTER, "SM4-128", kcv_sm4(sm4), sm4)
        key = adjust_odd_parity(os.urandom(16))
        while key[:8] == key[8:]:  # pragma: no cover - 2^-56
            key = adjust_odd_parity(os.urandom(16))
        return self._add(ref.key_id, KeyKind.MASTER, "TDES-128", tdes_kcv(key), key)

    def import_(self, ref: MasterKeyRef, key: bytes, kcv: bytes) -> KeyInfo:
        if is_sm4(ref):
            sm4 = check_sm4_master_key(key, kcv)
            return self._add(ref.key_id, KeyKind.MASTER, "SM4-128", kcv_sm4(sm4), sm4)
        clean = check_master_key(key, kcv)
        return self._add(ref.key_id, KeyKind.MASTER, "TDES-128", tdes_kcv(clean), clean)

    def derive_icc_mk(self, ref: MasterKeyRef, pan: str, psn: str) -> bytes:
        if is_sm4(ref):
            return derive_icc_mk_sm4(self._secret(ref.key_id), pan, psn)
        data = icc_derivation_data(ref.cvn, pan, psn)
        imk = self._secret(ref.key_id)
        return adjust_odd_parity(tdes_ecb_encrypt(imk, data))

    # -- RSA -----------------------------------------------------------------------

    def generate_rsa(self, key_id: str, bits: int, exponent: int) -> RsaPublicKey:
        try:
            key = SigningKey.generate(bits, exponent)
        except EmvWireError as exc:
            raise KeyStoreError(f"cannot generate the RSA key: {exc}") from None
        return self.import_rsa(key_id, key)

    def import_rsa(self, key_id: str, key: SigningKey) -> RsaPublicKey:
        # Kept as its primes and exponent (sealed): rebuilding a key from them is
        # cheap, while parsing PEM re-validates the key each time (tens of ms).
        numbers = serialization.load_pem_private_key(
            key.to_pem(), None, unsafe_skip_rsa_key_validation=True
        )
        assert isinstance(numbers, rsa.RSAPrivateKey)
        private = numbers.private_numbers()
        secret = json.dumps(
            {"p": hex(private.p), "q": hex(private.q), "e": private.public_numbers.e}
        ).encode()
        self._add(key_id, KeyKind.RSA, rsa_algorithm(key.public), rsa_kcv(key.public), secret)
        return key.public

    def signing_key(self, key_id: str) -> SigningKey:
        with self._lock:
            cached = self._signers.get(key_id)
        if cached is not None:
            return cached
        info = self.info(key_id)
        if info.kind is not KeyKind.RSA:
            raise KeyStoreError(f"key {key_id!r} is not an RSA key")
        try:
            fields = json.loads(self._secret(key_id))
            key = SigningKey.from_numbers(int(fields["p"], 16), int(fields["q"], 16), fields["e"])
        except (ValueError, KeyError, TypeError, EmvWireError):
            raise KeyStoreError(f"RSA key {key_id!r} is malformed") from None
        with self._lock:
            self._signers[key_id] = key
        return key

    def rsa_public(self, key_id: str) -> RsaPublicKey:
        return self.signing_key(key_id).public

    # -- SM2 -----------------------------------------------------------------------

    def import_sm2(self, key_id: str, key: Sm2PrivateKey) -> Sm2PublicKey:
        self._add(key_id, KeyKind.SM2, "SM2-256", sm2_kcv(key.public), key.to_bytes())
        return key.public

    def sm2_key(self, key_id: str) -> Sm2PrivateKey:
        if self.info(key_id).kind is not KeyKind.SM2:
            raise KeyStoreError(f"key {key_id!r} is not an SM2 key")
        try:
            return Sm2PrivateKey.from_bytes(self._secret(key_id))
        except EmvWireError:
            raise KeyStoreError(f"SM2 key {key_id!r} is malformed") from None

    # -- data protection -----------------------------------------------------------

    def ensure_data_keys(self) -> None:
        if not self.has(PAN_SEAL_KEY):
            key = os.urandom(32)
            self._add(PAN_SEAL_KEY, KeyKind.DATA, "AES-256-GCM", aes_kcv(key), key)
        if not self.has(PAN_HASH_KEY):
            key = os.urandom(32)
            self._add(PAN_HASH_KEY, KeyKind.MAC, "HMAC-SHA256", mac_kcv(key), key)

    def pan_hash(self, pan: str) -> bytes:
        return hmac.new(self._secret(PAN_HASH_KEY), pan.encode("ascii"), hashlib.sha256).digest()

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        return seal_with(self._secret(PAN_SEAL_KEY), plaintext, aad)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        return unseal_with(self._secret(PAN_SEAL_KEY), blob, aad)

    def close(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._signers.clear()
