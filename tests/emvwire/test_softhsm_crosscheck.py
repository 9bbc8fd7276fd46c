"""emvwire's key derivation beside an HSM's: SoftHSM through PKCS#11.

An issuer keeps its master keys in an HSM and derives ICC keys inside it with
CKM_DES3_ECB_ENCRYPT_DATA (the derived key is 3DES-ECB(IMK, data) with odd parity).
The derived keys never leave the token, so the comparison is by key check value.
This pins emvwire's option A and common session key derivation to an independent
implementation, and is the ground the PKCS#11 key store of the issuer stands on.
"""

from __future__ import annotations

import ctypes
import random
import struct
from typing import Any

import pytest

from emvwire.crypto.des import kcv
from emvwire.crypto.kdf import derive_common_sk, derive_icc_mk_a, option_a_y

pytestmark = pytest.mark.hsm

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def _derive_in_hsm(base: Any, data: bytes) -> Any:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism

    # python-pkcs11 builds no CK_DES_CBC... / KEY_DERIVATION_STRING_DATA parameter for
    # this mechanism: pass {pData, ulLen} ourselves (wrong bytes make SoftHSM exit(5)).
    buf = ctypes.create_string_buffer(data, len(data))
    param = struct.pack("PL", ctypes.addressof(buf), len(data))
    key = base.derive_key(
        KeyType.DES2,
        128,
        mechanism=Mechanism.DES3_ECB_ENCRYPT_DATA,
        mechanism_param=param,
        template={
            Attribute.VALUE_LEN: pkcs11.constants.DEFAULT,
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.ENCRYPT: True,
            Attribute.DERIVE: True,
        },
    )
    del buf
    return key


def _hsm_kcv(key: Any) -> bytes:
    from pkcs11 import Mechanism

    return bytes(key.encrypt(bytes(8), mechanism=Mechanism.DES3_ECB))[:3]


@pytest.fixture
def hsm_imk(softhsm: dict[str, str]) -> Any:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    lib = pkcs11.lib(softhsm["module"])
    token = lib.get_token(token_label=softhsm["label"])
    with token.open(rw=True, user_pin=softhsm["pin"]) as session:
        yield session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.DES3,
                Attribute.VALUE: IMK + IMK[:8],
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.DERIVE: True,
                Attribute.ENCRYPT: True,
            }
        )


def test_published_vector_inside_the_hsm(hsm_imk: Any) -> None:
    # pyemv tests/test_ac_hsm.py: IMK KCV 08D7, PAN 9901234567890123 PSN 45 -> ICC MK 1DA5.
    assert _hsm_kcv(hsm_imk)[:2] == bytes.fromhex("08D7")
    y = option_a_y("9901234567890123", "45")
    icc = _derive_in_hsm(hsm_imk, y + bytes(b ^ 0xFF for b in y))
    assert _hsm_kcv(icc)[:2] == bytes.fromhex("1DA5")
    assert _hsm_kcv(icc) == kcv(derive_icc_mk_a(IMK, "9901234567890123", "45"))
    # Session key for R = 1234567890123456 (Book 2 A1.3.1): SK KCV 0995.
    r = bytes.fromhex("1234567890123456")
    sk = _derive_in_hsm(icc, r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:])
    assert _hsm_kcv(sk)[:2] == bytes.fromhex("0995")


def test_random_cards_derive_alike(hsm_imk: Any) -> None:
    rng = random.Random(20261123)
    for _ in range(40):
        # Option A covers PANs of up to 16 digits (Book 2 A1.4.1).
        pan = "".join(rng.choice("0123456789") for _ in range(rng.randint(12, 16)))
        psn = f"{rng.randrange(100):02d}"
        y = option_a_y(pan, psn)
        icc = _derive_in_hsm(hsm_imk, y + bytes(b ^ 0xFF for b in y))
        soft_icc = derive_icc_mk_a(IMK, pan, psn)
        assert _hsm_kcv(icc) == kcv(soft_icc)
        r = rng.randrange(0x10000).to_bytes(2, "big") + bytes(6)  # ATC || 00*6
        sk = _derive_in_hsm(icc, r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:])
        assert _hsm_kcv(sk) == kcv(derive_common_sk(soft_icc, r))
