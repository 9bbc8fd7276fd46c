"""ACS ACR122U pseudo-APDUs, and reader feedback (LED and buzzer) built on them.

The ACR122U is a PN533 behind a CCID firmware. Commands of class ``FF`` sent like any
APDU (through PC/SC ``SCardTransmit`` while a card is connected, or ``SCardControl``
with the CCID escape code otherwise) are answered by the reader itself, not the card.
Source: ACS, *ACR122U USB NFC Reader, Application Programming Interface* v2.04:

- §6.2 Bi-colour LED and buzzer control: ``FF 00 40 P2 04 T1 T2 N B``. P2, the LED
  state control: bit 0 final red state, bit 1 final green state, bit 2 red state mask
  (1: update), bit 3 green state mask, bit 4 initial red blinking state, bit 5
  initial green blinking state, bit 6 red blinking mask (1: blink), bit 7 green
  blinking mask. T1 and T2: the initial and the toggled blinking state durations in
  100 ms units; N: repetitions; B: link to buzzer (00 off, 01 during T1, 02 during T2,
  03 both). The answer is ``90 xx`` with xx the LED state now (``63 00``: failed), so
  only SW1 is checked.
- §6.5 Set the PICC operating parameter: ``FF 00 51 P2 00``. P2 bit 7 auto PICC
  polling, bit 6 auto ATS generation (RATS after a Type A ISO 14443-4 activation),
  bit 5 polling interval (1: 250 ms, 0: 500 ms), bits 4-0 the card types polled:
  FeliCa 424K, FeliCa 212K, Topaz, ISO 14443 Type B, ISO 14443 Type A. Answer
  ``90 P2``.
- §6.7 Buzzer output during card detection: ``FF 00 52 P2 00`` (00 off, FF on).
- §6.3 Firmware version: ``FF 00 48 00 00`` (the answer is ASCII, no status word).
- PC/SC Part 3 §3.2.2.1.3 GET DATA (any PC/SC contactless reader): ``FF CA 00 00 00``
  answers the UID and 9000.

Readers without these commands (vpcd, most CCID readers) answer ``6D00``/``6E00`` or
fail: :class:`Acr122uFeedback` then degrades to recording what it would have shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from terminal.readers.base import LazyLogger, RecordingFeedback, Signal

__all__ = [
    "BUZZER_DURING_T1",
    "EMV_PICC_PARAMETER",
    "FIRMWARE_VERSION",
    "GET_UID",
    "LED_BITS",
    "PICC_BITS",
    "Acr122uFeedback",
    "configure_picc",
    "detection_buzzer_apdu",
    "led_buzzer_apdu",
    "picc_parameter_apdu",
]

log = LazyLogger(__name__)

#: P2 bits of the LED and buzzer control (API v2.04 §6.2), per LED:
#: (final state, state mask, initial blinking state, blinking mask).
LED_BITS: Final = {
    "red": (0x01, 0x04, 0x10, 0x40),
    "green": (0x02, 0x08, 0x20, 0x80),
}
#: The LEDs lit for each :class:`~terminal.readers.base.Signal` colour.
_COLOUR_LEDS: Final = {"off": (), "red": ("red",), "green": ("green",), "orange": ("red", "green")}
#: Link to buzzer byte B: the buzzer sounds during T1, when the LED is in its initial state.
BUZZER_DURING_T1: Final = 0x01
_BOTH_MASKS: Final = LED_BITS["red"][1] | LED_BITS["green"][1]

#: PICC operating parameter bits (API v2.04 §6.5).
PICC_BITS: Final = {
    "auto_polling": 0x80,
    "auto_ats": 0x40,
    "interval_250ms": 0x20,
    "felica_424": 0x10,
    "felica_212": 0x08,
    "topaz": 0x04,
    "iso14443b": 0x02,
    "iso14443a": 0x01,
}
#: What a payment terminal wants: auto polling, auto ATS (ISO-DEP is activated, as EMV
#: needs), a 250 ms polling interval, Type A and Type B cards only (EMV Book D §3:
#: payment cards are ISO/IEC 14443 Type A or B). ``E3``.
EMV_PICC_PARAMETER: Final = (
    PICC_BITS["auto_polling"]
    | PICC_BITS["auto_ats"]
    | PICC_BITS["interval_250ms"]
    | PICC_BITS["iso14443b"]
    | PICC_BITS["iso14443a"]
)

#: GET DATA UID (PC/SC Part 3 §3.2.2.1.3).
GET_UID: Final = bytes.fromhex("FFCA000000")
#: Get the firmware version (API v2.04 §6.3).
FIRMWARE_VERSION: Final = bytes.fromhex("FF00480000")


def led_buzzer_apdu(signal: Signal) -> bytes:
    """The LED and buzzer pseudo-APDU ``FF 00 40 P2 04 T1 T2 N B`` showing ``signal``.

    Both LED state masks are always set, so the LEDs end in the signal's colour (the
    others off) whatever they showed before. With beeps, the signal's LEDs blink with
    the buzzer: on with the tone for T1 (``duration_ms`` rounded to 100 ms units, at
    least 1), off for T2 (T1 again between tones, 100 ms after a single tone), N =
    beeps, B = 01 (buzzer during T1). Without beeps T1, T2, N and B are zero.
    """
    leds = _COLOUR_LEDS[signal.led]
    p2 = _BOTH_MASKS
    for led in leds:
        p2 |= LED_BITS[led][0]
    if signal.beeps == 0:
        return bytes((0xFF, 0x00, 0x40, p2, 0x04, 0x00, 0x00, 0x00, 0x00))
    for led in leds:
        p2 |= LED_BITS[led][2] | LED_BITS[led][3]
    t1 = min(255, max(1, round(signal.duration_ms / 100)))
    t2 = t1 if signal.beeps > 1 else 1
    return bytes((0xFF, 0x00, 0x40, p2, 0x04, t1, t2, signal.beeps, BUZZER_DURING_T1))


def picc_parameter_apdu(parameter: int = EMV_PICC_PARAMETER) -> bytes:
    """``FF 00 51 P2 00``: set the PICC operating parameter (API v2.04 §6.5)."""
    if not 0 <= parameter <= 0xFF:
        raise ValueError("the PICC operating parameter is one byte")
    return bytes((0xFF, 0x00, 0x51, parameter, 0x00))


def detection_buzzer_apdu(on: bool) -> bytes:
    """``FF 00 52 P2 00``: the reader's own beep when it detects a card (API v2.04 §6.7)."""
    return bytes((0xFF, 0x00, 0x52, 0xFF if on else 0x00, 0x00))


