"""Merchant-presented QR codes (EMV QRCPS-MPM v1.1): the shop's "pay me" code.

The payload is text: a sequence of data objects, each a two-digit ID, a two-digit
length (01-99, counted in characters, not bytes) and the value (QRCPS-MPM "Data
Object Format"). Some objects are templates whose value is itself such a sequence.
What each ID means (QRCPS-MPM "Data Objects", the data object ID allocation table):

==========  =============================================================  ==========
ID          data object                                                    presence
==========  =============================================================  ==========
00          payload format indicator, ``"01"``; first                      mandatory
01          point of initiation: ``"11"`` static, ``"12"`` dynamic         optional
02-25       merchant account information, primitive (payment networks)     one of
26-51       merchant account information templates: sub-ID 00 a globally   02-51 at
            unique identifier (e.g. a reverse domain name), 01-99 the      least
            network's own                                                  once
52          merchant category code (ISO 18245), n 4                        mandatory
53          transaction currency (ISO 4217 numeric), n 3                   mandatory
54          transaction amount, ans 13 (digits, ``.`` as decimal mark)     optional
55          tip or convenience indicator: 01 prompt, 02 fixed, 03 percent  optional
56 / 57     convenience fee fixed (with 55 = 02) / percentage (55 = 03)    conditional
58          country code (ISO 3166-1 alpha-2)                              mandatory
59 / 60     merchant name (ans 25) / merchant city (ans 15)                mandatory
61          postal code, ans 10                                            optional
62          additional data field template (bill number, labels...)        optional
63          CRC, 4 upper-case hex digits; last                             mandatory
64          merchant information - language template                       optional
65-79       reserved for future use: refused here
80-99       unreserved templates (sub-ID 00 a globally unique identifier)  optional
==========  =============================================================  ==========

The CRC (QRCPS-MPM, "Cyclic Redundancy Check (CRC)") is CRC-16/CCITT-FALSE of
ISO/IEC 13239 (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR)
over the UTF-8 bytes of the payload up to and including the CRC's own ID and length
``"6304"``. Objects other than 00 (first) and 63 (last) may come in any order (the
specification's own example has 54 after 64); a decoded code keeps its order so that
it encodes back to exactly the text it came from.

:func:`MerchantPresentedCode.decode` is strict: a length that is not two digits or
runs past its template, a duplicate ID, a missing mandatory object, 00 not first or 63
not last, a wrong CRC, an amount, currency or country of the wrong format, a reserved
ID: each is a :class:`~emvwire.errors.QrError` naming the field (``"54"``,
``"62.05"``). The types check their values on construction, so
:meth:`MerchantPresentedCode.encode` only ever produces a valid payload.

>>> code = MerchantPresentedCode(
...     accounts=(Template.of("26", "net.tapstack", {"01": "M-0042"}),),
...     merchant_category_code="5812", currency="978", country="FR",
...     merchant_name="CAFE DU PORT", merchant_city="MARSEILLE",
...     point_of_initiation="12", amount="4.50")
>>> text = code.encode()
>>> text[:44]
'00020101021226260012net.tapstack0106M-004252'
>>> text[-8:]
'6304F191'
>>> MerchantPresentedCode.decode(text) == code
True
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from emvwire.errors import QrError

__all__ = [
    "MAX_PAYLOAD",
    "AdditionalData",
    "DataObject",
    "LanguageTemplate",
    "MerchantPresentedCode",
    "Template",
    "crc16",
]

#: Longest payload accepted or produced, in characters (QRCPS-MPM: a QR code carries
#: at most 512 characters of payload).
MAX_PAYLOAD: Final = 512

_DIGITS2 = re.compile(r"[0-9]{2}")
_NUMERIC = re.compile(r"[0-9]+")
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_PERCENT = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2})?")
_ALPHA2 = re.compile(r"[A-Z]{2}")
_CRC_HEX = re.compile(r"[0-9A-F]{4}")


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE: Final = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (ISO/IEC 13239: polynomial 0x1021, initial value 0xFFFF).

    The checksum of ID 63 (QRCPS-MPM, "Cyclic Redundancy Check (CRC)").

    >>> hex(crc16(b"123456789"))
    '0x29b1'
    """
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


# --- value formats (QRCPS-MPM "Data Object Format": N, ans, S) ---------------------------


