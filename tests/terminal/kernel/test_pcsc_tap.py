"""Whole transactions through pcscd and vpcd: a fixture card served by card.vpcd in a
thread, the kernel on the pcsc driver."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, OdaResult
from tests.support.cards import VpcdCard
from tests.support.kernel import card, config, kernel_config, tap_reader

pytestmark = pytest.mark.pcsc


def test_visa_phone_through_pcscd(vpcd: Callable[..., VpcdCard]) -> None:
    from terminal.readers.pcsc import PcscReader

    served = vpcd(card("visa-phone"))
    with PcscReader(served.reader) as reader:
        result = tap_reader(reader, 6000, timeout=10)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    assert result.cvm is Cvm.CDCVM
    assert result.oda is OdaResult.PASSED
    assert result.apdu_count == 8
    assert [c[:2] for c in served.card.seen] == [b"\x00\xa4"] * 2 + [b"\x80\xa8"] + [
        b"\x00\xb2"
    ] * 5


def test_offline_approval_through_pcscd(vpcd: Callable[..., VpcdCard]) -> None:
    from terminal.readers.pcsc import PcscReader

    served = vpcd(card("visa-card"))
    with PcscReader(served.reader) as reader:
        result = tap_reader(reader, 1234, cfg=config(floor_limit=5000), timeout=10)
    assert result.outcome is Outcome.APPROVED, result.reasons
    assert result.apdu_count == 7


def test_sm_suite_card_offline_with_sm2_fdda_through_pcscd(
    vpcd: Callable[..., VpcdCard],
) -> None:
    """UnionPay's whole SM suite over pcscd: SM4 cryptogram, SM2 certificates and
    fDDA verified by kernel 7."""
    from terminal.readers.pcsc import PcscReader

    served = vpcd(card("unionpay-sm-card"))
    cfg = kernel_config(b"\x07", floor_limit=3000)
    with PcscReader(served.reader) as reader:
        result = tap_reader(reader, 1000, cfg=cfg, timeout=10)
    assert result.outcome is Outcome.APPROVED, result.reasons
    assert (result.oda, result.oda_method) == (OdaResult.PASSED, "fDDA (SM2)")
