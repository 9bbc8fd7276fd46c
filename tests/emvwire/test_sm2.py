"""SM2 signatures (emvwire/crypto/sm2.py).

Known answers of the standards: GB/T 32918.2 Annex A on its 256-bit test curve (ID
``ALICE123@YAHOO.COM``) and GB/T 32918.5 / GM/T 0003.5 Annex A on sm2p256v1 (the
default ID): the public key, ZA, the digest e and (r, s) for the published nonce k.
Against the system's OpenSSL 3 both ways (its SM2 signs, ours verifies; ours signs with
a key of our own, its pkeyutl verifies). A property test: a round trip verifies and any
changed bit of message or signature fails. Malformed signatures and points are refused
cleanly: ``False`` from verify, :class:`CryptoError` when a key is decoded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emvwire.crypto.sm import sm3
from emvwire.crypto.sm2 import (
    SM2P256V1,
    Curve,
    Sm2PrivateKey,
    Sm2PublicKey,
    signature_from_der,
    signature_to_der,
)
from emvwire.errors import CryptoError

H = bytes.fromhex
MESSAGE = b"message digest"

#: GB/T 32918.2-2016 Annex A (A.2): the Fp-256 test curve.
TEST_CURVE = Curve(
    "GB/T 32918.2 A.2",
    p=0x8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3,
    a=0x787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498,
    b=0x63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A,
    gx=0x421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D,
    gy=0x0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2,
    n=0x8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7,
)
#: (curve, ID, d, public key x||y or None, ZA or None, k, r || s)
VECTORS = [
    (
        TEST_CURVE,
        b"ALICE123@YAHOO.COM",
        "128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263",
        "0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A"
        "7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857",
        None,
        "6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F",
        "40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1"
        "6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7",
    ),
    (
        SM2P256V1,
        b"1234567812345678",
        "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
        "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
        "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
        "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3",
        "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21",
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
        "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
    ),
]
#: e = SM3(ZA || M) of the sm2p256v1 example (GM/T 0003.5 Annex A).
E_SM2P256V1 = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
#: DER prefix of a SubjectPublicKeyInfo for an sm2p256v1 point: id-ecPublicKey with the
#: named curve 1.2.156.10197.1.301 (RFC 5480 layout), then the 65-byte point.
SPKI_PREFIX = H("3059301306072A8648CE3D020106082A811CCF5501822D034200")


@pytest.mark.parametrize(("curve", "uid", "d", "pub", "za", "k", "sig"), VECTORS)
def test_known_answers(
    curve: Curve, uid: bytes, d: str, pub: str, za: str | None, k: str, sig: str
) -> None:
    key = Sm2PrivateKey(curve, int(d, 16))
    assert key.public.to_bytes() == b"\x04" + H(pub)
    if za is not None:
        assert key.public.za(uid) == H(za)
    assert key.sign(MESSAGE, uid, nonce=lambda n: int(k, 16) - 1) == H(sig)
    assert key.public.verify(MESSAGE, H(sig), uid)
    assert not key.public.verify(MESSAGE, H(sig), uid + b"1")  # another ID, another ZA
    assert not key.public.verify(b"message digesT", H(sig), uid)


def test_digest_known_answer_and_sm3() -> None:
    key = Sm2PrivateKey(SM2P256V1, int(VECTORS[1][2], 16))
    assert key.public.digest(MESSAGE) == int(E_SM2P256V1, 16)
    assert key.public.digest(MESSAGE) == int.from_bytes(sm3(key.public.za() + MESSAGE), "big")


def test_keys_encode_and_hide_the_secret() -> None:
    key = Sm2PrivateKey.generate()
    assert Sm2PrivateKey.from_bytes(key.to_bytes()).public == key.public
    assert Sm2PublicKey.from_bytes(key.public.to_bytes()) == key.public
    assert Sm2PublicKey.from_bytes(key.public.to_bytes(prefix=False)) == key.public
    assert f"{key.d:X}" not in repr(key)
    assert "secret" in repr(key)
    for d in (0, SM2P256V1.n - 1, SM2P256V1.n):
        with pytest.raises(CryptoError, match=r"\[1, n-2\]"):
            Sm2PrivateKey(SM2P256V1, d)


def test_der_form_round_trips_and_refuses_junk() -> None:
    sig = H(VECTORS[1][6])
    der = signature_to_der(sig)
    assert der[0] == 0x30
    assert signature_from_der(der) == sig
    for junk in (b"", b"\x30\x00", sig, der[:-1]):
        with pytest.raises(CryptoError):
            signature_from_der(junk)


# ---------------------------------------------------------------------------------------
# OpenSSL 3 both ways.

_DISTID = "distid:1234567812345678"


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("no openssl CLI")
    probe = subprocess.run([exe, "genpkey", "-algorithm", "SM2"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this openssl CLI has no SM2")
    return exe


def _pkeyutl(exe: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [exe, "pkeyutl", *args, "-rawin", "-digest", "sm3", "-pkeyopt", _DISTID],
        capture_output=True,
        check=False,
    )


def test_openssl_signs_we_verify(tmp_path: Path) -> None:
    exe = _openssl()
    key_pem, msg, sig = tmp_path / "k.pem", tmp_path / "m", tmp_path / "sig"
    subprocess.run([exe, "genpkey", "-algorithm", "SM2", "-out", key_pem], check=True)
    der_key = subprocess.run(
        [exe, "pkey", "-in", key_pem, "-pubout", "-outform", "DER"], capture_output=True, check=True
    ).stdout
    public = Sm2PublicKey.from_bytes(der_key[-65:])
    msg.write_bytes(MESSAGE)
    done = _pkeyutl(exe, "-sign", "-in", str(msg), "-inkey", str(key_pem), "-out", str(sig))
    assert done.returncode == 0, done.stderr
    rs = signature_from_der(sig.read_bytes())
    assert public.verify(MESSAGE, rs)
    assert not public.verify(MESSAGE + b".", rs)


def test_we_sign_openssl_verifies(tmp_path: Path) -> None:
    exe = _openssl()
    key = Sm2PrivateKey.generate()
    pub_der, msg, sig = tmp_path / "pub.der", tmp_path / "m", tmp_path / "sig"
    pub_der.write_bytes(SPKI_PREFIX + key.public.to_bytes())
    msg.write_bytes(MESSAGE)
    sig.write_bytes(signature_to_der(key.sign(MESSAGE)))
    args = ("-verify", "-pubin", "-keyform", "DER", "-inkey", str(pub_der), "-in", str(msg))
    done = _pkeyutl(exe, *args, "-sigfile", str(sig))
    assert done.returncode == 0, done.stderr
    assert b"Verified Successfully" in done.stdout
    msg.write_bytes(MESSAGE + b".")
    assert _pkeyutl(exe, *args, "-sigfile", str(sig)).returncode != 0


# ---------------------------------------------------------------------------------------
# Properties and malformed input.

_KEY = Sm2PrivateKey.generate()


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=64), bit=st.integers(min_value=0))
def test_round_trip_and_any_flipped_bit_fails(message: bytes, bit: int) -> None:
    sig = _KEY.sign(message)
    assert _KEY.public.verify(message, sig)
    flipped = bytearray(sig)
    flipped[bit // 8 % 64] ^= 1 << bit % 8
    assert not _KEY.public.verify(message, bytes(flipped))
    if message:
        changed = bytearray(message)
        changed[bit // 8 % len(message)] ^= 1 << bit % 8
        assert not _KEY.public.verify(bytes(changed), sig)


def _rs(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_malformed_signatures_are_refused() -> None:
    n = SM2P256V1.n
    sig = _KEY.sign(MESSAGE)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    bad: list[object] = [
        b"", sig[:-1], sig + b"\x00", bytearray(sig), "not bytes", None,
        _rs(0, s), _rs(r, 0), _rs(n, s), _rs(r, n), _rs(r + n, s) if r + n < 1 << 256 else b"",
        _rs(r, n - r),  # t = r + s = n
        b"\xff" * 64, bytes(64),
    ]  # fmt: skip
    for candidate in bad:
        assert _KEY.public.verify(MESSAGE, candidate) is False  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=64, max_size=64))
def test_random_signatures_never_raise(candidate: bytes) -> None:
    assert _KEY.public.verify(MESSAGE, candidate) is False


def test_malformed_points_are_refused() -> None:
    c = SM2P256V1
    good = _KEY.public.to_bytes()
    off_curve = good[:-1] + bytes((good[-1] ^ 1,))
    too_big = b"\x04" + (c.p + _KEY.public.x).to_bytes(33, "big")[1:] + good[33:]
    for data in (
        off_curve,
        b"\x04" + bytes(64),  # (0, 0), where infinity is often written
        b"\x00",  # SEC 1's encoding of the point at infinity
        b"\x02" + good[1:33],  # compressed: not accepted
        b"\x05" + good[1:],
        good[:-1],
        too_big,
        b"\x04" + c.p.to_bytes(32, "big") + good[33:],
    ):
        with pytest.raises(CryptoError, match="SM2 public key"):
            Sm2PublicKey.from_bytes(data)
    with pytest.raises(CryptoError):
        Sm2PublicKey(c, c.gx, c.gy + c.p)
