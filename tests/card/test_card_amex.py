"""The American Express card (card/amex.py): its cryptograms verify under pyemv, an
independent oracle, from the published test issuer master key; its IAD is CCD format
A; it answers GENERATE AC as Book 3 lets a card (never above the class asked); it has
no relay resistance command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pyemv = pytest.importorskip("pyemv")
from pyemv import ac as pyemv_ac  # noqa: E402
from pyemv import kd as pyemv_kd  # noqa: E402

from card.emv import EmvCard  # noqa: E402
from card.probe import CardProbe, TapRecord  # noqa: E402
from emvwire import dol  # noqa: E402
from emvwire.apdu import exchange_relay_resistance_data  # noqa: E402
from emvwire.crypto import CryptogramData, generate_arpc  # noqa: E402
from emvwire.profile import load_profile  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:(Two|Single)-key TripleDES:cryptography.utils.CryptographyDeprecationWarning"
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
IMK = bytes.fromhex(
    json.loads((FIXTURES / "issuer" / "test-master-keys.json").read_text())["schemes"]["amex"]["ac"]
)
APP = load_profile(FIXTURES / "cards" / "amex-card.json").applications[0]
#: The Book 2 §8.1.1 minimum set, in order (the card's CDOL1 holds them first).
MINIMUM = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)


def _card() -> EmvCard:
    return EmvCard(load_profile(FIXTURES / "cards" / "amex-card.json"))


def _oracle(tap: TapRecord) -> tuple[bytes, bytes]:
    """(session key, cryptogram) as pyemv computes them: option A master key, EMV
    common session key with R = ATC || 00*6, MAC algorithm 3 with padding method 2
    over the minimum set, AIP, ATC and the whole IAD (Book 2 §8.1.2, CCD)."""
    mk = pyemv_kd.derive_icc_mk_a(IMK, APP.pan, APP.psn)
    atc = tap.data[0x9F36]
    sk = pyemv_kd.derive_common_sk(mk, atc + bytes(6))
    values = dol.split(APP.data[0x8C], tap.cdol1_data)
    data = b"".join(values[t] for t in MINIMUM) + tap.data[0x82] + atc + tap.data[0x9F10]
    return sk, pyemv_ac.generate_ac(sk, data, pyemv_ac.PaddingType.EMV)


def test_the_profile_keys_are_option_a_of_the_15_digit_pan() -> None:
    assert len(APP.pan) == 15
    assert APP.keys.ac == pyemv_kd.derive_icc_mk_a(IMK, APP.pan, APP.psn)


def test_arqc_verifies_under_pyemv_and_the_iad_is_ccd_format_a() -> None:
    tap = CardProbe(_card()).tap(gen_ac=0x80)
    iad = tap.data[0x9F10]
    assert len(iad) == 32
    assert iad[:3] == bytes.fromhex("0FA501")  # length, CCI (format A, TDES), DKI
    assert iad[3] == 0xA2  # CVR: 2nd GEN AC not requested, ARQC, issuer auth not performed
    assert iad[16:] == b"\x0f" + bytes(15)
    assert tap.data[0x9F27] == b"\x80"
    sk, arqc = _oracle(tap)
    assert tap.data[0x9F26] == arqc
    # ARPC method 2 (Book 2 §8.2.2), both sides computed independently.
    csu = bytes.fromhex("00800000")
    values = dol.split(APP.data[0x8C], tap.cdol1_data)
    data = CryptogramData(
        tag_9f02=values[0x9F02], tag_9f03=values[0x9F03], tag_9f1a=values[0x9F1A],
        tag_95=values[0x95], tag_5f2a=values[0x5F2A], tag_9a=values[0x9A], tag_9c=values[0x9C],
        tag_9f37=values[0x9F37], tag_82=tap.data[0x82], tag_9f36=tap.data[0x9F36],
        tag_9f10=iad,
    )  # fmt: skip
    assert generate_arpc(0xA5, APP.keys.ac, data, arqc, csu=csu) == pyemv_ac.generate_arpc_2(
        sk, arqc, csu
    )


def test_a_tc_within_limits_then_an_aac_when_asked_each_verifying() -> None:
    card = _card()
    tap = CardProbe(card).tap(gen_ac=0x40)
    assert tap.data[0x9F27] == b"\x40"
    assert tap.data[0x9F10][3] == 0x92  # CVR: TC
    assert tap.data[0x9F26] == _oracle(tap)[1]
    card.power_on()
    tap = CardProbe(card).tap(gen_ac=0x00)
    assert tap.data[0x9F27] == b"\x00"
    assert tap.data[0x9F36] == b"\x00\x02"
    assert tap.data[0x9F26] == _oracle(tap)[1]


def test_a_tc_beyond_the_offline_amount_is_an_arqc() -> None:
    tap = CardProbe(_card()).tap({0x9F02: bytes.fromhex("000000006000")}, gen_ac=0x40)
    assert tap.data[0x9F27] == b"\x80"
    assert tap.data[0x9F10][5] & 0x20  # CVR byte 3: lower cumulative offline limit exceeded


def test_cda_signs_the_cryptogram_when_asked() -> None:
    tap = CardProbe(_card()).tap()  # P1 90: ARQC with CDA
    assert 0x9F4B in tap.data
    assert 0x9F26 not in tap.data
    assert tap.data[0x9F10][3] & 0x08  # CVR: CDA performed


def test_an_offline_only_reader_is_in_the_cvr() -> None:
    tap = CardProbe(_card()).tap({0x9F6E: bytes.fromhex("18E08003")}, gen_ac=0x40)
    assert tap.data[0x9F10][6] & 0x01  # CVR byte 4: unable to go online


def test_no_relay_resistance_command() -> None:
    probe = CardProbe(_card())
    probe.tap(gen_ac=0x80)
    assert probe.send(exchange_relay_resistance_data(bytes(4))).sw == 0x6D00
