"""emvwire.crypto against pyemv (a test oracle only) on seeded random inputs.

For every CVN pyemv implements: ICC master key derivation, session keys, ARQC and
ARPC agree on a few thousand random transactions. Also Option A/B derivation on
random PANs of 12 to 19 digits, common and Mastercard session keys, and the MAC.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

pyemv = pytest.importorskip("pyemv")
from pyemv import ac as pyemv_ac  # noqa: E402
from pyemv import cvn as pyemv_cvn  # noqa: E402
from pyemv import kd as pyemv_kd  # noqa: E402
from pyemv import mac as pyemv_mac  # noqa: E402

from emvwire.crypto import (  # noqa: E402
    CryptogramData,
    Cvn,
    arpc_method_1,
    arpc_method_2,
    derive_ac_session_key,
    derive_common_sk,
    derive_icc_mk_a,
    derive_icc_mk_b,
    derive_mastercard_sk,
    generate_arpc,
    generate_arqc,
    mac_iso9797_alg3,
    verify_arqc,
)

# pyemv keys TripleDES with 8- and 16-byte keys, which cryptography >= 47 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:(Two|Single)-key TripleDES:cryptography.utils.CryptographyDeprecationWarning"
)

N_PER_CVN = 3000
PYEMV_CLASSES: dict[Cvn, Any] = {
    Cvn.VISA_10: pyemv_cvn.VisaCVN10,
    Cvn.VISA_18: pyemv_cvn.VisaCVN18,
    Cvn.VISA_22: pyemv_cvn.VisaCVN22,
    Cvn.MASTERCARD_16: pyemv_cvn.MasterCardCVN16,
    Cvn.MASTERCARD_17: pyemv_cvn.MasterCardCVN17,
    Cvn.MASTERCARD_20: pyemv_cvn.MasterCardCVN20,
    Cvn.MASTERCARD_21: pyemv_cvn.MasterCardCVN21,
}


def _pan(rng: random.Random, lo: int = 12, hi: int = 19) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(lo, hi)))


def _data(rng: random.Random, cvn: Cvn) -> CryptogramData:
    b = rng.randbytes
    if cvn in (Cvn.VISA_18, Cvn.VISA_22):
        iad = b(rng.choice((7, 32)))
    elif cvn is Cvn.VISA_10:
        iad = b(7)
    else:
        iad = b(18)
    return CryptogramData(
        tag_9f02=b(6),
        tag_9f03=b(6),
        tag_9f1a=b(2),
        tag_95=b(5),
        tag_5f2a=b(2),
        tag_9a=b(3),
        tag_9c=b(1),
        tag_9f37=b(4),
        tag_82=b(2),
        tag_9f36=b(2),
        tag_9f10=iad,
    )


def _pyemv_ac(card: Any, cvn: Cvn, d: CryptogramData, cvr: bytes, counters: bytes) -> bytes:
    common = {
        "tag_9f02": d.tag_9f02,
        "tag_9f03": d.tag_9f03,
        "tag_9f1a": d.tag_9f1a,
        "tag_95": d.tag_95,
        "tag_5f2a": d.tag_5f2a,
        "tag_9a": d.tag_9a,
        "tag_9c": d.tag_9c,
        "tag_9f37": d.tag_9f37,
        "tag_82": d.tag_82,
        "tag_9f36": d.tag_9f36,
    }
    if cvn in (Cvn.VISA_18, Cvn.VISA_22):
        return bytes(card.generate_ac(**common, tag_9f10=d.tag_9f10))
    if cvn in (Cvn.MASTERCARD_17, Cvn.MASTERCARD_21):
        return bytes(card.generate_ac(**common, cvr=cvr, counters=counters))
    return bytes(card.generate_ac(**common, cvr=cvr))


def _pyemv_arpc(card: Any, cvn: Cvn, d: CryptogramData, arqc: bytes, resp: bytes) -> bytes:
    if cvn in (Cvn.VISA_18, Cvn.VISA_22):
        return bytes(card.generate_arpc(arqc, d.tag_9f36, resp))
    if cvn in (Cvn.MASTERCARD_20, Cvn.MASTERCARD_21):
        return bytes(card.generate_arpc(arqc, d.tag_9f36, resp))
    return bytes(card.generate_arpc(arqc, resp))


@pytest.mark.parametrize("cvn", list(PYEMV_CLASSES), ids=lambda c: c.name)
def test_cvn_matches_pyemv(cvn: Cvn) -> None:
    rng = random.Random(f"tapstack-{cvn.name}")
    cls = PYEMV_CLASSES[cvn]
    card = None
    mk = b""
    for i in range(N_PER_CVN):
        if i % 200 == 0:  # a new card every 200 transactions
            imk = rng.randbytes(16)
            pan, psn = _pan(rng), f"{rng.randint(0, 99):02d}"
            card = cls(imk, imk, imk, pan, psn)
            derive = derive_icc_mk_b if cvn in (Cvn.VISA_18, Cvn.VISA_22) else derive_icc_mk_a
            mk = derive(imk, pan, psn)
            assert mk == card.icc_mk_ac
        d = _data(rng, cvn)
        cvr = rng.randbytes(4 if cvn is Cvn.VISA_10 else 6)
        counters = rng.randbytes(8)
        ours_data = CryptogramData(**{**_fields(d), "cvr": cvr, "counters": counters})
        arqc = generate_arqc(cvn, mk, ours_data)
        assert arqc == _pyemv_ac(card, cvn, d, cvr, counters), i
        verify_arqc(cvn, mk, ours_data, arqc)
        if cvn in (Cvn.VISA_18, Cvn.VISA_22):
            resp = rng.randbytes(4)
            ours = generate_arpc(cvn, mk, ours_data, arqc, csu=resp)
        else:
            resp = rng.randbytes(2)
            ours = generate_arpc(cvn, mk, ours_data, arqc, arc=resp)
        assert ours == _pyemv_arpc(card, cvn, d, arqc, resp), i


def _fields(d: CryptogramData) -> dict[str, bytes]:
    names = ("tag_9f02", "tag_9f03", "tag_9f1a", "tag_95", "tag_5f2a", "tag_9a", "tag_9c")
    names += ("tag_9f37", "tag_82", "tag_9f36", "tag_9f10")
    return {n: getattr(d, n) for n in names}


def test_session_keys_match_pyemv() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        mk = rng.randbytes(16)
        r = rng.randbytes(8)
        assert derive_common_sk(mk, r) == pyemv_kd.derive_common_sk(mk, r)
        atc, un = rng.randbytes(2), rng.randbytes(4)
        assert derive_mastercard_sk(mk, atc, un) == pyemv_kd.derive_common_sk(
            mk, atc + bytes(2) + un
        )
        d = _data(rng, Cvn.MASTERCARD_16)
        d = CryptogramData(**{**_fields(d), "tag_9f36": atc, "tag_9f37": un})
        assert derive_ac_session_key(Cvn.MASTERCARD_16, mk, d) == derive_mastercard_sk(mk, atc, un)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(derive_icc_mk_a, pyemv_kd.derive_icc_mk_a), (derive_icc_mk_b, pyemv_kd.derive_icc_mk_b)],
    ids=["option_a", "option_b"],
)
def test_master_key_derivation_matches_pyemv(
    ours: Callable[[bytes, str, str], bytes], theirs: Callable[[bytes, str, str], bytes]
) -> None:
    rng = random.Random(ours.__name__)
    for _ in range(3000):
        imk = rng.randbytes(16)
        pan, psn = _pan(rng, 1, 19), f"{rng.randint(0, 99):02d}"
        assert ours(imk, pan, psn) == theirs(imk, pan, psn), (len(pan), psn)


def test_macs_and_arpcs_match_pyemv() -> None:
    rng = random.Random(9)
    for i in range(2000):
        key = rng.randbytes(16)
        data = rng.randbytes(rng.randint(0, 64))
        pad = 1 + i % 2
        assert mac_iso9797_alg3(key, data, pad) == pyemv_mac.mac_iso9797_3(
            key[:8], key[8:], data, pad
        )
        arqc, arc, csu = rng.randbytes(8), rng.randbytes(2), rng.randbytes(4)
        prop = rng.randbytes(rng.randint(0, 8))
        assert arpc_method_1(key, arqc, arc) == pyemv_ac.generate_arpc_1(key, arqc, arc)
        assert arpc_method_2(key, arqc, csu, prop) == pyemv_ac.generate_arpc_2(key, arqc, csu, prop)
