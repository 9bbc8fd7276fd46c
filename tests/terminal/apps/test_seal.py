"""Sealed boxes (terminal.apps.seal): known answers from RFC 7748 §6.1, and every way a
box can fail to open."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from terminal.apps.seal import OVERHEAD, SealError, generate_keypair, open_box, public_key_of, seal

# RFC 7748 §6.1: Alice's and Bob's X25519 keys and their shared secret.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
TRACK2 = bytes.fromhex("4761739001010010D25122010000000000000F")
NONCE = bytes(range(12))
# The box of TRACK2 to Bob with Alice's key as the ephemeral one (regression vector).
BOX = bytes.fromhex(
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    "000102030405060708090a0b"
    "2e94cb49ad45534e4c3c77d20ff04d460d6eada12a2b68c04b87554dec3aaeb7d15c46"
)


def test_public_key_known_answer() -> None:
    assert public_key_of(ALICE_PRIVATE) == ALICE_PUBLIC
    assert public_key_of(BOB_PRIVATE) == BOB_PUBLIC


def test_box_follows_the_construction() -> None:
    box = seal(BOB_PUBLIC, TRACK2, b"G1:7", ephemeral_key=ALICE_PRIVATE, nonce=NONCE)
    assert box == BOX
    assert len(box) == len(TRACK2) + OVERHEAD
    # Rebuilt from the RFC's shared secret, independently of the module.
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"tapstack seal v1" + ALICE_PUBLIC + BOB_PUBLIC,
    ).derive(SHARED)
    assert AESGCM(key).decrypt(NONCE, box[44:], b"G1:7") == TRACK2
    assert open_box(BOB_PRIVATE, box, b"G1:7") == TRACK2


def test_round_trip_with_fresh_keys_is_randomised() -> None:
    private, public = generate_keypair()
    one, two = seal(public, TRACK2, b"x"), seal(public, TRACK2, b"x")
    assert one[:32] != two[:32]
    assert one[44:] != two[44:]
    assert open_box(private, one, b"x") == open_box(private, two, b"x") == TRACK2


@pytest.mark.parametrize("where", [0, 33, 50, -1])
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
    with pytest.raises(SealError, match="unusable"):
        seal(bytes(32), TRACK2)  # a low-order point