def _ans(text: str) -> bool:
    """Alphanumeric special: the EMV common character set (Book 4 Annex B, 0x20-0x7E)."""
    return all(" " <= c <= "~" for c in text)


def _string(text: str) -> bool:
    """String (S): any Unicode character but control characters and lone surrogates."""
    return all(unicodedata.category(c) not in ("Cc", "Cs") for c in text)


@dataclass(frozen=True, slots=True)
class _Format:
    """How one data object's value is written: its name, character set and lengths."""

    name: str
    charset: str  # "N", "ans" or "S"
    low: int
    high: int


def _check_value(path: str, value: str, fmt: _Format) -> None:
    if not isinstance(value, str):
        raise QrError(f"{fmt.name} must be text", field=path)
    if not fmt.low <= len(value) <= fmt.high:
        span = str(fmt.low) if fmt.low == fmt.high else f"{fmt.low} to {fmt.high}"
        raise QrError(f"{fmt.name} must be {span} characters, not {len(value)}", field=path)
    ok = (
        _NUMERIC.fullmatch(value) is not None
        if fmt.charset == "N"
        else _ans(value)
        if fmt.charset == "ans"
        else _string(value)
    )
    if not ok:
        kind = {"N": "digits", "ans": "characters 0x20-0x7E", "S": "printable characters"}
        raise QrError(f"{fmt.name} must be {kind[fmt.charset]}", field=path)


#: The primitive objects of the root but 00 and 63, which the decoder checks itself
#: (QRCPS-MPM, the root data object tables).
_ROOT: Final[Mapping[str, _Format]] = {
    "01": _Format("point of initiation method", "N", 2, 2),
    "52": _Format("merchant category code", "N", 4, 4),
    "53": _Format("transaction currency", "N", 3, 3),
    "54": _Format("transaction amount", "ans", 1, 13),
    "55": _Format("tip or convenience indicator", "N", 2, 2),
    "56": _Format("convenience fee fixed", "ans", 1, 13),
    "57": _Format("convenience fee percentage", "ans", 1, 5),
    "58": _Format("country code", "ans", 2, 2),
    "59": _Format("merchant name", "ans", 1, 25),
    "60": _Format("merchant city", "ans", 1, 15),
    "61": _Format("postal code", "ans", 1, 10),
}
#: The mandatory primitive objects besides 00 and 63.
_MANDATORY: Final = ("52", "53", "58", "59", "60")
#: Merchant account information 02-25: primitive, each payment network's own format.
_PRIMITIVE_ACCOUNT: Final = _Format("merchant account information", "ans", 1, 99)
#: Sub-ID 00 of a merchant account information template (26-51) or an unreserved
#: template (80-99).
_GUI: Final = _Format("globally unique identifier", "ans", 1, 32)
#: The additional data field template 62 (QRCPS-MPM, "Additional Data Field Template").
_ADDITIONAL: Final[Mapping[str, tuple[str, _Format]]] = {
    "01": ("bill_number", _Format("bill number", "ans", 1, 25)),
    "02": ("mobile_number", _Format("mobile number", "ans", 1, 25)),
    "03": ("store_label", _Format("store label", "ans", 1, 25)),
    "04": ("loyalty_number", _Format("loyalty number", "ans", 1, 25)),
    "05": ("reference_label", _Format("reference label", "ans", 1, 25)),
    "06": ("customer_label", _Format("customer label", "ans", 1, 25)),
    "07": ("terminal_label", _Format("terminal label", "ans", 1, 25)),
    "08": ("purpose", _Format("purpose of transaction", "ans", 1, 25)),
    "09": ("consumer_data_request", _Format("additional consumer data request", "ans", 1, 3)),
    "10": ("merchant_tax_id", _Format("merchant tax ID", "ans", 1, 20)),
    "11": ("merchant_channel", _Format("merchant channel", "ans", 3, 3)),
}
#: Sub-IDs 50-99 of template 62: payment system specific templates (opaque here).
_PAYMENT_SYSTEM_SPECIFIC: Final = _Format("payment system specific template", "S", 1, 99)
#: The language template 64 (QRCPS-MPM, "Merchant Information - Language Template").
_LANGUAGE: Final[Mapping[str, tuple[str, _Format]]] = {
    "00": ("language", _Format("language preference", "ans", 2, 2)),
    "01": ("name", _Format("merchant name - alternate language", "S", 1, 25)),
    "02": ("city", _Format("merchant city - alternate language", "S", 1, 15)),
}
#: Sub-IDs 01-99 of a template with a globally unique identifier: the network's own.
_NETWORK_SPECIFIC: Final = _Format("payment network specific data", "S", 1, 99)


