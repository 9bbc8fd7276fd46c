"""Coverage-guided fuzz target for emvwire's decoders (atheris / libFuzzer).

Run for a set time (seconds) with ``scripts/fuzz SECONDS``, or directly::

    .venv/bin/python fuzz/fuzz_emvwire.py -max_total_time=60 CORPUS_DIR

The first input byte picks a decoder; the rest is its input. Every decoder that takes
bytes from a card or a terminal is covered: BER-TLV (and re-encoding what decoded),
DOL parsing and splitting, C-APDU and R-APDU decoding, AFL parsing, the TLV dump,
certificate recovery (RSA, and SM2 with its signed dynamic data and public key
decoding), and the EMVCo QR code decoders (merchant-presented text and
consumer-presented Base64; what decodes must encode back to exactly its input). The
only exceptions allowed out are emvwire's own (``EmvWireError`` and subclasses);
anything else is a crash that libFuzzer reports with the input that caused it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date

import atheris

with atheris.instrument_imports():
    from emvwire import apdu, dol, dump, oda, tlv
    from emvwire.crypto.sm2 import SM2P256V1, Sm2PublicKey
    from emvwire.errors import EmvWireError
    from emvwire.qr import ConsumerPresentedCode, MerchantPresentedCode

_CA = oda.CaKey(
    rid=bytes.fromhex("A000000003"),
    index=0x01,
    modulus=bytes.fromhex("C0" + "5A" * 95 + "7B"),
    exponent=3,
)
_TODAY = date(2026, 1, 1)
_SM2_CA = oda.Sm2CaKey(
    rid=bytes.fromhex("A000000333"),
    index=0xE8,
    public=Sm2PublicKey(SM2P256V1, SM2P256V1.gx, SM2P256V1.gy),
)
_SM2_ICC = oda.Sm2IccKey(_SM2_CA.public, "6258020000000000012", _TODAY, b"\x00\x00\x01")


def _tlv(data: bytes) -> None:
    for obj in tlv.decode(data):
        if tlv.decode(obj.encode()) != [obj]:
            raise AssertionError(f"re-encoding changed {obj!r}")


def _dol(data: bytes) -> None:
    cut = data[0] if data else 0
    entries = dol.parse(data[1 : 1 + cut])
    dol.split(data[1 : 1 + cut], data[1 + cut :])
    dol.build(data[1 : 1 + cut], {e.tag: data[:4] for e in entries})


def _apdu(data: bytes) -> None:
    apdu.CApdu.decode(data)
    apdu.RApdu.decode(data)


def _afl(data: bytes) -> None:
    apdu.parse_afl(data)


def _dump(data: bytes) -> None:
    text = dump.dump(data)
    if not isinstance(text, str):
        raise AssertionError("dump returned no text")


def _certificate(data: bytes) -> None:
    oda.recover_issuer_key(_CA, data, b"", b"\x03", pan="4761739001010010", today=_TODAY)


def _sm2(data: bytes) -> None:
    """An SM2 issuer certificate, signed dynamic data and a public key: refused with
    an emvwire error (a signature with r or s out of range, a point off the curve)."""
    oda.recover_sm2_issuer_key(_SM2_CA, data, "6258020000000000012", _TODAY)
    Sm2PublicKey.from_bytes(data)
    txn = {"unpredictable_number": data[:4].ljust(4, b"\x00"), "amount_authorised": bytes(6),
           "currency_code": b"\x01\x56", "card_auth_data": b"\x01" + bytes(6)}  # fmt: skip
    oda.verify_sm2_fdda(_SM2_ICC, data, **txn)


def _qr_mpm(data: bytes) -> None:
    code = MerchantPresentedCode.decode(data)
    if code.encode().encode("utf-8") != data:
        raise AssertionError("a merchant-presented code did not encode back to its input")


def _qr_cpm(data: bytes) -> None:
    code = ConsumerPresentedCode.decode(data)
    if code.encode().encode("ascii") != data:
        raise AssertionError("a consumer-presented code did not encode back to its input")


_TARGETS: tuple[Callable[[bytes], None], ...] = (
    _tlv,
    _dol,
    _apdu,
    _afl,
    _dump,
    _certificate,
    _qr_mpm,
    _qr_cpm,
    _sm2,
)


def one_input(data: bytes) -> None:
    """Feed ``data[1:]`` to the decoder ``data[0]`` picks."""
    if not data:
        return
    target = _TARGETS[data[0] % len(_TARGETS)]
    try:
        target(data[1:])
    except EmvWireError:
        return


def main() -> None:
    """Entry point: libFuzzer options come from the command line."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
