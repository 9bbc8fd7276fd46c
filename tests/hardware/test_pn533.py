"""A physical nfcpy frontend (PN533, PN532, RC-S380, an ACR122U freed from pcscd) with a
real payment card.

Skipped unless ``TAPSTACK_HW_NFC`` gives the nfcpy path (``usb``, ``usb:04cc:2533``,
``tty:USB0:pn532``, with or without the ``nfc:`` prefix). The test waits
``TAPSTACK_HW_TIMEOUT`` seconds (30) for an ISO-DEP card, then selects the PPSE. An
ACR122U is held by pcscd's libccid: stop pcscd first (nfcpy gets EBUSY otherwise).
Run::

    TAPSTACK_HW_NFC=usb .venv/bin/python -m pytest tests/hardware -m hardware -s
"""

from __future__ import annotations

import os

import pytest

from emvwire import apdu
from emvwire.tlv import decode, find
from terminal.readers import open_reader

NFC_PATH = os.environ.get("TAPSTACK_HW_NFC", "")
TIMEOUT = float(os.environ.get("TAPSTACK_HW_TIMEOUT", "30"))

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not NFC_PATH, reason="set TAPSTACK_HW_NFC to an nfcpy path to run"),
]

PPSE = b"2PAY.SYS.DDF01"


def test_ppse_select_on_a_real_card(capsys: pytest.CaptureFixture[str]) -> None:
    path = NFC_PATH if NFC_PATH.startswith("nfc:") else f"nfc:{NFC_PATH}"
    with open_reader(path) as reader:
        with capsys.disabled():
            print(f"\ntap a contactless payment card on {reader.path} ({TIMEOUT:g} s)")
        info = reader.wait_for_card(TIMEOUT)
        assert info.uid, "ISO 14443-3 activation gives a UID"
        assert info.protocol.startswith("ISO-DEP")
        assert reader.card_present()
        answer = reader.transmit(apdu.select(PPSE).encode())
        sw = answer[-2:]
        assert sw in (b"\x90\x00", b"\x6a\x82"), f"SELECT PPSE answered {sw.hex().upper()}"
        if sw == b"\x90\x00":
            fci = decode(answer[:-2])
            name = find(fci, 0x84)
            assert name is not None
            assert name.value == PPSE
        assert reader.repower().protocol == info.protocol
        assert reader.transmit(apdu.select(PPSE).encode())[-2:] == sw
