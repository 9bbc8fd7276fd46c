"""SM2 digital signatures (GB/T 32918.2-2016, GM/T 0003.2-2012) on Python integers.

SM2 is an elliptic-curve signature over a prime field with its own signing equation
and a signer-identity prefix ``ZA``. This module implements what offline data
authentication needs of it (:mod:`emvwire.oda.sm`):

- the recommended curve ``sm2p256v1`` (:data:`SM2P256V1`, GB/T 32918.5-2017 §4), and any
  other short-Weierstrass curve over F_p given as a :class:`Curve` (the 256-bit test curve
  of GB/T 32918.2 Annex A is one, used by the known-answer tests);
- ``ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` (GB/T 32918.2 §5.5), ``ENTL``
  the bit length of ``ID`` in two bytes, with the default ``ID`` ``"1234567812345678"``
  (GM/T 0009-2012 §10, :data:`DEFAULT_ID`);
- signing (GB/T 32918.2 §6.1): ``e = SM3(ZA || M)``, ``k`` uniformly random in
  [1, n-1] from :mod:`secrets` (the standard's construction; a deterministic nonce
  in the manner of RFC 6979 is not part of it), ``r = (e + x1) mod n`` for
  ``(x1, y1) = kG``, ``s = (1 + d)^-1 (k - r d) mod n``;
- verification (§7.1): ``r, s`` in [1, n-1], ``t = (r + s) mod n`` not 0,
  ``(x1, y1) = sG + tP``, accept if ``(e + x1) mod n = r``;
- key generation (``d`` in [1, n-2], GB/T 32918.1 §6.1) and public keys as the
  uncompressed point ``04 || x || y`` (GB/T 32918.1 §4.2.9); a decoded point must lie
  on the curve and not be the point at infinity (GB/T 32918.1 §6.2.1: with cofactor 1,
  every such point has order n).

Signatures travel as ``r || s``, each of the curve's byte length (64 bytes on
sm2p256v1); :func:`signature_to_der` and :func:`signature_from_der` convert to and from
the ``SEQUENCE { r INTEGER, s INTEGER }`` of GM/T 0009 §7.3 that OpenSSL uses. SM3 is
``cryptography``'s (:func:`emvwire.crypto.sm.sm3`).

The point arithmetic uses Jacobian coordinates (``x = X/Z^2``, ``y = Y/Z^3``; doubling
with a = -3 on sm2p256v1, additions of a table point with Z = 1 shortened), a table
of ``2^i G`` for fixed-base multiplication and 4-bit windows for ``tP``.
It is NOT constant time, and cannot be in pure Python (integer operations take time
that depends on their values): the timing of a signature can leak about the nonce and
so the private key to someone who measures it closely. Who signs here is the issuer
or its personalisation (certificates) and the emulated card (fDDA's dynamic data),
both test and development roles; the terminal only verifies, with public data.
A production card signs in its secure element.

Known answers (tests): GB/T 32918.2 Annex A (test curve, ``ID`` ``ALICE123@YAHOO.COM``)
and GB/T 32918.5 / GM/T 0003.5 Annex A (sm2p256v1, the default ``ID``):

>>> key = Sm2PrivateKey(SM2P256V1, int(
...     "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8", 16))
>>> key.public.to_bytes().hex()[:18]
'0409f9df311e5421a1'
>>> key.public.verify(b"message digest", bytes.fromhex(
...     "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
...     "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"))
True
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from emvwire.crypto.sm import sm3
from emvwire.errors import CryptoError

__all__ = [
    "DEFAULT_ID",
    "SM2P256V1",
    "Curve",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "signature_from_der",
    "signature_to_der",
]

#: The default signer identity (GM/T 0009-2012 §10): the ASCII digits 1 to 8 twice.
DEFAULT_ID = b"1234567812345678"

#: A point in Jacobian coordinates; Z = 0 is the point at infinity.
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)


@dataclass(frozen=True, slots=True)
class Curve:
    """A curve ``y^2 = x^3 + a x + b`` over F_p with base point G of prime order n
    (cofactor 1, as SM2's curves have)."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", (self.p.bit_length() + 7) // 8)
        if not self.contains(self.gx, self.gy):
            raise CryptoError(f"{self.name}: the base point is not on the curve")

    def contains(self, x: int, y: int) -> bool:
        """Whether the affine point (x, y) has coordinates in F_p and is on the curve."""
        p = self.p
        return 0 <= x < p and 0 <= y < p and (y * y - (x * x * x + self.a * x + self.b)) % p == 0


#: sm2p256v1, the curve GB/T 32918.5-2017 §4 recommends (OID 1.2.156.10197.1.301).
SM2P256V1 = Curve(
    "sm2p256v1",
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)


# ---------------------------------------------------------------------------------------
# Point arithmetic (Jacobian coordinates).


def _double(c: Curve, pt: _Jacobian) -> _Jacobian:
    x, y, z = pt
    p = c.p
    if z == 0 or y == 0:
        return _INFINITY
    yy = y * y % p
    zz = z * z % p
    s = 4 * x * yy % p
    # On sm2p256v1 (a = -3): 3x^2 - 3z^4 = 3(x - z^2)(x + z^2), one product fewer.
    m = 3 * (x - zz) * (x + zz) % p if c.a == p - 3 else (3 * x * x + c.a * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    y3 = (m * (s - x3) - 8 * yy * yy) % p
    return x3, y3, 2 * y * z % p


def _add(c: Curve, p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    p = c.p
    z1z1 = z1 * z1 % p
    if z2 == 1:  # a table point, Z = 1: fewer multiplications
        u1, s1 = x1, y1
    else:
        z2z2 = z2 * z2 % p
        u1 = x1 * z2z2 % p
        s1 = y1 * z2 * z2z2 % p
    u2 = x2 * z1z1 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if h == 0:
        return _double(c, p1) if r == 0 else _INFINITY
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    return x3, y3, z1 * z2 * h % p


def _affine(c: Curve, pt: _Jacobian) -> tuple[int, int] | None:
    x, y, z = pt
    if z == 0:
        return None
    zinv = pow(z, -1, c.p)
    zinv2 = zinv * zinv % c.p
    return x * zinv2 % c.p, y * zinv2 * zinv % c.p


@functools.lru_cache(maxsize=4)
def _base_table(c: Curve) -> tuple[_Jacobian, ...]:
    """``2^i G`` for i below the bit length of n, normalised to Z = 1."""
    table: list[_Jacobian] = []
    pt: _Jacobian = (c.gx, c.gy, 1)
    for _ in range(c.n.bit_length()):
        xy = _affine(c, pt)
        assert xy is not None
        table.append((xy[0], xy[1], 1))
        pt = _double(c, pt)
    return tuple(table)


def _mul_base(c: Curve, k: int) -> _Jacobian:
    """``kG`` for 0 < k < n: one addition per set bit, no doublings."""
    acc = _INFINITY
    for i, pt in enumerate(_base_table(c)):
        if k >> i & 1:
            acc = _add(c, acc, pt)
    return acc


def _mul(c: Curve, k: int, pt: _Jacobian) -> _Jacobian:
    """``k * pt``, left to right in 4-bit windows (a table of ``0..15 * pt``)."""
    table = [_INFINITY, pt]
    for _ in range(14):
        table.append(_add(c, table[-1], pt))
    acc = _INFINITY
    for shift in range(((k.bit_length() + 3) // 4 - 1) * 4, -1, -4):
        for _ in range(4):
            acc = _double(c, acc)
        acc = _add(c, acc, table[k >> shift & 15])
    return acc


# ---------------------------------------------------------------------------------------
# Keys, signatures.


@dataclass(frozen=True, slots=True)
class Sm2PublicKey:
    """An SM2 public key: a point of ``curve`` other than infinity (checked)."""

    curve: Curve
    x: int
    y: int

    def __post_init__(self) -> None:
        if not self.curve.contains(self.x, self.y):
            raise CryptoError(f"the SM2 public key is not a point of {self.curve.name}")

    @classmethod
    def from_bytes(cls, data: bytes, curve: Curve = SM2P256V1) -> Sm2PublicKey:
        """Decode ``04 || x || y`` (or ``x || y``, the form in EMV-style certificates)."""
        data = bytes(data)
        size = curve.size
        if len(data) == 2 * size + 1 and data[0] == 0x04:
            data = data[1:]
        if len(data) != 2 * size:
            raise CryptoError(f"an SM2 public key is 04 || x || y, {2 * size + 1} bytes")
        return cls(curve, int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big"))

    def to_bytes(self, *, prefix: bool = True) -> bytes:
        """``04 || x || y`` (``x || y`` without the prefix), GB/T 32918.1 §4.2.9."""
        size = self.curve.size
        point = self.x.to_bytes(size, "big") + self.y.to_bytes(size, "big")
        return b"\x04" + point if prefix else point

    def za(self, uid: bytes = DEFAULT_ID) -> bytes:
        """``ZA`` for the signer identity ``uid`` (GB/T 32918.2 §5.5)."""
        if len(uid) >= 1 << 13:
            raise CryptoError("an SM2 signer identity is under 8192 bytes")
        c = self.curve
        parts = (c.a, c.b, c.gx, c.gy, self.x, self.y)
        return sm3(
            (8 * len(uid)).to_bytes(2, "big")
            + bytes(uid)
            + b"".join(v.to_bytes(c.size, "big") for v in parts)
        )

    def digest(self, message: bytes, uid: bytes = DEFAULT_ID) -> int:
        """``e = SM3(ZA || M)`` as an integer (GB/T 32918.2 §6.1 steps A1-A2)."""
        return int.from_bytes(sm3(self.za(uid) + bytes(message)), "big")

    def verify(self, message: bytes, signature: bytes, uid: bytes = DEFAULT_ID) -> bool:
        """Whether ``signature`` (``r || s``) signs ``message`` (GB/T 32918.2 §7.1).

        Anything malformed (wrong length, r or s out of [1, n-1], r + s = n) is
        ``False``, never an exception."""
        c = self.curve
        if type(signature) is not bytes or len(signature) != 2 * c.size:
            return False
        r = int.from_bytes(signature[: c.size], "big")
        s = int.from_bytes(signature[c.size :], "big")
        if not (0 < r < c.n and 0 < s < c.n):
            return False
        t = (r + s) % c.n
        if t == 0:
            return False
        point = _add(c, _mul_base(c, s), _mul(c, t, (self.x, self.y, 1)))
        xy = _affine(c, point)
        if xy is None:
            return False
        return (self.digest(message, uid) + xy[0]) % c.n == r

    def __repr__(self) -> str:
        return f"Sm2PublicKey({self.curve.name}, x={self.x:X})"


@dataclass(frozen=True, slots=True, repr=False)
class Sm2PrivateKey:
    """An SM2 private key ``d`` in [1, n-2]; its repr never shows ``d``."""

    curve: Curve
    d: int
    public: Sm2PublicKey = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.d < self.curve.n - 1:
            raise CryptoError("an SM2 private key is in [1, n-2]")
        xy = _affine(self.curve, _mul_base(self.curve, self.d))
        assert xy is not None
        object.__setattr__(self, "public", Sm2PublicKey(self.curve, *xy))

    @classmethod
    def generate(cls, curve: Curve = SM2P256V1) -> Sm2PrivateKey:
        """A new key, ``d`` uniformly random in [1, n-2] (GB/T 32918.1 §6.1)."""
        return cls(curve, 1 + secrets.randbelow(curve.n - 2))

    @classmethod
    def from_bytes(cls, data: bytes, curve: Curve = SM2P256V1) -> Sm2PrivateKey:
        """The key whose ``d`` is the big-endian ``data`` (the curve's byte length)."""
        if len(data) != curve.size:
            raise CryptoError(f"an SM2 private key is {curve.size} bytes")
        return cls(curve, int.from_bytes(data, "big"))

    def to_bytes(self) -> bytes:
        """``d``, big-endian, the curve's byte length."""
        return self.d.to_bytes(self.curve.size, "big")

    def sign(
        self,
        message: bytes,
        uid: bytes = DEFAULT_ID,
        *,
        nonce: Callable[[int], int] = secrets.randbelow,
    ) -> bytes:
        """``r || s`` over ``message`` (GB/T 32918.2 §6.1).

        ``nonce(n)`` draws ``k - 1`` (``k`` in [1, n-1]); it is :func:`secrets.randbelow`
        and is a parameter only so that the standard's worked examples, whose ``k`` is
        given, can be replayed."""
        c = self.curve
        e = self.public.digest(message, uid)
        d = self.d
        inv = pow(1 + d, -1, c.n)
        while True:
            k = 1 + nonce(c.n - 1)
            xy = _affine(c, _mul_base(c, k))
            assert xy is not None
            r = (e + xy[0]) % c.n
            if r == 0 or r + k == c.n:
                continue
            s = inv * (k - r * d) % c.n
            if s:
                return r.to_bytes(c.size, "big") + s.to_bytes(c.size, "big")

    def __repr__(self) -> str:
        return f"Sm2PrivateKey({self.curve.name}, <secret>)"


def signature_to_der(signature: bytes, curve: Curve = SM2P256V1) -> bytes:
    """``r || s`` as DER ``SEQUENCE { r, s }`` (GM/T 0009 §7.3, OpenSSL's form)."""
    if len(signature) != 2 * curve.size:
        raise CryptoError(f"an SM2 signature is r || s, {2 * curve.size} bytes")
    r = int.from_bytes(signature[: curve.size], "big")
    return encode_dss_signature(r, int.from_bytes(signature[curve.size :], "big"))


def signature_from_der(der: bytes, curve: Curve = SM2P256V1) -> bytes:
    """DER ``SEQUENCE { r, s }`` as ``r || s``; :class:`CryptoError` if it is not one or
    r or s does not fit."""
    try:
        r, s = decode_dss_signature(bytes(der))
    except ValueError:
        raise CryptoError("not a DER SM2 signature") from None
    limit = 1 << (8 * curve.size)
    if not (0 <= r < limit and 0 <= s < limit):
        raise CryptoError("an SM2 signature's r or s is too long")
    return r.to_bytes(curve.size, "big") + s.to_bytes(curve.size, "big")
