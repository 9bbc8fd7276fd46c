"""The UnionPay card (card/unionpay.py): the qUICS decision at GET PROCESSING OPTIONS
(Visa's), its IAD, and its cryptograms under both versions: CVN 01 (TDES) verifies
under pyemv with option B master keys of the 19-digit PAN, CVN 04 (SM4) under
``cryptography``'s own SM4 and CMAC, both from the published test issuer master key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pyemv = pytest.importorskip("pyemv")
from cryptography.hazmat.primitives import cmac  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from pyemv import ac as pyemv_ac  # noqa: E402
from pyemv import kd as pyemv_kd  # noqa: E402

from card.emv import EmvCard  # noqa: E402
from card.probe import CardProbe, TapRecord  # noqa: E402
from emvwire import dol  # noqa: E402
from emvwire.crypto.kdf import option_b_y  # noqa: E402
from emvwire.profile import CardProfile, load_profile  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:(Two|Single)-key TripleDES:cryptography.utils.CryptographyDeprecationWarning"
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
IMK = bytes.fromhex(
    json.loads((FIXTURES / "issuer" / "test-master-keys.json").read_text())["schemes"]["unionpay"][
        "ac"
    ]
)
ONLINE = {0x9F66: bytes.fromhex("36804000")}  # TTQ: online cryptogram required
MINIMUM = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)


def _profile(name: str) -> CardProfile:
    return load_profile(FIXTURES / "cards" / f"{name}.json")


def _input(name: str, tap: TapRecord) -> bytes:
    app = _profile(name).applications[0]
    values = dol.split(app.pdol, tap.pdol_data)
    return (
        b"".join(values[t] for t in MINIMUM) + tap.data[0x82] + tap.data[0x9F36] + tap.data[0x9F10]
    )


def _sm4(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.SM4(key), modes.ECB()).encryptor().update(block)


def test_the_tdes_card_verifies_under_pyemv_with_option_b() -> None:
    app = _profile("unionpay-card").applications[0]
    assert (len(app.pan), app.cvn) == (19, 0x01)
    mk = pyemv_kd.derive_icc_mk_b(IMK, app.pan, app.psn)
    assert app.keys.ac == mk
    tap = CardProbe(EmvCard(_profile("unionpay-card"))).tap(ONLINE)
    iad = tap.data[0x9F10]
    assert (iad[:4], len(iad)) == (bytes.fromhex("07010103"), 8)
    assert iad[4] & 0x30 == 0x20  # CVR: ARQC
    sk = pyemv_kd.derive_common_sk(mk, tap.data[0x9F36] + bytes(6))
    expected = pyemv_ac.generate_ac(sk, _input("unionpay-card", tap), pyemv_ac.PaddingType.EMV)
    assert tap.data[0x9F26] == expected
    assert 0x9F6E not in tap.data  # no Visa form factor indicator


def test_the_sm4_phone_verifies_under_cryptographys_sm4() -> None:
    app = _profile("unionpay-phone").applications[0]
    assert app.cvn == 0x04
    mk = _sm4(IMK, bytes(8) + option_b_y(app.pan, app.psn))
    assert app.keys.ac == mk
    tap = CardProbe(EmvCard(_profile("unionpay-phone"))).tap(ONLINE)
    assert tap.data[0x9F10][:3] == bytes.fromhex("070104")
    sk = _sm4(mk, tap.data[0x9F36] + b"\xf0" + bytes(13))
    mac = cmac.CMAC(algorithms.SM4(sk))
    mac.update(_input("unionpay-phone", tap))
    assert tap.data[0x9F26] == mac.finalize()[:8]


def test_a_tc_within_limits_carries_fdda_with_the_signed_ctq() -> None:
    tap = CardProbe(EmvCard(_profile("unionpay-card"))).tap()
    assert tap.data[0x9F27] == b"\x40"
    assert 0x9F4B in tap.data  # the SDAD
    assert tap.data[0x9F69][5:7] == tap.data[0x9F6C]  # 9F69 carries the CTQ it signs