def _kind(root_id: str) -> str:
    """What a root ID other than 00 and 63 is: "primitive", "account",
    "account-template", "62", "64", "unreserved" or "rfu" (65-79)."""
    n = int(root_id)
    if root_id in ("62", "64"):
        return root_id
    if root_id in _ROOT:
        return "primitive"
    if 2 <= n <= 25:
        return "account"
    if 26 <= n <= 51:
        return "account-template"
    if 80 <= n <= 99:
        return "unreserved"
    return "rfu"


# --- the ID-length-value layer ---------------------------------------------------------


def _tlv(id_: str, value: str) -> str:
    return f"{id_}{len(value):02d}{value}"


def _split(text: str, parent: str) -> list[tuple[str, str, int]]:
    """The ``(id, value, offset)`` of each data object in ``text``, the value of
    ``parent`` (``""``: the root)."""
    out: list[tuple[str, str, int]] = []
    pos, end = 0, len(text)
    prefix = f"{parent}." if parent else ""
    while pos < end:
        if end - pos < 4:
            raise QrError(
                "data object cut short: ID and length expected", field=parent or None, offset=pos
            )
        id_, length = text[pos : pos + 2], text[pos + 2 : pos + 4]
        if _DIGITS2.fullmatch(id_) is None:
            raise QrError(f"ID {id_!r} is not two digits", field=parent or None, offset=pos)
        path = prefix + id_
        if _DIGITS2.fullmatch(length) is None:
            raise QrError(f"length {length!r} is not two digits", field=path, offset=pos + 2)
        size = int(length)
        if size == 0:
            raise QrError("length 00: a data object present has a value", field=path, offset=pos)
        if pos + 4 + size > end:
            raise QrError(
                f"value of {size} characters runs past the end ({end - pos - 4} left)",
                field=path,
                offset=pos,
            )
        out.append((id_, text[pos + 4 : pos + 4 + size], pos))
        pos += 4 + size
    return out


def _objects(value: str, parent: str, base: int = 0) -> tuple[DataObject, ...]:
    """The sub data objects of a template value, duplicates refused."""
    seen: set[str] = set()
    out = []
    try:
        parsed = _split(value, parent)
    except QrError as exc:
        raise QrError(exc.message, field=exc.field, offset=base + exc.offset) from None
    for id_, sub, at in parsed:
        if id_ in seen:
            raise QrError("duplicate ID", field=f"{parent}.{id_}", offset=base + at)
        seen.add(id_)
        out.append(DataObject(id_, sub))
    return tuple(out)


def _encode_objects(parent: str, objects: Iterable[DataObject]) -> str:
    body = "".join(_tlv(o.id, o.value) for o in objects)
    if len(body) > 99:
        raise QrError(f"template value of {len(body)} characters is over 99", field=parent)
    return body


def _get(objects: tuple[DataObject, ...], sub_id: str) -> str | None:
    for obj in objects:
        if obj.id == sub_id:
            return obj.value
    return None


# --- the types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataObject:
    """One primitive data object: its two-digit ID and its value (characters)."""

    id: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or _DIGITS2.fullmatch(self.id) is None:
            raise QrError(f"ID {self.id!r} is not two digits", field=None)
        if not isinstance(self.value, str) or not 1 <= len(self.value) <= 99:
            raise QrError("a value is 1 to 99 characters", field=self.id)


def _check_unique(parent: str, objects: tuple[DataObject, ...]) -> None:
    seen: set[str] = set()
    for obj in objects:
        if not isinstance(obj, DataObject):
            raise QrError("a template holds DataObject entries", field=parent)
        if obj.id in seen:
            raise QrError("duplicate ID", field=f"{parent}.{obj.id}")
        seen.add(obj.id)
    _encode_objects(parent, objects)


