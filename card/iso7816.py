"""ISO/IEC 7816-4 command handling shared by the card's applications.

The card answers every problem with a status word (ISO/IEC 7816-4 §5.1.3 Tables 5
and 6; EMV Book 1 §9.4 and Book 3 §6.3.5 for the ones EMV gives a role). A handler
raises :class:`StatusWordError` with the status word; the dispatcher turns it into a
two-byte R-APDU. :func:`parse_command` applies the length rules of ISO/IEC 7816-3
§12.1.3 (short form only: this card declares no extended length support, ISO/IEC
7816-4 §8.1.1.2.7 card capabilities, so an extended APDU is a wrong length).
"""

from __future__ import annotations

from typing import Final

from card.errors import CardError
from emvwire.apdu import CApdu
from emvwire.errors import DecodeError

__all__ = [
    "SW_CLA_NOT_SUPPORTED",
    "SW_CONDITIONS_NOT_SATISFIED",
    "SW_FILE_NOT_FOUND",
    "SW_INCORRECT_DATA",
    "SW_INCORRECT_P1P2",
    "SW_INS_NOT_SUPPORTED",
    "SW_NO_PRECISE_DIAGNOSIS",
    "SW_OK",
    "SW_RECORD_NOT_FOUND",
    "SW_REFERENCED_DATA_NOT_FOUND",
    "SW_WRONG_LENGTH",
    "StatusWordError",
    "parse_command",
    "respond",
]

#: Normal processing (ISO/IEC 7816-4 Table 5).
SW_OK: Final = 0x9000
#: Wrong length: Lc/Le inconsistent with the body, or data of the wrong size (Table 6).
SW_WRONG_LENGTH: Final = 0x6700
#: Conditions of use not satisfied: a command out of sequence (EMV Book 3 §6.5.8.4 GPO).
SW_CONDITIONS_NOT_SATISFIED: Final = 0x6985
#: Incorrect parameters in the command data field.
SW_INCORRECT_DATA: Final = 0x6A80
#: File or application not found (EMV Book 1 §12.3.2 SELECT).
SW_FILE_NOT_FOUND: Final = 0x6A82
#: Record not found (EMV Book 3 §6.5.11.4 READ RECORD).
SW_RECORD_NOT_FOUND: Final = 0x6A83
#: Incorrect parameters P1-P2.
SW_INCORRECT_P1P2: Final = 0x6A86
#: Referenced data not found (GET DATA of an object the card does not hold).
SW_REFERENCED_DATA_NOT_FOUND: Final = 0x6A88
#: Instruction code not supported or invalid.
SW_INS_NOT_SUPPORTED: Final = 0x6D00
#: Class not supported.
SW_CLA_NOT_SUPPORTED: Final = 0x6E00
#: No precise diagnosis: the card's last-resort answer to an internal fault.
SW_NO_PRECISE_DIAGNOSIS: Final = 0x6F00


class StatusWordError(CardError):
    """Stop processing a command and answer with status word ``sw`` (no data)."""

    def __init__(self, sw: int, reason: str = "") -> None:
        self.sw = sw
        self.reason = reason
        super().__init__(f"SW {sw:04X}" + (f": {reason}" if reason else ""))


def respond(data: bytes = b"", sw: int = SW_OK) -> bytes:
    """An R-APDU: the data field followed by SW1 SW2."""
    return bytes(data) + sw.to_bytes(2, "big")


def parse_command(raw: bytes) -> CApdu:
    """Decode a short C-APDU; any length inconsistency is ``6700``.

    A header shorter than four bytes, an Lc that does not fit the body and every
    extended-length form are wrong lengths for this card.
    """
    if len(raw) < 4:
        raise StatusWordError(SW_WRONG_LENGTH, "no full header")
    try:
        cmd = CApdu.decode(raw)
    except DecodeError:
        raise StatusWordError(SW_WRONG_LENGTH, "Lc does not fit the body") from None
    if cmd.extended:
        raise StatusWordError(SW_WRONG_LENGTH, "extended length is not supported")
    return cmd
