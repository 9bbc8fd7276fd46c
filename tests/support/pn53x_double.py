"""A byte-level double of two USB contactless frontends, under nfcpy's own drivers.

nfcpy's tests drive its device drivers through a transport whose ``write`` and ``read``
carry the exact USB frames (tests/test_clf_acr122.py, tests/base_clf_pn53x.py in its
repository). This module does the same for the terminal's nfc driver: nfcpy's
``nfc.clf.pn533.init`` and ``nfc.clf.acr122.init`` are given :class:`Pn533Usb` or
:class:`Acr122Usb`, which parse what the driver writes and answer what the device
would, from a small model of the PN53x chip (:class:`Pn53xChip`) with a card in its
field:

- :class:`Pn533Usb`: PN533 frames on the bulk endpoints: ``00 00 FF LEN LCS D4 CMD ...
  DCS 00`` (or the extended frame), answered by an ACK frame ``00 00 FF 00 FF 00`` and
  ``00 00 FF LEN LCS D5 CMD+1 ... DCS 00`` (NXP PN533 user manual §6.2.1); an ACK from
  the host cancels the command under way.
- :class:`Acr122Usb`: CCID ``PC_to_RDR_Escape`` (``6F``) messages carrying the ACR122U's
  pseudo-APDUs (``FF 00 48`` firmware version, ``FF 00 51`` PICC parameter, ``FF 00 40``
  LED and buzzer) and PN532 commands in ``FF 00 00 00 LEN D4 CMD ...``, answered by
  ``RDR_to_PC_DataBlock`` (``80``) messages (ACS ACR122U API v2.04 §4, §6).
- :class:`Pn53xChip`: the host commands nfcpy sends (Diagnose, GetFirmwareVersion,
  Read/WriteRegister, SetParameters, RFConfiguration, InListPassiveTarget,
  InCommunicateThru, PowerDown); the card behind InCommunicateThru is an ISO-DEP PICC
  (card.nfc's :class:`~card.nfc.IsoDepPicc`) over a card application, which answers
  (``answer``), stops answering after a command (``silent``), or answers every command
  with S(WTX) requests for ever (``wtx``). A card that does not answer costs the chip
  its configured response time-out (RFConfiguration item 02), then status 01.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from collections import deque
from typing import Any, Final

from card.nfc import IsoDepPicc, PiccParameters, StepKind, parse_rats
from tests.support.cards import NFC_UID

__all__ = [
    "ACK",
    "ACR122U_VERSION",
    "PN532_FIRMWARE",
    "PN533_FIRMWARE",
    "Acr122Usb",
    "Pn53xChip",
    "Pn533Usb",
    "acr122u_escape",
    "pn533_frame",
]

#: The PN53x ACK frame (PN533 user manual §6.2.1.3).
ACK: Final = bytes.fromhex("0000FF00FF00")
#: GetFirmwareVersion answers: IC, version, revision, support (PN533 v1.96, PN532 v1.6).
PN533_FIRMWARE: Final = bytes.fromhex("33016007")
PN532_FIRMWARE: Final = bytes.fromhex("32010607")
#: The ACR122U's answer to ``FF 00 48 00 00`` (API v2.04 §6.3): firmware 2.07.
ACR122U_VERSION: Final = b"ACR122U207"

_SOF = b"\x00\x00\xff"
_CIU_FIFO_DATA = 0x6339
_TIMED_OUT = b"\x01"  # status byte: "Time out, the Target has not answered"


def pn533_frame(tfi: int, code: int, data: bytes) -> bytes:
    """A PN53x normal (or extended) information frame: ``tfi`` D4 (host) or D5 (chip)."""
    body = bytes((tfi, code)) + data
    if len(body) < 255:
        head = _SOF + bytes((len(body), (256 - len(body)) & 0xFF))
    else:
        size = struct.pack(">H", len(body))
        head = _SOF + b"\xff\xff" + size + bytes(((256 - sum(size)) & 0xFF,))
    return head + body + bytes(((256 - sum(body)) & 0xFF, 0))


def acr122u_escape(payload: bytes, message: int = 0x6F) -> bytes:
    """A CCID message (``6F`` PC_to_RDR_Escape, ``80`` RDR_to_PC_DataBlock) around
    ``payload``: type, length (4 bytes, little-endian), slot, sequence, three bytes."""
    return struct.pack("<BI5B", message, len(payload), 0, 0, 0, 0, 0) + payload


class Pn53xChip:
    """The PN53x chip at the host-command level with one card in its field (module
    docstring). ``commands`` keeps every host command (code, data); ``rf`` every frame
    sent to the card with its answer (``None``: none came)."""

    def __init__(
        self,
        firmware: bytes,
        card: Any,
        *,
        uid: bytes = NFC_UID,
        fwi: int = 8,
        behaviour: str = "answer",
    ) -> None:
        self.firmware = firmware
        self.card = card
        self.params = PiccParameters(uid=uid, fwi=fwi)
        self.behaviour = behaviour
        self.present = True  # the card is in the field
        self.field_on = False
        self.power_offs = 0
        self.timeout = 0.1  # seconds the chip waits for the card (RFConfiguration 02)
        self.timeouts: list[float] = []  # each one the driver set, in order
        self.commands: list[tuple[int, bytes]] = []
        self.rf: list[tuple[bytes, bytes | None]] = []
        self._picc: IsoDepPicc | None = None
        self._mute = False  # a silent card that stopped answering until the field resets
        self._nothing_found = False

    @property
    def pn533(self) -> bool:
        """A PN533 (its ReadRegister and WriteRegister answers carry a status byte)."""
        return self.firmware[0] == 0x33

    def _field(self, on: bool) -> None:
        if on and not self.field_on and self.present:
            self.card.power_on()
        if not on and self.field_on:
            self.power_offs += 1
            self.card.power_off()
            self._picc, self._mute = None, False
        self.field_on = on

    def command(self, code: int, data: bytes) -> tuple[bytes, float]:
        """The chip's answer to host command ``code`` (without D5 and the response
        code) and the seconds it takes."""
        self.commands.append((code, bytes(data)))
        status = b"\x00" if self.pn533 else b""
        if code == 0x00:  # Diagnose: the communication line test echoes its data
            return bytes(data), 0.0
        if code == 0x02:  # GetFirmwareVersion
            return self.firmware, 0.0
        if code == 0x06:  # ReadRegister
            addresses = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
            if any(a >= 0xA000 for a in addresses):
                return b"\x01", 0.0  # no EEPROM behind this chip
            values = bytes(
                0x26 if a == _CIU_FIFO_DATA and self._nothing_found else 0 for a in addresses
            )
            return status + values, 0.0
        if code == 0x08:  # WriteRegister
            return status, 0.0
        if code == 0x32:  # RFConfiguration
            if data[0] == 0x01:
                self._field(bool(data[1] & 0x01))
            elif data[0] == 0x02 and len(data) == 4:
                self.timeout = (100 << (data[3] - 1)) / 1e6 if data[3] else 0.0
                self.timeouts.append(self.timeout)
            return b"", 0.0
        if code == 0x4A:  # InListPassiveTarget
            return self._list(data), 0.0
        if code == 0x42:  # InCommunicateThru
            return self._thru(bytes(data))
        if code == 0x16:  # PowerDown
            self._field(False)
            return b"\x00", 0.0
        return b"", 0.0  # SetParameters, SAMConfiguration, InRelease...

    def _list(self, data: bytes) -> bytes:
        self._field(True)
        self._nothing_found = not (data[1] == 0x00 and self.present)  # 106 kbps Type A
        if self._nothing_found:
            return b"\x00"
        self._picc, self._mute = None, False
        uid = bytes(self.params.uid or b"")
        # NbTg, Tg, SENS_RES (2), SEL_RES (ISO-DEP), NFCID1 length, NFCID1
        return bytes((1, 1, 0x00, 0x04, 0x20, len(uid))) + uid

    def _thru(self, frame: bytes) -> tuple[bytes, float]:
        answer = self._card_answer(frame) if self.field_on and self.present else None
        self.rf.append((frame, answer))
        if answer is None:
            return _TIMED_OUT, self.timeout
        return b"\x00" + answer, 0.0

    def _card_answer(self, frame: bytes) -> bytes | None:
        if self._mute:
            return None
        if self._picc is None:
            rats = parse_rats(frame)
            if rats is None:
                return None
            self._picc = IsoDepPicc(fsd=rats[0], fsc=self.params.fsc)
            return self.params.ats()
        step = self._picc.receive(frame)
        if step.kind in (StepKind.SEND, StepKind.DESELECT):
            return step.data
        if step.kind is StepKind.PROCESS:
            if self.behaviour == "silent":
                self._mute = True
                return None
            if self.behaviour == "wtx":
                return self._picc.wtx_request(1)
            return self._picc.respond(bytes(self.card.process(step.data)))
        if step.kind is StepKind.WTX_GRANTED and self.behaviour == "wtx":
            return self._picc.wtx_request(1)  # and again, for ever
        return None


class _UsbDouble:
    """The transport interface nfcpy's drivers use (nfc/clf/transport.py ``USB``):
    ``write(frame)``, ``read(timeout_ms)``, ``close()``; ``written`` keeps every frame
    the driver wrote."""

    TYPE = "USB"

    def __init__(self, chip: Pn53xChip, manufacturer: str, product: str) -> None:
        self.chip = chip
        self.manufacturer_name = manufacturer
        self.product_name = product
        self.written: list[bytes] = []
        self.closed = False
        self._out: deque[tuple[float, bytes]] = deque()

    def write(self, frame: bytes) -> None:
        if self.closed:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        self.written.append(bytes(frame))
        self._handle(bytes(frame))

    def _handle(self, frame: bytes) -> None:
        raise NotImplementedError

    def _answer(self, frame: bytes, delay: float = 0.0) -> None:
        self._out.append((time.monotonic() + delay, frame))

    def read(self, timeout: int) -> bytearray:
        """The next frame, once the device has it; ``ETIMEDOUT`` after ``timeout`` ms."""
        if not self._out:
            raise OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        ready, frame = self._out[0]
        wait = ready - time.monotonic()
        if timeout and wait > timeout / 1000:
            time.sleep(timeout / 1000)
            raise OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        if wait > 0:
            time.sleep(wait)
        self._out.popleft()
        return bytearray(frame)

    def close(self) -> None:
        self.closed = True


class Pn533Usb(_UsbDouble):
    """A PN533 USB frontend (SCM SCL3711 style) on its bulk endpoints."""

    def __init__(self, chip: Pn53xChip) -> None:
        super().__init__(chip, "SCM Micro", "SCL3711-NFC&RW")

    def _handle(self, frame: bytes) -> None:
        if frame == ACK:  # the host cancels the command under way
            self._out.clear()
            return
        if frame.startswith(_SOF + b"\xff\xff"):
            size = struct.unpack(">H", frame[5:7])[0]
            body = frame[8 : 8 + size]
        else:
            body = frame[5 : 5 + frame[3]]
        assert body[0] == 0xD4, f"not a host command frame: {frame.hex()}"
        answer, delay = self.chip.command(body[1], body[2:])
        self._answer(ACK)
        self._answer(pn533_frame(0xD5, body[1] + 1, answer), delay)


class Acr122Usb(_UsbDouble):
    """An ACS ACR122U: CCID escapes to its firmware and, through it, to its PN532.
    ``pseudo_apdus`` keeps the reader's own commands (class FF, not PN532 ones)."""

    def __init__(self, chip: Pn53xChip) -> None:
        super().__init__(chip, "ACS", "ACR122U PICC Interface")
        self.pseudo_apdus: list[bytes] = []

    def _handle(self, frame: bytes) -> None:
        if frame[0] == 0x62:  # PC_to_RDR_IccPowerOn: the reader's own ATR
            self._answer(acr122u_escape(bytes.fromhex("3B8F8001804F0CA000000306"), 0x80))
            return
        assert frame[0] == 0x6F, f"not a CCID escape: {frame.hex()}"
        payload = frame[10:]
        if payload[:4] == b"\xff\x00\x00\x00" and payload[5:6] == b"\xd4":
            answer, delay = self.chip.command(payload[6], payload[7:])
            data = bytes((0xD5, payload[6] + 1)) + answer + b"\x90\x00"
            self._answer(acr122u_escape(data, 0x80), delay)
            return
        self.pseudo_apdus.append(payload)
        if payload == bytes.fromhex("FF00480000"):
            answer = ACR122U_VERSION
        elif payload[:3] == b"\xff\x00\x51":  # PICC operating parameter
            answer = b"\x90" + payload[3:4]
        elif payload[:3] == b"\xff\x00\x40":  # LED and buzzer: 90, the LED state
            answer = bytes((0x90, payload[3] & 0x03))
        elif payload == ACK:
            answer = b""
        else:
            answer = b"\x63\x00"
        self._answer(acr122u_escape(answer, 0x80))
