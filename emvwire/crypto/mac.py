"""Message authentication codes: ISO/IEC 9797-1 padding, MAC algorithm 3, AES-CMAC.

* ISO/IEC 9797-1 padding method 1 (zero bytes) and method 2 (``80`` then zero
  bytes).
* ISO/IEC 9797-1 MAC algorithm 3, the "retail MAC" (ANSI X9.19) that EMV Book 2
  §A1.2.1 uses with a 64-bit block cipher: single-DES CBC under ``K1`` over every
  block, then output transformation 3 on the last result: decipher with ``K2``,
  encipher with ``K1``.
* AES-CMAC, ISO/IEC 9797-1 MAC algorithm 5 (NIST SP 800-38B), which EMV Book 2
  §A1.2.2 uses with a 128-bit block cipher (re-exported from
  :mod:`emvwire.crypto.aes`).

>>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
>>> pad_iso9797_2(b"\\x12\\x34").hex().upper()
'1234800000000000'
>>> len(mac_iso9797_alg3(key, b"any data"))
8
"""

from __future__ import annotations

import functools
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from emvwire.crypto import _ctx
from emvwire.crypto._ctx import get_ident
from emvwire.crypto.aes import aes_cmac
from emvwire.errors import CryptoError, VerificationError

__all__ = [
    "aes_cmac",
    "mac_iso9797_alg3",
    "pad_iso9797_1",
    "pad_iso9797_2",
    "verify_mac",
]

_BLOCK = 8
#: One CBC mode object (zero IV) shared by every chain context: modes are immutable.
_CBC_ZERO_IV = modes.CBC(bytes(_BLOCK))


def _check_data(data: bytes, block_size: int = _BLOCK) -> None:
    if type(data) is not bytes:
        raise CryptoError("data must be bytes")
    if type(block_size) is not int or block_size < 1:
        raise CryptoError("the block size must be a positive int")


def pad_iso9797_1(data: bytes, block_size: int = _BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 1: append the fewest ``00`` bytes (maybe none).

    An empty input becomes one block of zeros (ISO/IEC 9797-1:2011 §6.3.1).
    """
    _check_data(data, block_size)
    if not data:
        return bytes(block_size)
    return data + bytes(-len(data) % block_size)


def pad_iso9797_2(data: bytes, block_size: int = _BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 2: append ``80`` then the fewest ``00`` bytes."""
    _check_data(data, block_size)
    return data + b"\x80" + bytes(-(len(data) + 1) % block_size)


class _RetailState:
    """The keyed contexts of one MAC algorithm 3 key, for one thread.

    ``chain`` is a single-DES (``K1``) CBC encryptor that is reused for every
    message: a CBC context carries its last output block (``last``) into the
    next call as the chaining value, and XOR-ing that value into the first block
    of a new message cancels it. The whole CBC pass is then one ``update`` call
    in C rather than a Python loop over blocks. ``final`` is the two-key TDES ECB
    encryptor that applies output transformation 3.
    """

    __slots__ = ("chain", "final", "last")

    def __init__(self, key: bytes, tid: int) -> None:
        k1 = key[:8]
        self.chain = Cipher(TripleDES(k1 * 3), _CBC_ZERO_IV).encryptor()
        self.final = _ctx.tdes_ecb_encryptor(key, tid)
        self.last = 0


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _retail_state(key: bytes, tid: int) -> _RetailState:
    return _RetailState(key, tid)


_ctx.register(_retail_state)


def _retail_mac_padded(key: bytes, data: bytes) -> bytes:
    """MAC algorithm 3 over block-aligned, already padded ``data`` (non-empty).

    With ``H`` the single-DES CBC-MAC under K1 of all blocks but the last and
    ``D`` the last block, the MAC is ``E_K1(D_K2(E_K1(D xor H)))``: one two-key
    TDES encipherment of ``D xor H`` under ``K1 || K2 || K1``.
    """
    state = _retail_state(key, get_ident())
    n = len(data) - _BLOCK
    if n:
        out = state.chain.update(
            (int.from_bytes(data[:_BLOCK]) ^ state.last).to_bytes(_BLOCK) + data[_BLOCK:n]
        )
        h = int.from_bytes(out[-_BLOCK:])
        state.last = h
        return state.final.update((int.from_bytes(data[n:]) ^ h).to_bytes(_BLOCK))
    return state.final.update(data)


def mac_iso9797_alg3(key: bytes, data: bytes, padding: int = 2, length: int = 8) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") with a 16-byte key ``K1 || K2``.

    ``padding`` is ISO/IEC 9797-1 padding method 1 or 2; ``length`` is how many
    leftmost bytes of the 8-byte MAC to return (4 to 8). EMV Book 2 §A1.2.1.
    """
    if not isinstance(key, bytes) or len(key) != 16:
        raise CryptoError("MAC algorithm 3 needs a 16-byte key (K1 || K2)")
    if padding == 2:
        data = pad_iso9797_2(data)
    elif padding == 1:
        data = pad_iso9797_1(data)
    else:
        raise CryptoError("the ISO/IEC 9797-1 padding method must be 1 or 2")
    if not 4 <= length <= 8:
        raise CryptoError("a MAC algorithm 3 output is 4 to 8 bytes")
    return _retail_mac_padded(key, data)[:length]


def verify_mac(expected: bytes, received: bytes, what: str = "MAC") -> None:
    """Compare two MACs in constant time; raise :class:`VerificationError` if unequal."""
    if type(expected) is not bytes or type(received) is not bytes:
        raise CryptoError("MACs must be bytes")
    if not hmac.compare_digest(expected, received):
        raise VerificationError(f"{what} does not verify")
