"""A key store in a PKCS#11 token (an HSM; SoftHSM in tests).

Every key is a token object labelled ``tapstack:<key id>``:

- issuer master keys are ``CKK_DES2`` secret keys with ``CKA_SENSITIVE`` true,
  ``CKA_EXTRACTABLE`` false and only ``CKA_DERIVE`` set: they cannot be read, wrapped,
  or used to encipher chosen data. An ICC master key is derived inside the token with
  ``CKM_DES3_ECB_ENCRYPT_DATA`` (PKCS#11 v2.40 §2.8.4, "key derivation by data
  encryption"): the derived key's value is ``TDES_IMK(Y || Y xor FF..FF)`` with odd
  parity, EMV Book 2 §A1.4.1 (option A). The derived key is a session object made
  extractable on purpose (ICC keys go into card profiles and ARQC checks), read, and
  destroyed. python-pkcs11 builds no parameter for this mechanism: its
  ``CK_KEY_DERIVATION_STRING_DATA {pData, ulLen}`` is packed here with ctypes, and
  ``CKA_VALUE_LEN`` is left to the token (a DES3 key's length is fixed by its type).
- RSA keys (CA, issuer) are private key objects with ``CKA_SIGN``, non-extractable;
  certificates are signed with ``CKM_RSA_X_509`` (raw RSA, EMV Book 2 Annex A2.1.2)
  through a :class:`~emvwire.oda.SigningKey` whose ``sign`` calls the token.
- the PAN sealing key is ``CKK_AES`` (``CKM_AES_GCM``) and the PAN hash key
  ``CKK_GENERIC_SECRET`` (``CKM_SHA256_HMAC``), both non-extractable.

KCVs come from ``CKA_CHECK_VALUE`` (PKCS#11 v2.40 §4.10: for DES and AES keys the
first three bytes of ECB encipherment of a zero block), or, for the HMAC key, the
HMAC of 32 zero bytes computed in the token.

Each thread gets its own logged-in session (PKCS#11 allows a session per thread;
python-pkcs11 releases the GIL around calls), with its object handles cached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import threading
from collections.abc import Callable
from typing import Any, Final

from emvwire.oda import RsaPublicKey, SigningKey
from emvwire.oda.rsa import exponent_bytes
from issuer.errors import ConflictError, KeyStoreError, NotFoundError, ValidationError
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
    icc_derivation_data,
    is_sm4,
    rsa_algorithm,
    sorted_infos,
)
from issuer.keys.file import rsa_kcv

__all__ = ["LABEL_PREFIX", "Pkcs11KeyStore"]

#: Prefix of the CKA_LABEL of every object of this store.
LABEL_PREFIX: Final = "tapstack:"
_SEAL_VERSION: Final = 1


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:  # pragma: no cover - depends on the installation
        raise KeyStoreError(
            "python-pkcs11 is not installed (pip install 'tapstack[hsm]')"
        ) from None
    return pkcs11


class _DelegatedSigningKey(SigningKey):
    """A :class:`SigningKey` whose private operation happens in the token.

    The private numbers of the dataclass are zero and unused; ``to_pem`` refuses.
    """

    __slots__ = ("_raw_sign",)
    _raw_sign: Callable[[bytes], bytes]

    def __init__(self, public: RsaPublicKey, raw_sign: Callable[[bytes], bytes]) -> None:
        super().__init__(public, 0, 0, 0, 0, 0, 0)
        object.__setattr__(self, "_raw_sign", raw_sign)

    def sign(self, block: bytes) -> bytes:
        n_len = len(self.public.modulus)
        if len(block) != n_len or int.from_bytes(block, "big") >= self.public.n:
            raise KeyStoreError("RSA block does not fit the key modulus")
        signature = self._raw_sign(block)
        if pow(int.from_bytes(signature, "big"), self.public.exponent, self.public.n) != (
            int.from_bytes(block, "big")
        ):
            raise KeyStoreError("RSA signature from the token does not verify")
        return signature

    def to_pem(self) -> bytes:
        raise KeyStoreError("an RSA key in a PKCS#11 token cannot be exported")

    def __repr__(self) -> str:
        return f"HsmSigningKey({len(self.public.modulus) * 8}-bit, e={self.public.exponent})"


def _refuse_sm4(ref: MasterKeyRef) -> None:
    """SM4 master keys (UnionPay's SM suite) cannot live here: PKCS#11 has no standard
    SM4 mechanism and SoftHSM none at all. They need the file key store."""
    if is_sm4(ref):
        raise KeyStoreError(
            f"{ref.key_id}: SM4 master keys are not available through PKCS#11; "
            "use the file key store for an SM4 card range"
        )


class Pkcs11KeyStore(KeyStore):
    """Keys in a PKCS#11 token (module docstring). ``pin`` is the user PIN."""

    backend = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        p11 = _pkcs11()
        self._p11 = p11
        self.module = module
        self.token_label = token_label
        try:
            lib = p11.lib(module)
            self._token = lib.get_token(token_label=token_label)
        except p11.exceptions.NoSuchToken:
            raise KeyStoreError(f"no PKCS#11 token labelled {token_label!r}") from None
        except (p11.exceptions.PKCS11Error, OSError, RuntimeError) as exc:
            raise KeyStoreError(f"cannot load PKCS#11 module: {type(exc).__name__}") from None
        self._pin = pin
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._lock = threading.RLock()
        self._session()  # log in now: a wrong PIN fails here

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore({self.token_label!r})"

    # -- sessions and objects --------------------------------------------------------

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            p11 = self._p11
            try:
                session = self._token.open(rw=True, user_pin=self._pin)
            except p11.exceptions.UserAlreadyLoggedIn:
                # Login is per application (PKCS#11 v2.40 §5.6): another session of
                # this process logged in, and a new session shares that state.
                session = self._token.open(rw=True)
            except p11.exceptions.PinIncorrect:
                raise KeyStoreError("wrong PKCS#11 user PIN") from None
            except p11.exceptions.PKCS11Error as exc:
                raise KeyStoreError(
                    f"cannot open a PKCS#11 session: {type(exc).__name__}"
                ) from None
            self._local.session = session
            self._local.handles = {}
            with self._lock:
                self._sessions.append(session)
        return session

    def _find(self, key_id: str, object_class: Any) -> Any | None:
        session = self._session()
        handles: dict[tuple[str, Any], Any] = self._local.handles
        cached = handles.get((key_id, object_class))
        if cached is not None:
            return cached
        p11 = self._p11
        found = list(
            session.get_objects(
                {
                    p11.Attribute.LABEL: LABEL_PREFIX + key_id,
                    p11.Attribute.CLASS: object_class,
                    p11.Attribute.TOKEN: True,
                }
            )
        )
        if not found:
            return None
        handles[(key_id, object_class)] = found[0]
        return found[0]

    def _get(self, key_id: str, object_class: Any) -> Any:
        obj = self._find(key_id, object_class)
        if obj is None:
            raise NotFoundError(f"no key {key_id!r} in the key store")
        return obj

    def _exists(self, key_id: str) -> bool:
        p11 = self._p11
        return any(
            self._find(key_id, cls) is not None
            for cls in (p11.ObjectClass.SECRET_KEY, p11.ObjectClass.PRIVATE_KEY)
        )

    def _fail(self, what: str, exc: Exception) -> KeyStoreError:
        return KeyStoreError(f"PKCS#11 {what} failed: {type(exc).__name__}")

    # -- inventory -----------------------------------------------------------------

    def _info(self, obj: Any) -> KeyInfo | None:
        p11 = self._p11
        label = obj[p11.Attribute.LABEL]
        if not isinstance(label, str) or not label.startswith(LABEL_PREFIX):
            return None
        key_id = label[len(LABEL_PREFIX) :]
        cls = obj[p11.Attribute.CLASS]
        if cls == p11.ObjectClass.PRIVATE_KEY:
            public = self._public_of(obj)
            return KeyInfo(key_id, KeyKind.RSA, rsa_algorithm(public), rsa_kcv(public))
        key_type = obj[p11.Attribute.KEY_TYPE]
        if key_type == p11.KeyType.DES2:
            kind, algorithm = KeyKind.MASTER, "TDES-128"
        elif key_type == p11.KeyType.AES:
            kind, algorithm = KeyKind.DATA, "AES-256-GCM"
        elif key_type == p11.KeyType.GENERIC_SECRET:
            return KeyInfo(key_id, KeyKind.MAC, "HMAC-SHA256", self._mac_kcv(obj))
        else:
            return None
        kcv = bytes(obj[p11.Attribute.CHECK_VALUE])[:KCV_LENGTH]
        return KeyInfo(key_id, kind, algorithm, kcv)

    def _mac_kcv(self, obj: Any) -> bytes:
        p11 = self._p11
        return bytes(obj.sign(bytes(32), mechanism=p11.Mechanism.SHA256_HMAC))[:KCV_LENGTH]

    def list(self) -> list[KeyInfo]:
        p11 = self._p11
        session = self._session()
        out = []
        for cls in (p11.ObjectClass.SECRET_KEY, p11.ObjectClass.PRIVATE_KEY):
            # Collect first: no other operation may run while a search is open.
            found = list(session.get_objects({p11.Attribute.CLASS: cls, p11.Attribute.TOKEN: True}))
            for obj in found:
                info = self._info(obj)
                if info is not None:
                    out.append(info)
        return sorted_infos(out)

    def info(self, key_id: str) -> KeyInfo:
        p11 = self._p11
        for cls in (p11.ObjectClass.SECRET_KEY, p11.ObjectClass.PRIVATE_KEY):
            obj = self._find(key_id, cls)
            if obj is not None:
                info = self._info(obj)
                if info is not None:
                    return info
        raise NotFoundError(f"no key {key_id!r} in the key store")

    # -- master keys ---------------------------------------------------------------

    def _master_template(self) -> dict[Any, Any]:
        p11 = self._p11
        a = p11.Attribute
        return {
            a.TOKEN: True,
            a.PRIVATE: True,
            a.SENSITIVE: True,
            a.EXTRACTABLE: False,
            a.DERIVE: True,
            a.ENCRYPT: False,
            a.DECRYPT: False,
            a.WRAP: False,
            a.UNWRAP: False,
            a.SIGN: False,
            a.VERIFY: False,
        }

    def generate(self, ref: MasterKeyRef) -> KeyInfo:
        _refuse_sm4(ref)
        p11 = self._p11
        with self._lock:
            if self._exists(ref.key_id):
                raise ConflictError(f"key {ref.key_id!r} already exists")
            try:
                self._session().generate_key(
                    p11.KeyType.DES2,
                    128,
                    label=LABEL_PREFIX + ref.key_id,
                    store=True,
                    template=self._master_template(),
                )
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("key generation", exc) from None
        return self.info(ref.key_id)

    def import_(self, ref: MasterKeyRef, key: bytes, kcv: bytes) -> KeyInfo:
        _refuse_sm4(ref)
        p11 = self._p11
        clean = check_master_key(key, kcv)
        a = p11.Attribute
        with self._lock:
            if self._exists(ref.key_id):
                raise ConflictError(f"key {ref.key_id!r} already exists")
            try:
                self._session().create_object(
                    {
                        a.CLASS: p11.ObjectClass.SECRET_KEY,
                        a.KEY_TYPE: p11.KeyType.DES2,
                        a.VALUE: clean,
                        a.LABEL: LABEL_PREFIX + ref.key_id,
                        **self._master_template(),
                    }
                )
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("key import", exc) from None
        return self.info(ref.key_id)

    def derive_icc_mk(self, ref: MasterKeyRef, pan: str, psn: str) -> bytes:
        _refuse_sm4(ref)
        p11 = self._p11
        data = icc_derivation_data(ref.cvn, pan, psn)
        base = self._get(ref.key_id, p11.ObjectClass.SECRET_KEY)
        buf = ctypes.create_string_buffer(data, len(data))
        # CK_KEY_DERIVATION_STRING_DATA {CK_BYTE_PTR pData; CK_ULONG ulLen}.
        param = struct.pack("PL", ctypes.addressof(buf), len(data))
        a = p11.Attribute
        try:
            derived = base.derive_key(
                p11.KeyType.DES2,
                128,
                mechanism=p11.Mechanism.DES3_ECB_ENCRYPT_DATA,
                mechanism_param=param,
                template={
                    a.VALUE_LEN: p11.constants.DEFAULT,
                    a.TOKEN: False,
                    a.SENSITIVE: False,
                    a.EXTRACTABLE: True,
                    a.DERIVE: False,
                    a.ENCRYPT: False,
                    a.DECRYPT: False,
                },
            )
        except p11.exceptions.PKCS11Error as exc:
            raise self._fail("key derivation", exc) from None
        finally:
            del buf
        try:
            value = bytes(derived[a.VALUE])
        finally:
            derived.destroy()
        if len(value) != 16:
            raise KeyStoreError("the token derived a key of the wrong length")
        return value

    # -- RSA -----------------------------------------------------------------------

    def _public_of(self, private: Any) -> RsaPublicKey:
        p11 = self._p11
        modulus = bytes(private[p11.Attribute.MODULUS])
        exponent = int.from_bytes(bytes(private[p11.Attribute.PUBLIC_EXPONENT]), "big")
        return RsaPublicKey(modulus=modulus, exponent=exponent)

    def _rsa_template(self) -> dict[Any, Any]:
        a = self._p11.Attribute
        return {
            a.TOKEN: True,
            a.PRIVATE: True,
            a.SENSITIVE: True,
            a.EXTRACTABLE: False,
            a.SIGN: True,
            a.DECRYPT: False,
            a.UNWRAP: False,
        }

    def generate_rsa(self, key_id: str, bits: int, exponent: int) -> RsaPublicKey:
        p11 = self._p11
        check_key_id(key_id)
        if bits % 8 or not 1024 <= bits <= 1984 or exponent not in (3, 65537):
            raise ValidationError("RSA keys are 1024-1984 bits (multiple of 8), e = 3 or 65537")
        with self._lock:
            if self._exists(key_id):
                raise ConflictError(f"key {key_id!r} already exists")
            try:
                _public, private = self._session().generate_keypair(
                    p11.KeyType.RSA,
                    bits,
                    label=LABEL_PREFIX + key_id,
                    store=True,
                    public_template={
                        p11.Attribute.PUBLIC_EXPONENT: exponent_bytes(exponent),
                        p11.Attribute.TOKEN: False,
                    },
                    private_template=self._rsa_template(),
                )
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("RSA key generation", exc) from None
        return self._public_of(private)

    def import_rsa(self, key_id: str, key: SigningKey) -> RsaPublicKey:
        from cryptography.hazmat.primitives import serialization

        p11 = self._p11
        check_key_id(key_id)
        der = serialization.load_pem_private_key(key.to_pem(), None).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        attrs = p11.util.rsa.decode_rsa_private_key(der)
        attrs.update(self._rsa_template())
        attrs[p11.Attribute.LABEL] = LABEL_PREFIX + key_id
        with self._lock:
            if self._exists(key_id):
                raise ConflictError(f"key {key_id!r} already exists")
            try:
                self._session().create_object(attrs)
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("RSA key import", exc) from None
        return key.public

    def rsa_public(self, key_id: str) -> RsaPublicKey:
        return self._public_of(self._get(key_id, self._p11.ObjectClass.PRIVATE_KEY))

    def signing_key(self, key_id: str) -> SigningKey:
        p11 = self._p11
        public = self.rsa_public(key_id)

        def raw_sign(block: bytes) -> bytes:
            private = self._get(key_id, p11.ObjectClass.PRIVATE_KEY)
            try:
                return bytes(private.sign(block, mechanism=p11.Mechanism.RSA_X_509))
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("RSA signature", exc) from None

        return _DelegatedSigningKey(public, raw_sign)

    # -- data protection -----------------------------------------------------------

    def ensure_data_keys(self) -> None:
        p11 = self._p11
        a = p11.Attribute
        base = {a.TOKEN: True, a.PRIVATE: True, a.SENSITIVE: True, a.EXTRACTABLE: False}
        with self._lock:
            session = self._session()
            try:
                if not self._exists(PAN_SEAL_KEY):
                    session.generate_key(
                        p11.KeyType.AES,
                        256,
                        label=LABEL_PREFIX + PAN_SEAL_KEY,
                        store=True,
                        template={**base, a.ENCRYPT: True, a.DECRYPT: True, a.DERIVE: False},
                    )
                if not self._exists(PAN_HASH_KEY):
                    session.generate_key(
                        p11.KeyType.GENERIC_SECRET,
                        256,
                        label=LABEL_PREFIX + PAN_HASH_KEY,
                        store=True,
                        template={**base, a.SIGN: True, a.VERIFY: True, a.DERIVE: False},
                    )
            except p11.exceptions.PKCS11Error as exc:
                raise self._fail("data key generation", exc) from None

    def pan_hash(self, pan: str) -> bytes:
        p11 = self._p11
        key = self._get(PAN_HASH_KEY, p11.ObjectClass.SECRET_KEY)
        try:
            return bytes(key.sign(pan.encode("ascii"), mechanism=p11.Mechanism.SHA256_HMAC))
        except p11.exceptions.PKCS11Error as exc:
            raise self._fail("HMAC", exc) from None

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        p11 = self._p11
        key = self._get(PAN_SEAL_KEY, p11.ObjectClass.SECRET_KEY)
        nonce = os.urandom(12)
        try:
            body = key.encrypt(
                plaintext,
                mechanism=p11.Mechanism.AES_GCM,
                mechanism_param=p11.GCMParams(nonce, aad, 128),
            )
        except p11.exceptions.PKCS11Error as exc:
            raise self._fail("AES-GCM seal", exc) from None
        return bytes((_SEAL_VERSION,)) + nonce + bytes(body)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        p11 = self._p11
        if len(blob) < 29 or blob[0] != _SEAL_VERSION:
            raise KeyStoreError("sealed value is malformed")
        key = self._get(PAN_SEAL_KEY, p11.ObjectClass.SECRET_KEY)
        try:
            return bytes(
                key.decrypt(
                    blob[13:],
                    mechanism=p11.Mechanism.AES_GCM,
                    mechanism_param=p11.GCMParams(blob[1:13], aad, 128),
                )
            )
        except p11.exceptions.PKCS11Error:
            raise KeyStoreError("sealed value does not open (altered, or another key)") from None

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            with contextlib.suppress(Exception):  # closing is best effort
                session.close()
        self._local = threading.local()
