"""EMV cryptography throughput: emvwire.crypto beside pyemv on the same inputs.

Groups (compare within a group; the ratio of means is emvwire's speed-up):

* ``arqc-<CVN>``: generate an ARQC and verify it, given the ICC master key
  (session key derivation + MAC + verify). ``hot`` repeats one transaction, so
  every cache hits (a retried or duplicated message); ``fresh`` walks a ring of
  20,000 transactions with distinct ATCs (and UNs), larger than the caches, so
  each transaction derives a new session key and keys new cipher contexts, as
  an issuer host verifying live traffic does. pyemv has no verify: its pair is
  generate twice and compare.
* ``session-key``: EMV common session key derivation with a new R each call.
* ``icc-mk``: Option A ICC master key derivation with a new PAN each call.
"""

from __future__ import annotations

import hmac
import itertools
import random
from typing import Any

import pytest

from emvwire.crypto import (
    CVN_TABLE,
    CryptogramData,
    Cvn,
    derive_common_sk,
    derive_icc_mk_a,
    derive_icc_mk_aes,
    derive_icc_mk_b,
    generate_arqc,
    verify_arqc,
)

pyemv = pytest.importorskip("pyemv")

pytestmark = pytest.mark.filterwarnings(
    "ignore:(Two|Single)-key TripleDES:cryptography.utils.CryptographyDeprecationWarning"
)

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN, PSN = "5413330089012345", "01"
RING = 20_000
PYEMV_CLASSES: dict[Cvn, Any] = {
    Cvn.VISA_10: pyemv.cvn.VisaCVN10,
    Cvn.VISA_18: pyemv.cvn.VisaCVN18,
    Cvn.VISA_22: pyemv.cvn.VisaCVN22,
    Cvn.MASTERCARD_16: pyemv.cvn.MasterCardCVN16,
    Cvn.MASTERCARD_17: pyemv.cvn.MasterCardCVN17,
    Cvn.MASTERCARD_20: pyemv.cvn.MasterCardCVN20,
    Cvn.MASTERCARD_21: pyemv.cvn.MasterCardCVN21,
}


def _transactions(cvn: Cvn) -> list[CryptogramData]:
    rng = random.Random(cvn.value)
    cvr_len = 4 if cvn is Cvn.VISA_10 else 6
    return [
        CryptogramData(
            tag_9f02=rng.randbytes(6),
            tag_9f03=bytes(6),
            tag_9f1a=b"\x08\x26",
            tag_95=rng.randbytes(5),
            tag_5f2a=b"\x08\x26",
            tag_9a=b"\x26\x01\x15",
            tag_9c=b"\x00",
            tag_9f37=rng.randbytes(4),
            tag_82=b"\x39\x00",
            tag_9f36=(i % 65536).to_bytes(2),
            tag_9f10=rng.randbytes(18),
            cvr=rng.randbytes(cvr_len),
            counters=rng.randbytes(8),
        )
        for i in range(RING)
    ]


def _icc_mk(cvn: Cvn) -> bytes:
    if cvn is Cvn.EMV_CCD_AES:
        return derive_icc_mk_aes(IMK, PAN, PSN)
    if cvn in (Cvn.VISA_18, Cvn.VISA_22):
        return derive_icc_mk_b(IMK, PAN, PSN)
    return derive_icc_mk_a(IMK, PAN, PSN)


@pytest.mark.parametrize("cvn", list(CVN_TABLE), ids=lambda c: c.name)
def test_arqc_emvwire_hot(benchmark: Any, cvn: Cvn) -> None:
    benchmark.group = f"arqc-{cvn.name}"
    mk, data = _icc_mk(cvn), _transactions(cvn)[0]

    def pair() -> None:
        verify_arqc(cvn, mk, data, generate_arqc(cvn, mk, data))

    benchmark(pair)


@pytest.mark.parametrize("cvn", list(CVN_TABLE), ids=lambda c: c.name)
def test_arqc_emvwire_fresh(benchmark: Any, cvn: Cvn) -> None:
    benchmark.group = f"arqc-{cvn.name}"
    mk = _icc_mk(cvn)
    ring = itertools.cycle(_transactions(cvn))

    def pair() -> None:
        data = next(ring)
        verify_arqc(cvn, mk, data, generate_arqc(cvn, mk, data))

    benchmark(pair)


def _pyemv_generate(card: Any, cvn: Cvn, d: CryptogramData) -> bytes:
    common = (d.tag_9f02, d.tag_9f03, d.tag_9f1a, d.tag_95, d.tag_5f2a, d.tag_9a, d.tag_9c)
    common += (d.tag_9f37, d.tag_82, d.tag_9f36)
    if cvn in (Cvn.VISA_18, Cvn.VISA_22):
        return bytes(card.generate_ac(*common, d.tag_9f10))
    if cvn in (Cvn.MASTERCARD_17, Cvn.MASTERCARD_21):
        return bytes(card.generate_ac(*common, d.cvr, d.counters))
    return bytes(card.generate_ac(*common, d.cvr))


@pytest.mark.parametrize("cvn", list(PYEMV_CLASSES), ids=lambda c: c.name)
def test_arqc_pyemv(benchmark: Any, cvn: Cvn) -> None:
    benchmark.group = f"arqc-{cvn.name}"
    card = PYEMV_CLASSES[cvn](IMK, IMK, IMK, PAN, PSN)
    data = _transactions(cvn)[0]
    assert _pyemv_generate(card, cvn, data) == generate_arqc(cvn, card.icc_mk_ac, data)

    def pair() -> None:
        arqc = _pyemv_generate(card, cvn, data)
        assert hmac.compare_digest(_pyemv_generate(card, cvn, data), arqc)

    benchmark(pair)


def test_session_key_emvwire(benchmark: Any) -> None:
    benchmark.group = "session-key"
    mk = derive_icc_mk_a(IMK, PAN, PSN)
    rs = itertools.cycle([i.to_bytes(2) + bytes(6) for i in range(RING)])
    benchmark(lambda: derive_common_sk(mk, next(rs)))


def test_session_key_pyemv(benchmark: Any) -> None:
    benchmark.group = "session-key"
    mk = derive_icc_mk_a(IMK, PAN, PSN)
    rs = itertools.cycle([i.to_bytes(2) + bytes(6) for i in range(RING)])
    benchmark(lambda: pyemv.kd.derive_common_sk(mk, next(rs)))


PANS = [f"54133300{i:08d}" for i in range(RING)]


def test_icc_mk_emvwire(benchmark: Any) -> None:
    benchmark.group = "icc-mk"
    pans = itertools.cycle(PANS)
    benchmark(lambda: derive_icc_mk_a(IMK, next(pans), PSN))


def test_icc_mk_pyemv(benchmark: Any) -> None:
    benchmark.group = "icc-mk"
    pans = itertools.cycle(PANS)
    benchmark(lambda: pyemv.kd.derive_icc_mk_a(IMK, next(pans), PSN))