def configure_picc(
    send: Callable[[bytes], bytes],
    parameter: int = EMV_PICC_PARAMETER,
    *,
    detection_beep: bool = False,
) -> bool:
    """Set the polling parameter and the detection beep; ``True`` if both were taken.

    The terminal gives its own signals (Book A §9.3), so the reader's beep on card
    detection is off by default. Never raises: a reader that refuses keeps its defaults.
    """
    ok = True
    for apdu in (picc_parameter_apdu(parameter), detection_buzzer_apdu(detection_beep)):
        try:
            answer = send(apdu)
        except Exception as exc:
            log.info("reader set-up %s failed: %s", apdu[:3].hex().upper(), exc)
            ok = False
            continue
        if len(answer) < 2 or answer[-2] != 0x90:
            log.info("reader set-up %s refused: %s", apdu[:3].hex().upper(), answer.hex().upper())
            ok = False
    return ok


class Acr122uFeedback(RecordingFeedback):
    """LED and buzzer of an ACR122U, through ``send`` (pseudo-APDU in, answer out).

    Every signal is recorded (``signals``), and sent (``sent``) until the feedback
    degrades to recording only (``degraded``, with ``reason``): at once when the
    reader answers ``6Dxx`` (instruction unknown), ``6Exx`` (class unknown) or less
    than a status word, since it does not know the command; after ``max_errors``
    failures in a row otherwise (``63 00``, or ``send`` raising: a card that left just
    as the signal went out is not held against the reader once). Never raises.
    """

    def __init__(self, send: Callable[[bytes], bytes], *, max_errors: int = 3) -> None:
        super().__init__()
        if max_errors < 1:
            raise ValueError("max_errors must be at least 1")
        self._send = send
        self.max_errors = max_errors
        self.sent: list[bytes] = []
        self.degraded = False
        self.reason = ""
        self._errors = 0

    def signal(self, signal: Signal) -> None:
        self.signals.append(signal)
        if self.degraded:
            return
        apdu = led_buzzer_apdu(signal)
        self.sent.append(apdu)
        try:
            answer = self._send(apdu)
        except Exception as exc:
            self._failed(f"LED/buzzer command failed: {exc}")
            return
        if len(answer) < 2 or answer[-2] in (0x6D, 0x6E):
            self._degrade(
                f"the reader does not know the LED/buzzer command ({answer.hex().upper()})"
            )
        elif answer[-2] == 0x90:
            self._errors = 0
        else:
            self._failed(f"LED/buzzer command answered {answer[-2:].hex().upper()}")

    def _failed(self, why: str) -> None:
        self._errors += 1
        log.info("%s (%d in a row)", why, self._errors)
        if self._errors >= self.max_errors:
            self._degrade(why)

    def _degrade(self, why: str) -> None:
        self.degraded = True
        self.reason = why
        log.info("reader feedback degrades to recording: %s", why)
