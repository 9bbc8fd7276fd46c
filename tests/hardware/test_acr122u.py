"""A physical PC/SC contactless reader (an ACS ACR122U) with a real payment card.

Skipped unless ``TAPSTACK_HW_READER`` names the reader (``ACR122``, a pcscd index, or
a whole ``pcsc:`` path). The test waits ``TAPSTACK_HW_TIMEOUT`` seconds (30) for a
card on the reader, then selects the PPSE (EMV Book B §3.3) and signals the result
with the reader's LED and buzzer (ACS ACR122U API v2.04 §6.2). Run::

    TAPSTACK_HW_READER=ACR122 .venv/bin/python -m pytest tests/hardware -m hardware -s
"""

from __future__ import annotations

import os

import pytest

from emvwire import apdu
from emvwire.tlv import decode, find
from terminal.readers import FAILURE, SUCCESS, open_reader
from terminal.readers.acr122u import Acr122uFeedback

READER = os.environ.get("TAPSTACK_HW_READER", "")
TIMEOUT = float(os.environ.get("TAPSTACK_HW_TIMEOUT", "30"))

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.pcsc,
    pytest.mark.skipif(not READER, reason="set TAPSTACK_HW_READER to a PC/SC reader to run"),
]

PPSE = b"2PAY.SYS.DDF01"


def test_ppse_select_on_a_real_card(capsys: pytest.CaptureFixture[str]) -> None:
    path = READER if READER.startswith("pcsc:") else f"pcsc:{READER}"
    with open_reader(path) as reader:
        with capsys.disabled():
            print(f"\ntap a contactless payment card on {reader.path} ({TIMEOUT:g} s)")
        info = reader.wait_for_card(TIMEOUT)
        assert info.atr, "a PC/SC reader gives an ATR"
        assert info.protocol == "T=1"  # a contactless card is presented as T=1
        answer = reader.transmit(apdu.select(PPSE).encode())
        sw = answer[-2:]
        reader.feedback.signal(SUCCESS if sw == b"\x90\x00" else FAILURE)
        assert sw in (b"\x90\x00", b"\x6a\x82"), f"SELECT PPSE answered {sw.hex().upper()}"
        if sw == b"\x90\x00":
            fci = decode(answer[:-2])
            name = find(fci, 0x84)
            assert name is not None
            assert name.value == PPSE
            assert find(fci, 0x4F) is not None, "a PPSE lists at least one application"
        if "ACR122" in reader.path.upper():
            assert isinstance(reader.feedback, Acr122uFeedback)
            assert not reader.feedback.degraded, reader.feedback.reason
            assert info.uid, "an ACR122U reads the UID (FF CA 00 00 00)"
        assert reader.repower().atr == info.atr
        assert reader.transmit(apdu.select(PPSE).encode())[-2:] == sw
