"""Bounded, per-thread caches of keyed cipher contexts (internal).

Keying a cipher through ``cryptography`` costs far more than enciphering a block
with it (about 10 us against 1 us on the reference machine), so the hot paths of
:mod:`emvwire.crypto` keep keyed contexts in :func:`functools.lru_cache` caches.

Only contexts whose state does not depend on what was enciphered before are
cached: ECB contexts fed whole blocks, and CMAC prototypes that are copied before
use. Each cache key includes the calling thread's identity, so that no context is
ever used by two threads at once (``cryptography`` contexts are not thread-safe).
A thread identity reused by a later thread only reuses contexts that no live
thread holds. Caches are bounded, so a long-running issuer host does not grow
without limit; :func:`clear_caches` empties them (for instance after key rotation).
"""

from __future__ import annotations

import functools
from _thread import get_ident

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = [
    "CACHE_SIZE",
    "aes_ecb_decryptor",
    "aes_ecb_encryptor",
    "clear_caches",
    "get_ident",
    "tdes_ecb_decryptor",
    "tdes_ecb_encryptor",
]

#: Most keyed contexts kept per cache (per kind of context).
CACHE_SIZE = 4096

_ECB = modes.ECB()  # noqa: S305 - EMV keys and MACs encipher single blocks (Book 2 §A1.1)


def _key24(key: bytes) -> bytes:
    # Callers validate the length; a two-key (K1K2) key becomes K1K2K1.
    return key + key[:8] if len(key) == 16 else key


@functools.lru_cache(maxsize=CACHE_SIZE)
def tdes_ecb_encryptor(key: bytes, tid: int) -> CipherContext:
    """A TDES ECB encryptor for a 16- or 24-byte key, private to thread ``tid``."""
    return Cipher(TripleDES(_key24(key)), _ECB).encryptor()


@functools.lru_cache(maxsize=CACHE_SIZE)
def tdes_ecb_decryptor(key: bytes, tid: int) -> CipherContext:
    """A TDES ECB decryptor for a 16- or 24-byte key, private to thread ``tid``."""
    return Cipher(TripleDES(_key24(key)), _ECB).decryptor()


@functools.lru_cache(maxsize=CACHE_SIZE)
def aes_ecb_encryptor(key: bytes, tid: int) -> CipherContext:
    """An AES ECB encryptor, private to thread ``tid``."""
    return Cipher(algorithms.AES(key), _ECB).encryptor()


@functools.lru_cache(maxsize=CACHE_SIZE)
def aes_ecb_decryptor(key: bytes, tid: int) -> CipherContext:
    """An AES ECB decryptor, private to thread ``tid``."""
    return Cipher(algorithms.AES(key), _ECB).decryptor()


_CLEARERS: list[functools._lru_cache_wrapper[object]] = []


def register(cache: functools._lru_cache_wrapper[object]) -> None:
    """Add a cache of another module to those :func:`clear_caches` empties."""
    _CLEARERS.append(cache)


for _cache in (tdes_ecb_encryptor, tdes_ecb_decryptor, aes_ecb_encryptor, aes_ecb_decryptor):
    register(_cache)


def clear_caches() -> None:
    """Forget every cached keyed context (and every cached derived key)."""
    for cache in _CLEARERS:
        cache.cache_clear()
