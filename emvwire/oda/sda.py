"""Static Data Authentication: Signed Static Application Data, tag ``93`` (EMV Book 2 §5.4).

The issuer signs, with its private key, the block of Book 2 Table 7: header ``6A``,
format ``03``, hash algorithm indicator, Data Authentication Code (2 bytes), pad
pattern of ``BB`` (N_I - 26 bytes), hash result and trailer ``BC``. The hash covers
format through pad pattern followed by the static data to be authenticated.
"""

from __future__ import annotations

from emvwire.errors import CryptoError
from emvwire.oda._common import HASH_LENGTH, HEADER, TRAILER, check_hash, hash_function
from emvwire.oda._common import recover_block as _recover_block
from emvwire.oda.rsa import HASH_SHA1, RsaPublicKey, SigningKey

__all__ = ["FORMAT_SDA", "sign_sda", "verify_sda"]

#: Signed Data Format of Signed Static Application Data (Book 2 Table 7).
FORMAT_SDA = 0x03
#: Table 7 bytes other than the pad pattern: header, format, hash algorithm, DAC (2),
#: hash result (20), trailer.
_SDA_OVERHEAD = 26


def verify_sda(issuer_key: RsaPublicKey, signed: bytes, static_data: bytes) -> bytes:
    """Check tag ``93`` against the static data (Book 2 §5.4 steps 1-7); return the DAC.

    The Data Authentication Code returned is what the terminal stores as ``9F45``.
    """
    what = "signed static application data"
    block = _recover_block(issuer_key, bytes(signed), what, FORMAT_SDA, _SDA_OVERHEAD)
    check_hash(block, bytes(static_data), block[2], what)
    return block[3:5]


def sign_sda(
    issuer: SigningKey,
    static_data: bytes,
    *,
    dac: bytes = b"\xda\xc1",
    hash_algorithm: int = HASH_SHA1,
) -> bytes:
    """Produce tag ``93`` over ``static_data`` with Data Authentication Code ``dac``."""
    if len(dac) != 2:
        raise CryptoError("Data Authentication Code must be 2 bytes")
    n_len = len(issuer.public.modulus)
    if n_len < _SDA_OVERHEAD:
        raise CryptoError("issuer key is too short for signed static data")
    body = bytes((FORMAT_SDA, hash_algorithm)) + dac + b"\xbb" * (n_len - _SDA_OVERHEAD)
    digest = hash_function(hash_algorithm, "signed static application data")(body + static_data)
    assert len(digest) == HASH_LENGTH
    return issuer.sign(bytes((HEADER,)) + body + digest + bytes((TRAILER,)))
