"""RSA keys, recovery and raw signing for offline data authentication.

EMV Book 2 Annex A2.1 (digital signature scheme giving message recovery: the signer
applies its private key to a whole block of modulus length, the verifier recovers the
block with the public key and checks header ``6A``, trailer ``BC`` and the hash),
Annex B2.1 (RSA: public exponent 3 or 2^16 + 1, modulus of at most 248 bytes) and
Annex B3 (hash algorithm indicator ``01`` is SHA-1). Public key algorithm indicator
``01`` is RSA (Book 2 Annex B2.1).

Recovery uses Python's ``pow`` (a small public exponent makes it cheap); signing uses
the Chinese remainder theorem on the private numbers of a ``cryptography`` key.
``cryptography`` is imported only by the methods that generate, load or save a private
key, so that a terminal, which only recovers, starts without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from emvwire.errors import CryptoError, DecodeError, OdaError

if TYPE_CHECKING:  # imported by the methods that make or load keys: a terminal never does
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "HASH_ALGORITHMS",
    "HASH_SHA1",
    "MAX_MODULUS_LENGTH",
    "PK_ALGORITHMS",
    "PK_RSA",
    "PUBLIC_EXPONENTS",
    "RsaPublicKey",
    "SigningKey",
    "exponent_bytes",
]

#: Largest modulus EMV allows, in bytes (Book 2 Annex B2.1: N_CA <= 248).
MAX_MODULUS_LENGTH = 248
#: Public exponents EMV allows (Book 2 Annex B2.1: e = 3 or 2^16 + 1).
PUBLIC_EXPONENTS = frozenset({3, 65537})
#: Hash algorithm indicator of SHA-1 (Book 2 Annex B3).
HASH_SHA1 = 0x01
#: Public key algorithm indicator of RSA (Book 2 Annex B2.1).
PK_RSA = 0x01


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - SHA-1 is what EMV Book 2 B3 specifies


#: Hash algorithm indicator -> hash function (Book 2 Annex B3). All give 20 bytes.
HASH_ALGORITHMS: Mapping[int, Callable[[bytes], bytes]] = MappingProxyType({HASH_SHA1: _sha1})
#: Public key algorithm indicator -> name (Book 2 Annex B2.1).
PK_ALGORITHMS: Mapping[int, str] = MappingProxyType({PK_RSA: "RSA"})


def exponent_bytes(exponent: int) -> bytes:
    """The shortest big-endian encoding of an exponent (``03``, ``010001``) as EMV stores it."""
    if exponent <= 0:
        raise CryptoError(f"public exponent {exponent} is not positive")
    return exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class RsaPublicKey:
    """An RSA public key as EMV carries it: modulus bytes (big-endian) and exponent.

    The modulus length in bytes is the key's ``N`` (Book 2 §5.1, §6.1): its first byte
    must not be zero. The repr shows the size only.
    """

    modulus: bytes
    exponent: int

    def __post_init__(self) -> None:
        if not self.modulus or self.modulus[0] == 0:
            raise CryptoError("RSA modulus is empty or has a leading zero byte")
        if len(self.modulus) > MAX_MODULUS_LENGTH:
            raise CryptoError(
                f"RSA modulus of {len(self.modulus)} bytes exceeds {MAX_MODULUS_LENGTH}"
            )
        if self.exponent not in PUBLIC_EXPONENTS:
            raise CryptoError(f"public exponent {self.exponent} is not 3 or 65537")
        if not self.modulus[-1] & 1:
            raise CryptoError("RSA modulus is even")

    @property
    def length(self) -> int:
        """``N``: the modulus length in bytes."""
        return len(self.modulus)

    @property
    def n(self) -> int:
        """The modulus as an integer."""
        return int.from_bytes(self.modulus, "big")

    def recover(self, signed: bytes, what: str) -> bytes:
        """Apply the public key to ``signed`` (Book 2 Annex A2.1.3, step 1).

        ``signed`` must be exactly ``N`` bytes and, as an integer, below the modulus;
        otherwise :class:`OdaError` names ``what`` failed. Returns the ``N``-byte block.
        """
        if len(signed) != len(self.modulus):
            raise OdaError(f"{what} is {len(signed)} bytes, the key modulus is {len(self.modulus)}")
        value = int.from_bytes(signed, "big")
        n = self.n
        if value >= n:
            raise OdaError(f"{what} is not smaller than the key modulus")
        return pow(value, self.exponent, n).to_bytes(len(self.modulus), "big")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.modulus) * 8}-bit, e={self.exponent})"


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """An RSA private key for producing EMV certificates and signatures (test CA, issuer, ICC).

    Signing is raw RSA over a block the caller formats (Book 2 Annex A2.1.2): the
    block must be exactly ``N`` bytes and start below the modulus (every EMV block
    starts with header ``6A`` while the modulus's first byte is at least ``80``).
    """

    public: RsaPublicKey
    _d: int = field(repr=False)
    _p: int = field(repr=False)
    _q: int = field(repr=False)
    _dp: int = field(repr=False)
    _dq: int = field(repr=False)
    _qinv: int = field(repr=False)

    @classmethod
    def from_numbers(cls, p: int, q: int, exponent: int) -> SigningKey:
        """Build a key from its two primes and public exponent."""
        n = p * q
        phi = (p - 1) * (q - 1)
        try:
            d = pow(exponent, -1, phi)
        except ValueError:
            raise CryptoError("public exponent is not invertible for these primes") from None
        modulus = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return cls(
            RsaPublicKey(modulus=modulus, exponent=exponent),
            d,
            p,
            q,
            d % (p - 1),
            d % (q - 1),
            pow(q, -1, p),
        )

    @classmethod
    def generate(cls, bits: int = 1024, exponent: int = 3) -> SigningKey:
        """A fresh key of ``bits`` bits (a multiple of 8, 1024-1984) and exponent 3 or 65537."""
        if bits % 8 or not 1024 <= bits <= MAX_MODULUS_LENGTH * 8:
            raise CryptoError(f"key size {bits} is not a multiple of 8 in 1024..1984")
        if exponent not in PUBLIC_EXPONENTS:
            raise CryptoError(f"public exponent {exponent} is not 3 or 65537")
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=exponent, key_size=bits)
        return cls._from_cryptography(key)

    @classmethod
    def _from_cryptography(cls, key: rsa.RSAPrivateKey) -> SigningKey:
        numbers = key.private_numbers()
        return cls.from_numbers(numbers.p, numbers.q, numbers.public_numbers.e)

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> SigningKey:
        """Load an RSA private key from PEM (PKCS#1 or PKCS#8)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"not an RSA private key in PEM: {type(exc).__name__}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DecodeError("PEM key is not an RSA key")
        return cls._from_cryptography(key)

    def to_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM (for test keys only)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        e = self.public.exponent
        numbers = rsa.RSAPrivateNumbers(
            p=self._p,
            q=self._q,
            d=self._d,
            dmp1=self._dp,
            dmq1=self._dq,
            iqmp=self._qinv,
            public_numbers=rsa.RSAPublicNumbers(e, self.public.n),
        )
        return numbers.private_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, block: bytes) -> bytes:
        """Raw RSA private operation on ``block`` (``N`` bytes), by the CRT.

        The result is checked with the public key before it is returned, so that a
        computation fault can never leak a signature that does not verify.
        """
        n_len = len(self.public.modulus)
        if len(block) != n_len:
            raise CryptoError(f"block is {len(block)} bytes, the key modulus is {n_len}")
        m = int.from_bytes(block, "big")
        n = self.public.n
        if m >= n:
            raise CryptoError("block is not smaller than the key modulus")
        m1 = pow(m, self._dp, self._p)
        m2 = pow(m, self._dq, self._q)
        h = (self._qinv * (m1 - m2)) % self._p
        s = m2 + h * self._q
        if pow(s, self.public.exponent, n) != m:
            raise CryptoError("RSA signature self-check failed")
        return s.to_bytes(n_len, "big")

    def __repr__(self) -> str:
        return f"SigningKey({len(self.public.modulus) * 8}-bit, e={self.public.exponent})"

    __str__ = __repr__
