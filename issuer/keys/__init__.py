"""Issuer key stores: one interface (:class:`KeyStore`), a file and a PKCS#11 backend."""

from issuer.keys.base import (
    PAN_HASH_KEY,
    PAN_SEAL_KEY,
    PURPOSES,
    SCHEMES,
    KeyInfo,
    KeyKind,
    KeyStore,
    MasterKeyRef,
    ca_key_id,
    issuer_key_id,
)
from issuer.keys.file import FileKeyStore

__all__ = [
    "PAN_HASH_KEY",
    "PAN_SEAL_KEY",
    "PURPOSES",
    "SCHEMES",
    "FileKeyStore",
    "KeyInfo",
    "KeyKind",
    "KeyStore",
    "MasterKeyRef",
    "ca_key_id",
    "issuer_key_id",
]
