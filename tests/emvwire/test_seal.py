"""Sealed boxes (emvwire.seal): HPKE base mode (RFC 9180) checked against an
independent implementation of the RFC that first reproduces its Appendix A.1 vector,
RFC 7748 key known answers, and every way a box can fail to open."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from emvwire.seal import OVERHEAD, SealError, generate_keypair, open_box, public_key_of, seal

# RFC 7748 §6.1: Alice's and Bob's X25519 keys.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
TRACK2 = bytes.fromhex("4761739001010010D25122010000000000000F")

# RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base.
A1_INFO = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")
A1_SK_E = bytes.fromhex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
A1_SK_R = bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
A1_PK_R = bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
A1_ENC = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
A1_SHARED = bytes.fromhex("fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc")
A1_KEY = bytes.fromhex("4531685d41d65f03dc48f6b8302c05b0")
A1_NONCE = bytes.fromhex("56d890e5accaaf011cff4b7d")
A1_PT = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")
A1_AAD = bytes.fromhex("436f756e742d30")
A1_CT = bytes.fromhex(
    "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"
)


# --- an independent RFC 9180 base mode (the test's oracle) --------------------------------


def _extract(salt: bytes, ikm: bytes) -> bytes:
    h = hmac.HMAC(salt or bytes(32), hashes.SHA256())
    h.update(ikm)
    return h.finalize()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        h = hmac.HMAC(prk, hashes.SHA256())
        h.update(block + info + bytes([counter]))
        block = h.finalize()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _schedule(sk_e: bytes, pk_r: bytes, info: bytes, nk: int, aead_id: int) -> tuple[bytes, ...]:
    """(enc, shared secret, key, base nonce) of SetupBaseS (RFC 9180 §4.1, §5.1)."""
    ephemeral = X25519PrivateKey.from_private_bytes(sk_e)
    enc = _raw(ephemeral.public_key())
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_r))
    kem = b"KEM" + struct.pack(">H", 0x0020)
    eae_prk = _labeled_extract(kem, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem, eae_prk, b"shared_secret", enc + pk_r, 32)
    suite = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, aead_id)
    psk_id_hash = _labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", context, nk)
    nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)
    return enc, shared, key, nonce


def oracle_seal(sk_e: bytes, pk_r: bytes, info: bytes, plaintext: bytes) -> bytes:
    """A box as RFC 9180 base mode makes it with AES-256-GCM and an empty AAD."""
    enc, _, key, nonce = _schedule(sk_e, pk_r, info, 32, 0x0002)
    return enc + AESGCM(key).encrypt(nonce, plaintext, b"")


def oracle_open(sk_r: bytes, box: bytes, info: bytes) -> bytes:
    """The plaintext of a box, by the oracle (RFC 9180 §4.1 DHKEM Decap)."""
    enc, body = box[:32], box[32:]
    recipient = X25519PrivateKey.from_private_bytes(sk_r)
    dh = recipient.exchange(X25519PublicKey.from_public_bytes(enc))
    pk_r = _raw(recipient.public_key())
    kem = b"KEM" + struct.pack(">H", 0x0020)
    shared = _labeled_expand(kem, _labeled_extract(kem, b"", b"eae_prk", dh),
                             b"shared_secret", enc + pk_r, 32)  # fmt: skip
    suite = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, 0x0002)
    context = (b"\x00" + _labeled_extract(suite, b"", b"psk_id_hash", b"")
               + _labeled_extract(suite, b"", b"info_hash", info))  # fmt: skip
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", context, 32)
    nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, body, b"")


# --- the tests ----------------------------------------------------------------------------


def test_the_oracle_reproduces_rfc_9180_a_1() -> None:
    enc, shared, key, nonce = _schedule(A1_SK_E, A1_PK_R, A1_INFO, 16, 0x0001)
    assert public_key_of(A1_SK_R) == A1_PK_R
    assert (enc, shared, key, nonce) == (A1_ENC, A1_SHARED, A1_KEY, A1_NONCE)
    assert AESGCM(key).encrypt(nonce, A1_PT, A1_AAD) == A1_CT


def test_public_key_known_answer() -> None:
    assert public_key_of(ALICE_PRIVATE) == ALICE_PUBLIC
    assert public_key_of(BOB_PRIVATE) == BOB_PUBLIC


def test_a_box_made_by_the_rfc_opens_and_ours_opens_by_the_rfc() -> None:
    made_by_rfc = oracle_seal(ALICE_PRIVATE, BOB_PUBLIC, b"G1:7", TRACK2)
    assert made_by_rfc[:32] == ALICE_PUBLIC  # enc is the ephemeral public key
    assert open_box(BOB_PRIVATE, made_by_rfc, b"G1:7") == TRACK2
    ours = seal(BOB_PUBLIC, TRACK2, b"G1:7")
    assert len(ours) == len(TRACK2) + OVERHEAD
    assert oracle_open(BOB_PRIVATE, ours, b"G1:7") == TRACK2


def test_round_trip_with_fresh_keys_is_randomised() -> None:
    private, public = generate_keypair()
    one, two = seal(public, TRACK2, b"x"), seal(public, TRACK2, b"x")
    assert one[:32] != two[:32]
    assert one[32:] != two[32:]
    assert open_box(private, one, b"x") == open_box(private, two, b"x") == TRACK2


@pytest.mark.parametrize("where", [0, 33, 40, -1])
def test_altered_box_does_not_open(where: int) -> None:
    private, public = generate_keypair()
    box = bytearray(seal(public, TRACK2, b"ctx"))
    box[where] ^= 0x01
    with pytest.raises(SealError, match="does not open"):
        open_box(private, bytes(box), b"ctx")


def test_wrong_key_context_or_size_is_refused() -> None:
    private, public = generate_keypair()
    other, _ = generate_keypair()
    box = seal(public, TRACK2, b"G1:1")
    with pytest.raises(SealError):
        open_box(other, box, b"G1:1")
    with pytest.raises(SealError):
        open_box(private, box, b"G1:2")  # a box moved to another tap
    with pytest.raises(SealError, match="at least"):
        open_box(private, box[: OVERHEAD - 1])
    with pytest.raises(SealError, match="32 bytes"):
        seal(public[:31], TRACK2)
    with pytest.raises(SealError, match="32 bytes"):
        open_box(private[:5], box)
    with pytest.raises(SealError):
        seal(bytes(32), TRACK2)  # a low-order point