@dataclass(frozen=True, slots=True)
class Template:
    """A template with a globally unique identifier in sub-ID 00: merchant account
    information 26-51 or an unreserved template 80-99 (QRCPS-MPM, "Merchant Account
    Information" and "Unreserved Templates").

    ``objects`` are its data objects in payload order; sub-ID 00 (the globally
    unique identifier, ans up to 32: a reverse domain name, an AID, a UUID) is
    mandatory, 01-99 are the payment network's own.
    """

    id: str
    objects: tuple[DataObject, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or _DIGITS2.fullmatch(self.id) is None:
            raise QrError(f"ID {self.id!r} is not two digits", field=None)
        if _kind(self.id) not in ("account-template", "unreserved"):
            raise QrError("a template with a GUI has ID 26-51 or 80-99", field=self.id)
        _check_unique(self.id, self.objects)
        for obj in self.objects:
            fmt = _GUI if obj.id == "00" else _NETWORK_SPECIFIC
            _check_value(f"{self.id}.{obj.id}", obj.value, fmt)
        if _get(self.objects, "00") is None:
            raise QrError("globally unique identifier (sub-ID 00) missing", field=f"{self.id}.00")

    @classmethod
    def of(cls, id: str, gui: str, others: Mapping[str, str] | None = None) -> Template:
        """The template ``id`` with ``gui`` in sub-ID 00 and ``others`` after it."""
        objects = [DataObject("00", gui)]
        objects += [DataObject(k, v) for k, v in sorted((others or {}).items())]
        return cls(id, tuple(objects))

    @property
    def gui(self) -> str:
        """The globally unique identifier (sub-ID 00)."""
        return _get(self.objects, "00") or ""

    def get(self, sub_id: str) -> str | None:
        """The value of sub-ID ``sub_id``, if present."""
        return _get(self.objects, sub_id)


class _Sub:
    """A typed accessor of one sub-ID of a template's ``objects``."""

    def __init__(self, sub_id: str) -> None:
        self.sub_id = sub_id

    def __get__(self, obj: AdditionalData | LanguageTemplate | None, owner: type) -> str | None:
        return None if obj is None else _get(obj.objects, self.sub_id)


def _check_named(
    parent: str,
    objects: tuple[DataObject, ...],
    table: Mapping[str, tuple[str, _Format]],
    extra: tuple[int, int, _Format] | None = None,
) -> None:
    _check_unique(parent, objects)
    for obj in objects:
        path = f"{parent}.{obj.id}"
        if obj.id in table:
            _check_value(path, obj.value, table[obj.id][1])
        elif extra is not None and extra[0] <= int(obj.id) <= extra[1]:
            _check_value(path, obj.value, extra[2])
        else:
            raise QrError(f"sub-ID {obj.id} is reserved for future use", field=path)


def _named_objects(
    table: Mapping[str, tuple[str, _Format]], values: Mapping[str, str | None]
) -> tuple[DataObject, ...]:
    by_name = {name: sub_id for sub_id, (name, _) in table.items()}
    return tuple(
        DataObject(by_name[name], value)
        for name, value in sorted(values.items(), key=lambda kv: by_name[kv[0]])
        if value is not None
    )


@dataclass(frozen=True, slots=True)
class AdditionalData:
    """The additional data field template, ID 62 (QRCPS-MPM, "Additional Data Field
    Template"): bill number (01), mobile number (02), store label (03), loyalty number
    (04), reference label (05), customer label (06), terminal label (07), purpose of
    transaction (08), additional consumer data request (09: any of ``A``, ``M``,
    ``E``, once each), merchant tax ID (10), merchant channel (11); 50-99 payment
    system specific templates (kept as their text). ``objects`` are in payload order.
    """

    objects: tuple[DataObject, ...]

    bill_number = _Sub("01")
    mobile_number = _Sub("02")
    store_label = _Sub("03")
    loyalty_number = _Sub("04")
    reference_label = _Sub("05")
    customer_label = _Sub("06")
    terminal_label = _Sub("07")
    purpose = _Sub("08")
    consumer_data_request = _Sub("09")
    merchant_tax_id = _Sub("10")
    merchant_channel = _Sub("11")

    def __post_init__(self) -> None:
        _check_named("62", self.objects, _ADDITIONAL, (50, 99, _PAYMENT_SYSTEM_SPECIFIC))
        if not self.objects:
            raise QrError("an additional data template holds at least one object", field="62")
        request = _get(self.objects, "09")
        if request is not None and (
            any(c not in "AME" for c in request) or len(set(request)) != len(request)
        ):
            raise QrError("consumer data request is A, M and E, each once at most", field="62.09")

    @classmethod
    def of(cls, **values: str | None) -> AdditionalData:
        """Template 62 from named values (``bill_number="INV-7"``), in ID order."""
        names = {name for name, _ in _ADDITIONAL.values()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise QrError(f"no additional data named {unknown[0]!r}", field="62")
        return cls(_named_objects(_ADDITIONAL, values))

    def get(self, sub_id: str) -> str | None:
        """The value of sub-ID ``sub_id``, if present."""
        return _get(self.objects, sub_id)


@dataclass(frozen=True, slots=True)
class LanguageTemplate:
    """Merchant information in an alternate language, ID 64 (QRCPS-MPM, "Merchant
    Information - Language Template"): language preference (00, ISO 639 alpha-2,
    mandatory), merchant name (01, mandatory) and city (02) in that language (format
    S: any script)."""

    objects: tuple[DataObject, ...]

    language = _Sub("00")
    name = _Sub("01")
    city = _Sub("02")

    def __post_init__(self) -> None:
        _check_named("64", self.objects, _LANGUAGE)
        for sub_id in ("00", "01"):
            if _get(self.objects, sub_id) is None:
                raise QrError("mandatory in the language template", field=f"64.{sub_id}")
        language = _get(self.objects, "00") or ""
        if re.fullmatch(r"[A-Za-z]{2}", language) is None:
            raise QrError("language preference is two letters (ISO 639)", field="64.00")

    @classmethod
    def of(cls, language: str, name: str, city: str | None = None) -> LanguageTemplate:
        """Template 64 from its values, in ID order."""
        return cls(_named_objects(_LANGUAGE, {"language": language, "name": name, "city": city}))


#: Root IDs in the order an encoder writes them when a code has no recorded order.
def _canonical_rank(id_: str) -> int:
    return 100 if id_ == "63" else int(id_)


@dataclass(frozen=True)
class MerchantPresentedCode:
    """A merchant-presented code (QRCPS-MPM), its values typed and checked.

    ``accounts`` are the merchant account information objects 02-51 (at least one):
    :class:`DataObject` for the payment networks' primitive IDs 02-25,
    :class:`Template` for 26-51; they and ``unreserved`` are kept sorted by ID.
    ``point_of_initiation`` is ``"11"`` (static: the same code for many payments) or
    ``"12"`` (dynamic: one payment) or ``None`` (absent). ``amount`` and
    ``convenience_fee_fixed`` are decimal text in the currency's major unit
    (``"23.72"``), ``convenience_fee_percentage`` ``"0.01"`` to ``"99.99"``.

    ``order`` is the order of the root IDs as decoded (it takes no part in equality);
    encoding writes them in that order, then any other present object in ID order,
    and always 00 first and 63 last.
    """

    accounts: tuple[DataObject | Template, ...]
    merchant_category_code: str
    currency: str
    country: str
    merchant_name: str
    merchant_city: str
    point_of_initiation: str | None = None
    amount: str | None = None
    tip_or_convenience: str | None = None
    convenience_fee_fixed: str | None = None
    convenience_fee_percentage: str | None = None
    postal_code: str | None = None
    additional_data: AdditionalData | None = None
    language: LanguageTemplate | None = None
    unreserved: tuple[Template, ...] = ()
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def dynamic(self) -> bool:
        """Whether the code is for one payment (point of initiation ``"12"``)."""
        return self.point_of_initiation == "12"

    def _primitives(self) -> dict[str, str | None]:
        return {
            "01": self.point_of_initiation,
            "52": self.merchant_category_code,
            "53": self.currency,
            "54": self.amount,
            "55": self.tip_or_convenience,
            "56": self.convenience_fee_fixed,
            "57": self.convenience_fee_percentage,
            "58": self.country,
            "59": self.merchant_name,
            "60": self.merchant_city,
            "61": self.postal_code,
        }

    def __post_init__(self) -> None:
        for id_, value in self._primitives().items():
            if value is None and id_ in _MANDATORY:
                raise QrError(f"{_ROOT[id_].name} missing", field=id_)
            if value is not None:
                _check_value(id_, value, _ROOT[id_])
        if self.point_of_initiation not in (None, "11", "12"):
            raise QrError("point of initiation is 11 (static) or 12 (dynamic)", field="01")
        for id_, value in (("54", self.amount), ("56", self.convenience_fee_fixed)):
            if value is not None and (_AMOUNT.fullmatch(value) is None or not value.strip("0.")):
                raise QrError("an amount is digits with '.' as decimal mark, above zero", field=id_)
        if _ALPHA2.fullmatch(self.country) is None:
            raise QrError("country code is two upper-case letters (ISO 3166-1)", field="58")
        indicator = self.tip_or_convenience
        if indicator not in (None, "01", "02", "03"):
            raise QrError("tip or convenience indicator is 01, 02 or 03", field="55")
        if (indicator == "02") != (self.convenience_fee_fixed is not None):
            raise QrError("present exactly when the indicator (55) is 02", field="56")
        if (indicator == "03") != (self.convenience_fee_percentage is not None):
            raise QrError("present exactly when the indicator (55) is 03", field="57")
        percent = self.convenience_fee_percentage
        if percent is not None and (
            _PERCENT.fullmatch(percent) is None or not 0 < float(percent) < 100
        ):
            raise QrError("a percentage is 0.01 to 99.99", field="57")
        self._check_templates()
        self._check_order()
        if len(self.encode()) > MAX_PAYLOAD:
            raise QrError(f"payload over {MAX_PAYLOAD} characters", field=None)

    def _check_templates(self) -> None:
        if not isinstance(self.accounts, tuple) or not self.accounts:
            raise QrError("at least one merchant account information (02-51)", field="02-51")
        if not isinstance(self.unreserved, tuple):
            raise QrError("unreserved templates are a tuple", field="80-99")
        # Kept in ID order: where each goes in the payload is ``order``'s business.
        by_id = lambda obj: str(getattr(obj, "id", ""))  # noqa: E731
        object.__setattr__(self, "accounts", tuple(sorted(self.accounts, key=by_id)))
        object.__setattr__(self, "unreserved", tuple(sorted(self.unreserved, key=by_id)))
        seen: set[str] = set()
        for account in self.accounts:
            if isinstance(account, DataObject):
                if _kind(account.id) != "account":
                    raise QrError("a primitive account has ID 02-25", field=account.id)
                _check_value(account.id, account.value, _PRIMITIVE_ACCOUNT)
            elif not isinstance(account, Template) or _kind(account.id) != "account-template":
                raise QrError("an account template has ID 26-51", field="26-51")
            if account.id in seen:
                raise QrError("duplicate ID", field=account.id)
            seen.add(account.id)
        for template in self.unreserved:
            if not isinstance(template, Template) or _kind(template.id) != "unreserved":
                raise QrError("an unreserved template has ID 80-99", field="80-99")
            if template.id in seen:
                raise QrError("duplicate ID", field=template.id)
            seen.add(template.id)
        if self.additional_data is not None and not isinstance(
            self.additional_data, AdditionalData
        ):
            raise QrError("additional data is an AdditionalData", field="62")
        if self.language is not None and not isinstance(self.language, LanguageTemplate):
            raise QrError("the language template is a LanguageTemplate", field="64")

    def _check_order(self) -> None:
        if not isinstance(self.order, tuple) or len(set(self.order)) != len(self.order):
            raise QrError("order lists each root ID once", field=None)

    # --- encoding ----------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        """Each present root ID (but 00 and 63) and its encoded value."""
        out = {k: v for k, v in self._primitives().items() if v is not None}
        for account in self.accounts:
            if isinstance(account, DataObject):
                out[account.id] = account.value
            else:
                out[account.id] = _encode_objects(account.id, account.objects)
        for template in self.unreserved:
            out[template.id] = _encode_objects(template.id, template.objects)
        if self.additional_data is not None:
            out["62"] = _encode_objects("62", self.additional_data.objects)
        if self.language is not None:
            out["64"] = _encode_objects("64", self.language.objects)
        return out

    def encode(self) -> str:
        """The payload text, CRC included (QRCPS-MPM)."""
        values = self._values()
        ids = [i for i in self.order if i in values]
        ids += sorted((i for i in values if i not in ids), key=_canonical_rank)
        body = _tlv("00", "01") + "".join(_tlv(i, values[i]) for i in ids) + "6304"
        return f"{body}{crc16(body.encode()):04X}"

    # --- decoding ----------------------------------------------------------------------

    @classmethod
    def decode(cls, payload: str | bytes) -> MerchantPresentedCode:
        """Decode and check a payload (text, or its UTF-8 bytes); see the module doc.

        Raises :class:`~emvwire.errors.QrError` naming the field at fault, and
        nothing else, for any input.
        """
        text = _text(payload)
        if len(text) > MAX_PAYLOAD:
            raise QrError(f"payload over {MAX_PAYLOAD} characters", field=None)
        parsed = _split(text, "")
        if not parsed:
            raise QrError("empty payload", field="00")
        offsets: dict[str, int] = {}
        for id_, _, at in parsed:
            if id_ in offsets:
                raise QrError("duplicate ID", field=id_, offset=at)
            offsets[id_] = at
        if parsed[0][0] != "00":
            raise QrError("the payload format indicator must come first", field="00")
        if parsed[-1][0] != "63":
            why = "the CRC must come last" if "63" in offsets else "CRC missing"
            raise QrError(why, field="63", offset=parsed[-1][2])
        crc_at = parsed[-1][2]
        crc_text = parsed[-1][1]
        if len(crc_text) != 4 or _CRC_HEX.fullmatch(crc_text) is None:
            raise QrError("CRC is four upper-case hex digits", field="63", offset=crc_at)
        expected = crc16(text[: crc_at + 4].encode())
        if int(crc_text, 16) != expected:
            raise QrError(
                f"CRC {crc_text} does not match the payload's {expected:04X}",
                field="63",
                offset=crc_at,
            )
        if parsed[0][1] != "01":
            raise QrError("payload format indicator must be 01", field="00", offset=0)
        try:
            return cls._build(parsed)
        except QrError as exc:
            root = (exc.field or "").split(".")[0]
            offset = exc.offset or offsets.get(root, 0)
            raise QrError(exc.message, field=exc.field, offset=offset) from None

    @classmethod
    def _build(cls, parsed: list[tuple[str, str, int]]) -> MerchantPresentedCode:
        primitives: dict[str, str] = {}
        accounts: list[DataObject | Template] = []
        unreserved: list[Template] = []
        additional: AdditionalData | None = None
        language: LanguageTemplate | None = None
        for id_, value, at in parsed[1:-1]:
            kind = _kind(id_)
            if kind == "primitive":
                primitives[id_] = value
            elif kind == "account":
                accounts.append(DataObject(id_, value))
            elif kind in ("account-template", "unreserved"):
                template = Template(id_, _objects(value, id_, at + 4))
                (accounts if kind == "account-template" else unreserved).append(template)
            elif kind == "62":
                additional = AdditionalData(_objects(value, id_, at + 4))
            elif kind == "64":
                language = LanguageTemplate(_objects(value, id_, at + 4))
            else:
                raise QrError(f"ID {id_} is reserved for future use", field=id_)
        for id_ in _MANDATORY:
            if id_ not in primitives:
                raise QrError(f"{_ROOT[id_].name} missing", field=id_)
        if not accounts:
            raise QrError("no merchant account information (02-51)", field="02-51")
        return cls(
            accounts=tuple(accounts),
            merchant_category_code=primitives["52"],
            currency=primitives["53"],
            country=primitives["58"],
            merchant_name=primitives["59"],
            merchant_city=primitives["60"],
            point_of_initiation=primitives.get("01"),
            amount=primitives.get("54"),
            tip_or_convenience=primitives.get("55"),
            convenience_fee_fixed=primitives.get("56"),
            convenience_fee_percentage=primitives.get("57"),
            postal_code=primitives.get("61"),
            additional_data=additional,
            language=language,
            unreserved=tuple(unreserved),
            order=tuple(id_ for id_, _, _ in parsed[1:-1]),
        )


def _text(payload: str | bytes) -> str:
    """The payload as text: bytes must be UTF-8, text must encode to UTF-8."""
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QrError("payload is not UTF-8", field=None, offset=exc.start) from None
    if not isinstance(payload, str):
        raise QrError("payload is text or bytes", field=None)
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QrError("payload has a lone surrogate", field=None, offset=exc.start) from None
    return payload
