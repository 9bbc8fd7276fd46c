"""ISO 8583 as the card networks' dual-message systems use it (ISO 8583:1987 field
layout): the field specification written as data (:data:`SPEC`, pyiso8583's format),
the codec, the TCP framing, and the terminal-issuer contract's messages mapped to
and from the fields, in one place. Pure: bytes in, bytes out.

Encoding (the choice of this module; jPOS calls it ``ISO87A`` with a binary bitmap):
the message type (MTI) and every numeric or text field in ASCII, lengths of variable
fields as ASCII digits (LL, LLL), bitmaps binary (8 bytes each), field 55 (ICC system
related data, EMV Book 3 Annex B) binary with an LLL length in bytes. On TCP each
message follows a 2-byte big-endian length header (:func:`frame`), at most
:data:`MAX_MESSAGE` bytes.

The fields (ISO 8583:1987 §4.3), and what the contract carries in them:

====  ============================  ==========================================
 2    PAN, n..19                     optional: field 35 carries it (tag 57)
 3    processing code, n 6           9C (transaction type) and ``0000``
 4    amount, n 12                   9F02 (minor units); a completion's capture
 7    transmission date/time, n 10   MMDDhhmmss UTC: with 11, the request id
11    STAN, n 6                      systems trace audit number
12/13 local time hhmmss / date MMDD  the terminal's clock
14    expiry YYMM                    from 57
18    merchant type (MCC), n 4       informative: the issuer uses the terminal's
                                     registered MCC, never the message's
22    POS entry mode, n 3            ``071``: contactless chip, PIN not entered
23    PAN sequence number, n 3       5F34
32    acquiring institution, n..11   informative
35    track 2, z..37                 57 with ``=`` as separator, no pad
37    retrieval reference, an 12     the acquirer's, echoed
38    approval code, an 6            of an approval
39    response code, an 2            8A: :data:`emvwire.contract.RESPONSE_CODES`
41    terminal id, ans 8             :func:`terminal_code` of the issuer's id
42    card acceptor id, ans 15       informative, echoed
43    acceptor name/location, 40     informative
44    additional response, ans..25   the decline reason or the error code
48    additional data, ans..999      the credential of a sign-on (never logged)
49    currency, n 3                  5F2A (ISO 4217 number)
55    ICC data, b..255               field 55 (request), 91 (answer)
56    payment account ref, ans..255  PAR (9F24), as the networks carry it
62    transaction id, ans..255       the issuer's transaction id (the role of
                                     Visa's transaction identifier, 62.2)
70    network management code, n 3   001 sign-on, 002 sign-off, 301 echo
90    original data elements, n 42   MTI, STAN, field 7 of the original
====  ============================  ==========================================

:class:`Message` masks fields 2, 35 and 55 and hides 48 in its repr; errors
(:class:`FormatError`) name the field and never carry its value.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import iso8583

from emvwire.contract import Decision, DeclineReason
from emvwire.currency import currency_by_code
from emvwire.errors import EmvWireError
from emvwire.mask import mask_pan, mask_track2
from emvwire.tags import Tag
from emvwire.tlv import decode_flat, encode
from emvwire.track2 import track2_expiry, track2_pan

__all__ = [
    "APPROVED",
    "DUPLICATE",
    "FORMAT_ERROR",
    "HEADER_SIZE",
    "INVALID_TRANSACTION",
    "ISSUER_UNAVAILABLE",
    "MAX_MESSAGE",
    "MIN_MESSAGE",
    "NO_RECORD",
    "SECURITY_VIOLATION",
    "SPEC",
    "SYSTEM_ERROR",
    "FormatError",
    "Iso8583Error",
    "Message",
    "Mti",
    "Network",
    "answer_to",
    "approval_code",
    "authorisation_message",
    "authorisation_of",
    "decision_answer",
    "decision_of",
    "decode",
    "encode_message",
    "frame",
    "original_data",
    "original_of",
    "readable_mti",
    "request_id",
    "response_mti",
    "salvage",
    "terminal_code",
    "track2_field",
    "track2_value",
]

# --- the specification --------------------------------------------------------------------


def _field(kind: str, length: int, desc: str, *, prefix: int = 0) -> dict[str, Any]:
    """A field of :data:`SPEC`: ``kind`` its attribute class (ISO 8583:1987 §4.2: n, an,
    ans, z, b), ``length`` its length (the maximum when ``prefix``, the digits of its
    LL/LLL length, is not 0)."""
    return {
        "data_enc": "b" if kind == "b" else "ascii",
        "len_enc": "ascii",
        "len_type": prefix,
        "max_len": length,
        "desc": desc,
        "kind": kind,
    }


#: The field specification (module docstring), in pyiso8583's format with each
#: field's attribute class under ``kind``: ``h`` header (none), ``t`` MTI, ``p`` and
#: ``1`` the bitmaps.
SPEC: Final[Mapping[str, Mapping[str, Any]]] = {
    "h": _field("ans", 0, "Message header (none)"),
    "t": _field("n", 4, "Message type indicator"),
    "p": _field("b", 8, "Primary bitmap"),
    "1": _field("b", 8, "Secondary bitmap"),
    "2": _field("n", 19, "Primary account number", prefix=2),
    "3": _field("n", 6, "Processing code"),
    "4": _field("n", 12, "Amount, transaction"),
    "7": _field("n", 10, "Transmission date and time"),
    "11": _field("n", 6, "Systems trace audit number"),
    "12": _field("n", 6, "Time, local transaction"),
    "13": _field("n", 4, "Date, local transaction"),
    "14": _field("n", 4, "Date, expiration"),
    "18": _field("n", 4, "Merchant type"),
    "22": _field("n", 3, "Point of service entry mode"),
    "23": _field("n", 3, "Card sequence number"),
    "32": _field("n", 11, "Acquiring institution identification code", prefix=2),
    "35": _field("z", 37, "Track 2 data", prefix=2),
    "37": _field("an", 12, "Retrieval reference number"),
    "38": _field("an", 6, "Authorisation identification response"),
    "39": _field("an", 2, "Response code"),
    "41": _field("ans", 8, "Card acceptor terminal identification"),
    "42": _field("ans", 15, "Card acceptor identification code"),
    "43": _field("ans", 40, "Card acceptor name/location"),
    "44": _field("ans", 25, "Additional response data", prefix=2),
    "48": _field("ans", 999, "Additional data, private", prefix=3),
    "49": _field("n", 3, "Currency code, transaction"),
    "55": _field("b", 255, "ICC system related data", prefix=3),
    "56": _field("ans", 255, "Payment account reference", prefix=3),
    "62": _field("ans", 255, "Transaction identifier (private)", prefix=3),
    "70": _field("n", 3, "Network management information code"),
    "90": _field("n", 42, "Original data elements"),
}

#: The 2-byte big-endian length header before each message on TCP.
HEADER_SIZE: Final = 2
#: Largest message accepted (without its header): every field of :data:`SPEC` at its
#: longest fits in less.
MAX_MESSAGE: Final = 4096
#: Smallest message: an MTI and the primary bitmap.
MIN_MESSAGE: Final = 12

#: Response codes (field 39) beyond the contract's decisions (ISO 8583:1987 §4.3.39).
APPROVED: Final = "00"
INVALID_TRANSACTION: Final = "12"
NO_RECORD: Final = "25"  # unable to locate record on file
FORMAT_ERROR: Final = "30"
SECURITY_VIOLATION: Final = "63"
ISSUER_UNAVAILABLE: Final = "91"  # issuer or switch inoperative: send again
DUPLICATE: Final = "94"  # duplicate transmission
SYSTEM_ERROR: Final = "96"

#: Whether an ASCII text is of an attribute class (ISO 8583:1987 §4.2): n digits, an
#: letters, digits and spaces, ans printable characters, z track 2 (digits, ``=``,
#: ``D``). The text is ASCII already (the codec decodes it so).
_KIND_CHECKS: Final[Mapping[str, Callable[[str], bool]]] = {
    "n": lambda v: v.isdigit() or not v,
    "an": lambda v: v.replace(" ", "").isalnum() or not v.strip(),
    "ans": lambda v: v.isprintable(),
    "z": lambda v: not v.replace("=", "").replace("D", "").strip(string.digits),
}


class Mti:
    """Message type indicators of ISO 8583:1987 (version 0): class, function, origin.
    A repeat (last digit 1: the acquirer sends it again) is answered as its original."""

    AUTHORISATION: Final = "0100"
    AUTHORISATION_REPEAT: Final = "0101"
    AUTHORISATION_RESPONSE: Final = "0110"
    ADVICE: Final = "0120"
    ADVICE_REPEAT: Final = "0121"
    ADVICE_RESPONSE: Final = "0130"
    FINANCIAL: Final = "0200"
    FINANCIAL_REPEAT: Final = "0201"
    FINANCIAL_RESPONSE: Final = "0210"
    REVERSAL: Final = "0400"
    REVERSAL_REPEAT: Final = "0401"
    REVERSAL_RESPONSE: Final = "0410"
    NETWORK: Final = "0800"
    NETWORK_REPEAT: Final = "0801"
    NETWORK_RESPONSE: Final = "0810"


class Network:
    """Network management information codes (field 70)."""

    SIGN_ON: Final = "001"
    SIGN_OFF: Final = "002"
    ECHO: Final = "301"


#: Processing code (field 3) of a refund: transaction type 20 (ISO 8583 §4.3.3; 9C).
REFUND_PROCESSING: Final = "200000"


class Iso8583Error(EmvWireError, ValueError):
    """An ISO 8583 message that cannot be made or read; never carries field values."""


class FormatError(Iso8583Error):
    """A message that does not follow :data:`SPEC` (answered with field 39 = 30).
    ``mti`` is its message type when that could be read (else ``None``), ``field``
    the field where it broke (``""`` if none)."""

    def __init__(
        self,
        message: str,
        *,
        mti: str | None = None,
        field: str = "",
        echo: Mapping[int, str] | None = None,
    ) -> None:
        self.mti, self.field = mti, field
        #: The fields an answer echoes (7, 11, 41) that could be read before it broke.
        self.echo: dict[int, str] = dict(echo or {})
        super().__init__(message)


# --- the message --------------------------------------------------------------------------


def _masked(number: int, value: str | bytes) -> str:
    if number == 2:
        return mask_pan(str(value))
    if number == 35:
        return mask_track2(str(value))
    if number == 48:
        return f"<{len(value)} characters hidden>"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return repr(value)


@dataclass(slots=True)
class Message:
    """One ISO 8583 message: its MTI and fields by number (text, or ``bytes`` for a
    binary field). The repr masks the PAN (2), track 2 (35), hides field 55's data and
    the credential of field 48."""

    mti: str
    fields: dict[int, str | bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}: {_masked(n, v)}" for n, v in sorted(self.fields.items()))
        return f"Message({self.mti}, {{{shown}}})"

    def text(self, number: int) -> str:
        """Field ``number`` as text (``""`` when absent)."""
        value = self.fields.get(number, "")
        if isinstance(value, bytes):
            raise Iso8583Error(f"field {number} is binary")
        return value

    def binary(self, number: int) -> bytes:
        """Binary field ``number`` (``b""`` when absent)."""
        value = self.fields.get(number, b"")
        if not isinstance(value, bytes):
            raise Iso8583Error(f"field {number} is not binary")
        return value

    def __contains__(self, number: object) -> bool:
        return number in self.fields


def readable_mti(data: bytes) -> str | None:
    """The MTI at the start of ``data`` if it is four ASCII digits, else ``None``."""
    head = data[:4]
    return head.decode() if len(head) == 4 and head.isdigit() else None


#: The fields a format error's answer echoes when they could be read.
_ECHOED: Final = ("7", "11", "41")


def _echo(doc: Mapping[str, str], broken: str) -> dict[int, str]:
    """The fields of :data:`_ECHOED` in a partly decoded ``doc`` that are whole (not
    the ``broken`` field) and of their class."""
    out: dict[int, str] = {}
    for key in _ECHOED:
        value = doc.get(key, "")
        spec = SPEC[key]
        if key == broken or len(value) != spec["max_len"]:
            continue
        if _KIND_CHECKS[spec["kind"]](value):
            out[int(key)] = value
    return out


def salvage(data: bytes) -> dict[int, str]:
    """The fields an answer echoes (7, 11, 41) that can be read from broken ``data``."""
    try:
        message = decode(data)
    except FormatError as exc:
        return exc.echo
    return {n: message.text(n) for n in (7, 11, 41) if n in message}


def decode(data: bytes) -> Message:
    """A message (without its length header) read by :data:`SPEC`; :class:`FormatError`
    names the field that breaks it (a bitmap announcing an absent field, a length
    beyond the data, a character outside the field's class, data left over)."""
    mti = readable_mti(data)
    if mti is None:
        raise FormatError("the message type is not four digits", field="t")
    try:
        doc, _ = iso8583.decode(bytes(data), SPEC)
    except iso8583.DecodeError as exc:
        raise FormatError(
            f"{exc.msg}: field {exc.field}",
            mti=mti,
            field=exc.field,
            echo=_echo(exc.doc_dec, exc.field),
        ) from None
    except KeyError as exc:  # a bitmap bit of a field SPEC does not define
        raise FormatError(
            f"field {exc.args[0]} is not in the specification", mti=mti, field=str(exc.args[0])
        ) from None
    message = Message(mti)
    for key, value in doc.items():
        if not key.isdigit() or key == "1":
            continue
        spec = SPEC[key]
        number = int(key)
        if spec["kind"] == "b":
            message.fields[number] = bytes.fromhex(value)
            continue
        if not _KIND_CHECKS[spec["kind"]](value):
            raise FormatError(
                f"field {number} holds characters outside its class {spec['kind']}",
                mti=mti,
                field=key,
            )
        message.fields[number] = value
    return message


def encode_message(message: Message) -> bytes:
    """A message's bytes by :data:`SPEC` (without the length header)."""
    doc: dict[str, str] = {"t": message.mti}
    for number, value in message.fields.items():
        doc[str(number)] = value.hex().upper() if isinstance(value, bytes) else value
    try:
        raw, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as exc:
        raise Iso8583Error(f"{exc.msg}: field {exc.field}") from None
    except KeyError as exc:
        raise Iso8583Error(f"field {exc.args[0]} is not in the specification") from None
    return bytes(raw)


def frame(data: bytes) -> bytes:
    """``data`` after its 2-byte big-endian length header."""
    if len(data) > MAX_MESSAGE:
        raise Iso8583Error(f"a message is at most {MAX_MESSAGE} bytes")
    return len(data).to_bytes(HEADER_SIZE, "big") + data


def response_mti(mti: str) -> str | None:
    """The MTI that answers ``mti`` (0100 and its repeat 0101 -> 0110, 0800 -> 0810),
    or ``None`` for a message that has no answer (a response, a notification)."""
    if len(mti) != 4 or not mti.isdigit() or mti[2] not in "02" or mti[3] not in "01":
        return None
    return f"{mti[:2]}{int(mti[2]) + 1}0"


def answer_to(request: Message, code: str, *, echo: tuple[int, ...] = ()) -> Message:
    """The answer to ``request`` with response code ``code``: it echoes the fields
    the acquirer matches answers by (3, 4, 7, 11, 12, 13, 37, 41, 42, 49, 70 where
    present; never 2, 35, 48 or 55) and ``echo``."""
    mti = response_mti(request.mti)
    if mti is None:
        raise Iso8583Error(f"message type {request.mti} has no answer")
    answer = Message(mti)
    for number in (3, 4, 7, 11, 12, 13, 37, 41, 42, 49, 70, *echo):
        value = request.fields.get(number)
        if value is not None and number not in (2, 35, 48, 55):
            answer.fields[number] = value
    answer.fields[39] = code
    return answer


# --- identifiers ----------------------------------------------------------------------------


def terminal_code(terminal_id: str) -> str:
    """Field 41 of a terminal: the last 8 characters of the issuer's terminal id (its
    random part; the id itself, ``trm_`` and 16 characters, is longer than ans 8)."""
    return terminal_id[-8:]


def request_id(transmitted: str, stan: str) -> str:
    """The request id the issuer records for a message of a terminal: field 7 and
    field 11. A retransmission (same STAN, terminal and time) is the same request and
    gets the stored answer; a reversal names it in field 90."""
    return f"iso8583:{transmitted}:{stan}"


def original_data(mti: str, stan: str, transmitted: str) -> str:
    """Field 90 of a reversal: the original's MTI, STAN and field 7, then the
    acquiring and forwarding institutions (zeros: none), n 42."""
    return f"{mti}{stan}{transmitted}" + "0" * 22


def original_of(value: str) -> tuple[str, str, str]:
    """(MTI, STAN, field 7) of a field 90; :class:`FormatError` if it is not n 42."""
    if len(value) != 42 or not value.isdigit():
        raise FormatError("field 90 is not n 42", field="90")
    return value[:4], value[4:10], value[10:20]


def approval_code(transaction_id: str) -> str:
    """Field 38 of an approval: six characters of the transaction id, upper case."""
    return transaction_id[-6:].upper()


def track2_field(track2: bytes) -> str:
    """Field 35 from Track 2 Equivalent Data (57, EMV Book 3 Annex A): its digits
    with ``=`` for the separator ``D`` and without the ``F`` pad."""
    text = track2.hex().upper().rstrip("F").replace("D", "=")
    if text.count("=") != 1 or not text.replace("=", "").isdigit():
        raise Iso8583Error("track 2 equivalent data is not digits around one separator")
    return text


def track2_value(text: str) -> bytes:
    """Track 2 Equivalent Data (57) from field 35 (``=`` or ``D`` separates)."""
    digits = text.upper().replace("=", "D")
    if digits.count("D") != 1 or not digits.replace("D", "").isdigit():
        raise FormatError("field 35 is not digits around one separator", field="35")
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


# --- the contract's messages ----------------------------------------------------------------


def authorisation_message(
    icc_data: bytes,
    track2: bytes,
    *,
    mti: str,
    stan: str,
    transmitted: str,
    terminal: str,
    local: datetime,
    rrn: str = "",
) -> Message:
    """An authorisation (0100) or financial (0200) request of the contract's
    :class:`~emvwire.contract.AuthorisationRequest`: field 55 and track 2, the
    amount, currency and transaction type from field 55 (9F02, 5F2A, 9C), the PAN
    sequence number (5F34) and expiry (57)."""
    tags = decode_flat(icc_data)
    amount = tags.get(Tag.AMOUNT_AUTHORISED, b"").hex()
    currency = tags.get(Tag.TRANSACTION_CURRENCY_CODE, b"").hex()
    kind = tags.get(Tag.TRANSACTION_TYPE, b"\x00").hex()
    message = Message(mti)
    fields = message.fields
    fields[3] = f"{kind}0000"
    if amount.isdigit():
        fields[4] = amount.zfill(12)[-12:]
    fields[7], fields[11] = transmitted, stan
    fields[12], fields[13] = local.strftime("%H%M%S"), local.strftime("%m%d")
    expiry = track2_expiry(track2)
    if expiry:
        fields[14] = expiry.hex()
    fields[22] = "071"
    psn = tags.get(Tag.PAN_SEQUENCE_NUMBER, b"").hex()
    if psn.isdigit():
        fields[23] = psn.zfill(3)
    fields[35] = track2_field(track2)
    if rrn:
        fields[37] = rrn
    fields[41] = terminal
    if currency.isdigit():
        fields[49] = currency[-3:]
    fields[55] = icc_data
    return message


def authorisation_of(message: Message) -> tuple[bytes, bytes]:
    """Field 55 and track 2 equivalent data (57) of an authorisation or financial
    request: track 2 from field 35, else from the PAN (2) and expiry (14). Fields 2, 4
    and 49, when present, must agree with 35 and field 55 (9F02, 5F2A): the issuer
    decides on what the cryptogram covers. :class:`FormatError` names what is wrong."""
    mti = message.mti
    icc = message.fields.get(55)
    if not isinstance(icc, bytes) or not icc:
        raise FormatError("field 55 (ICC data) is needed", mti=mti, field="55")
    if 35 in message:
        track2 = track2_value(message.text(35))
        if 2 in message and message.text(2) != track2_pan(track2):
            raise FormatError("field 2 is not the PAN of field 35", mti=mti, field="2")
    elif 2 in message:
        track2 = track2_value(f"{message.text(2)}={message.text(14)}")
    else:
        raise FormatError("field 35 (track 2) or field 2 (PAN) is needed", mti=mti, field="35")
    try:
        tags = decode_flat(icc)
    except EmvWireError:
        raise FormatError("field 55 is not BER-TLV", mti=mti, field="55") from None
    amount = tags.get(Tag.AMOUNT_AUTHORISED, b"").hex()
    if 4 in message and (not amount.isdigit() or int(message.text(4)) != int(amount)):
        raise FormatError("field 4 is not the amount of field 55 (9F02)", mti=mti, field="4")
    currency = tags.get(Tag.TRANSACTION_CURRENCY_CODE, b"").hex()
    if 49 in message and currency[-3:] != message.text(49):
        raise FormatError("field 49 is not the currency of field 55 (5F2A)", mti=mti, field="49")
    return icc, track2


def decision_answer(request: Message, decision: Decision) -> Message:
    """The answer (0110, 0210) carrying the contract's :class:`Decision`: response
    code (39), approval code (38), the decline reason (44), issuer authentication data
    91 in field 55, the PAR (56) and the transaction id (62)."""
    answer = answer_to(request, decision.response_code)
    fields = answer.fields
    if decision.approved:
        fields[38] = approval_code(decision.id)
    if decision.reason is not None:
        fields[44] = decision.reason.value
    if decision.issuer_authentication_data:
        iad = bytes.fromhex(decision.issuer_authentication_data)
        fields[55] = encode(Tag.ISSUER_AUTHENTICATION_DATA, iad)
    if decision.par:
        fields[56] = decision.par
    fields[62] = decision.id
    return answer


def decision_of(answer: Message) -> Decision:
    """The contract's :class:`Decision` an answer of :func:`decision_answer` carries
    (the ARPC is the first 8 bytes of 91 with an ARC, the first 4 with a CSU: EMV
    Book 2 §8.2.1, §8.2.2); :class:`FormatError` if it carries none (no field 62)."""
    if 62 not in answer or 39 not in answer:
        raise FormatError("the answer carries no decision", mti=answer.mti, field="62")
    code = answer.text(39)
    iad = b""
    if 55 in answer:
        try:
            iad = decode_flat(answer.binary(55)).get(Tag.ISSUER_AUTHENTICATION_DATA, b"")
        except EmvWireError:
            raise FormatError("field 55 is not BER-TLV", mti=answer.mti, field="55") from None
    arpc = iad[:8] if len(iad) == 10 else iad[:4]
    try:
        reason: DeclineReason | None = DeclineReason(answer.text(44))
    except ValueError:
        reason = None
    currency = answer.text(49)
    amount = answer.text(4)
    return Decision(
        id=answer.text(62),
        approved=code == APPROVED,
        response_code=code,
        amount=int(amount) if amount else 0,
        currency=currency_by_code(currency).alpha if currency else "",
        status="pending" if code == APPROVED else "closed",
        reason=reason,
        arpc=arpc.hex().upper(),
        issuer_authentication_data=iad.hex().upper(),
        par=answer.text(56) or None,
    )
