"""Consumer-presented QR codes (EMV QRCPS-CPM): the phone's code a till scans.

The code's text is the Base64 (RFC 4648 §4, padded) of BER-TLV data objects (EMV Book
3 Annex B, :mod:`emvwire.tlv`) laid out as QRCPS-CPM's "QR Code Data Content" tables
give them:

- ``85`` payload format indicator, ``"CPV01"``: first, mandatory;
- ``61`` application template, one or more, each for one application: ``4F`` ADF name
  (the AID, mandatory), ``50`` application label, ``57`` track 2 equivalent data or
  ``5A`` PAN (a token, on a phone), ``5F20`` cardholder name, ``5F2D`` language
  preference, ``5F50`` issuer URL, ``9F08`` application version number, ``9F19``
  token requestor ID, ``9F24`` payment account reference, ``9F25`` last four digits
  of the PAN, and ``63`` the application specific transparent template: EMV data
  objects as a card returns them to GENERATE AC (``9F26`` application cryptogram,
  ``9F27`` CID, ``9F10`` IAD, ``9F36`` ATC, ``9F37`` unpredictable number, ``82``
  AIP...);
- ``62`` common data template, at most one, after the application templates: the
  same data objects shared by every application, with ``64`` the common data
  transparent template.

Each application must find ``57`` or ``5A`` in its template or in the common one.

:meth:`ConsumerPresentedCode.decode` is strict: Base64 that is not canonical, BER-TLV
that is malformed or not in its shortest form (so that a decoded code encodes back to
exactly its text), a tag out of place or twice in one template, a value of the wrong
length: each is a :class:`~emvwire.errors.QrError` naming the data object
(``"61.63.9F26"``), never with a PAN or track 2 value in its message. The types
check their values on construction, so :meth:`ConsumerPresentedCode.encode` only
produces valid codes.

:meth:`ConsumerPresentedCode.icc_data` gives an application's data as field 55 of
an authorisation (the tags of :data:`emvwire.contract.FIELD_55_TAGS`), so that the
issuer verifies the code's cryptogram as it verifies a tap's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from emvwire import tlv
from emvwire.contract import FIELD_55_TAGS
from emvwire.errors import DecodeError, QrError
from emvwire.tags import Tag
from emvwire.tlv import Tlv, tag_hex

__all__ = [
    "FORMAT_INDICATOR",
    "MAX_DATA",
    "Application",
    "CommonData",
    "ConsumerPresentedCode",
]

#: The value of the payload format indicator ``85`` (QRCPS-CPM: "CPV01").
FORMAT_INDICATOR: Final = b"CPV01"
#: Largest decoded payload accepted, in bytes: a QR code (version 40, low error
#: correction) holds 2,953 bytes, so 2,048 bytes of data (2,732 Base64 characters)
#: is more than any code carries.
MAX_DATA: Final = 2048

PAYLOAD_FORMAT_INDICATOR: Final = 0x85
APPLICATION_TEMPLATE: Final = Tag.APPLICATION_TEMPLATE  # 61
COMMON_DATA_TEMPLATE: Final = 0x62
APPLICATION_TRANSPARENT_TEMPLATE: Final = 0x63
COMMON_TRANSPARENT_TEMPLATE: Final = 0x64

#: The primitive data objects of templates 61 and 62 and their lengths in bytes
#: (EMV Book 3 Annex A; QRCPS-CPM's data content tables).
_LENGTHS: Final[Mapping[int, tuple[int, int]]] = {
    Tag.AID: (5, 16),
    Tag.APPLICATION_LABEL: (1, 16),
    Tag.TRACK2_EQUIVALENT: (1, 19),
    Tag.PAN: (1, 10),
    Tag.CARDHOLDER_NAME: (2, 26),
    Tag.LANGUAGE_PREFERENCE: (2, 8),
    Tag.ISSUER_URL: (1, 255),
    Tag.CARD_APPLICATION_VERSION: (2, 2),
    Tag.TOKEN_REQUESTOR_ID: (6, 6),
    Tag.PAR: (29, 29),
    Tag.LAST4_OF_PAN: (2, 2),
}
#: Data objects of text (formats a, an, ans: EMV Book 3 Annex A), bytes 0x20-0x7E.
_TEXT: Final = frozenset(
    {Tag.APPLICATION_LABEL, Tag.CARDHOLDER_NAME, Tag.LANGUAGE_PREFERENCE, Tag.ISSUER_URL, Tag.PAR}
)


def _path(*parts: int) -> str:
    return ".".join(tag_hex(p) for p in parts)


def _check_template(
    objects: tuple[Tlv, ...], parent: int, transparent: int, allowed: frozenset[int]
) -> None:
    """Check one 61 or 62 template's data objects (tags, lengths, no duplicates)."""
    seen: set[int] = set()
    for obj in objects:
        if not isinstance(obj, Tlv) or not isinstance(obj.value, bytes):
            raise QrError("a template holds Tlv objects of bytes", field=_path(parent))
        path = _path(parent, obj.tag)
        if obj.tag in seen:
            raise QrError("tag twice in one template", field=path)
        seen.add(obj.tag)
        if obj.tag == transparent:
            _check_transparent(obj, parent)
            continue
        if obj.tag not in allowed:
            raise QrError(f"tag {tag_hex(obj.tag)} does not belong in this template", field=path)
        low, high = _LENGTHS[obj.tag]
        if not low <= len(obj.value) <= high:
            raise QrError(f"value of {len(obj.value)} bytes, not {low} to {high}", field=path)
        if obj.tag in _TEXT and not all(0x20 <= b <= 0x7E for b in obj.value):
            raise QrError("text of characters 0x20-0x7E expected", field=path)


def _check_transparent(obj: Tlv, parent: int) -> None:
    """A transparent template (63 in 61, 64 in 62): primitive EMV data objects, once each."""
    seen: set[int] = set()
    for child in obj.children:
        if not isinstance(child, Tlv) or not isinstance(child.value, bytes):
            raise QrError("a template holds Tlv objects of bytes", field=_path(parent, obj.tag))
        path = _path(parent, obj.tag, child.tag)
        if child.constructed:
            raise QrError("a template inside the transparent template", field=path)
        if child.tag in seen:
            raise QrError("tag twice in the transparent template", field=path)
        seen.add(child.tag)
    if _encoded(obj.children) != obj.value:
        raise QrError("transparent template is not BER-TLV", field=_path(parent, obj.tag))


def _text(text: str | None, field: str) -> bytes | None:
    """Text as a data object's bytes (characters 0x20-0x7E, EMV formats a/an/ans)."""
    if text is None:
        return None
    if not isinstance(text, str) or not all(" " <= c <= "~" for c in text):
        raise QrError("text of characters 0x20-0x7E expected", field=field)
    return text.encode("ascii")


def _encoded(objects: tuple[Tlv, ...]) -> bytes:
    return b"".join(tlv.encode(o.tag, o.value) for o in objects)


def _get(objects: tuple[Tlv, ...], tag: int) -> bytes | None:
    for obj in objects:
        if obj.tag == tag:
            return obj.value
    return None


def _transparent_values(objects: tuple[Tlv, ...], tag: int) -> dict[int, bytes]:
    for obj in objects:
        if obj.tag == tag:
            return {child.tag: child.value for child in obj.children}
    return {}


def _template(
    tag: int,
    values: Mapping[int, bytes | None],
    transparent_tag: int,
    transparent: Mapping[int, bytes],
) -> tuple[Tlv, ...]:
    objects = [Tlv(t, v) for t, v in values.items() if v is not None]
    if transparent:
        kids = tuple(Tlv(t, v) for t, v in transparent.items())
        objects.append(Tlv(transparent_tag, _encoded(kids), kids))
    return tuple(objects)


@dataclass(frozen=True, slots=True)
class Application:
    """One application template ``61`` (QRCPS-CPM): its data objects in code order.

    The repr shows tags and lengths only (:class:`~emvwire.tlv.Tlv`'s), never a PAN.
    """

    objects: tuple[Tlv, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.objects, tuple):
            raise QrError("objects is a tuple of Tlv", field="61")
        _check_template(
            self.objects, APPLICATION_TEMPLATE, APPLICATION_TRANSPARENT_TEMPLATE, _IN_61
        )
        if _get(self.objects, Tag.AID) is None:
            raise QrError("ADF name (AID) missing", field=_path(APPLICATION_TEMPLATE, Tag.AID))

    @classmethod
    def of(
        cls,
        aid: bytes,
        *,
        label: str | None = None,
        track2: bytes | None = None,
        pan: bytes | None = None,
        cardholder_name: str | None = None,
        data: Mapping[int, bytes] | None = None,
        more: Mapping[int, bytes] | None = None,
    ) -> Application:
        """An application template: ``data`` goes in its transparent template 63 (in
        the order given), ``more`` are other data objects of 61 by tag."""
        values: dict[int, bytes | None] = {
            Tag.AID: aid,
            Tag.APPLICATION_LABEL: _text(label, "61.50"),
            Tag.TRACK2_EQUIVALENT: track2,
            Tag.PAN: pan,
            Tag.CARDHOLDER_NAME: _text(cardholder_name, "61.5F20"),
            **(more or {}),
        }
        return cls(_template(0x61, values, APPLICATION_TRANSPARENT_TEMPLATE, data or {}))

    @property
    def aid(self) -> bytes:
        """The ADF name ``4F``: the application's AID."""
        return _get(self.objects, Tag.AID) or b""

    @property
    def label(self) -> str | None:
        """The application label ``50``, if present."""
        value = _get(self.objects, Tag.APPLICATION_LABEL)
        return None if value is None else value.decode("ascii")

    def get(self, tag: int) -> bytes | None:
        """The value of a primitive data object of this template (not of 63)."""
        return _get(self.objects, tag)

    @property
    def data(self) -> dict[int, bytes]:
        """The data objects of the application specific transparent template ``63``."""
        return _transparent_values(self.objects, APPLICATION_TRANSPARENT_TEMPLATE)


@dataclass(frozen=True, slots=True)
class CommonData:
    """The common data template ``62`` (QRCPS-CPM): data shared by the applications,
    with the common data transparent template ``64``."""

    objects: tuple[Tlv, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.objects, tuple) or not self.objects:
            raise QrError("a common data template holds data objects", field="62")
        _check_template(self.objects, COMMON_DATA_TEMPLATE, COMMON_TRANSPARENT_TEMPLATE, _IN_62)

    @classmethod
    def of(
        cls,
        *,
        track2: bytes | None = None,
        pan: bytes | None = None,
        cardholder_name: str | None = None,
        data: Mapping[int, bytes] | None = None,
        more: Mapping[int, bytes] | None = None,
    ) -> CommonData:
        """A common data template: ``data`` goes in its transparent template 64."""
        values: dict[int, bytes | None] = {
            Tag.TRACK2_EQUIVALENT: track2,
            Tag.PAN: pan,
            Tag.CARDHOLDER_NAME: _text(cardholder_name, "62.5F20"),
            **(more or {}),
        }
        return cls(_template(0x62, values, COMMON_TRANSPARENT_TEMPLATE, data or {}))

    def get(self, tag: int) -> bytes | None:
        """The value of a primitive data object of this template (not of 64)."""
        return _get(self.objects, tag)

    @property
    def data(self) -> dict[int, bytes]:
        """The data objects of the common data transparent template ``64``."""
        return _transparent_values(self.objects, COMMON_TRANSPARENT_TEMPLATE)


_IN_61: Final = frozenset(_LENGTHS)
_IN_62: Final = frozenset(_LENGTHS) - {Tag.AID}


@dataclass(frozen=True, slots=True)
class ConsumerPresentedCode:
    """A consumer-presented code (QRCPS-CPM): one or more applications and at most
    one common data template."""

    applications: tuple[Application, ...]
    common: CommonData | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.applications, tuple) or not self.applications:
            raise QrError("at least one application template", field="61")
        for i, app in enumerate(self.applications):
            if not isinstance(app, Application):
                raise QrError(f"application {i} is not an Application", field="61")
            if self._card_data(app, Tag.TRACK2_EQUIVALENT) is None and (
                self._card_data(app, Tag.PAN) is None
            ):
                raise QrError(
                    f"application {i} has neither track 2 equivalent data nor a PAN",
                    field="61",
                )
        if self.common is not None and not isinstance(self.common, CommonData):
            raise QrError("common data is a CommonData", field="62")
        if len(self._data()) > MAX_DATA:
            raise QrError(f"code over {MAX_DATA} bytes", field=None)

    def _card_data(self, app: Application, tag: int) -> bytes | None:
        value = app.get(tag)
        if value is None and self.common is not None:
            value = self.common.get(tag)
        return value

    def track2(self, index: int = 0) -> bytes | None:
        """Track 2 equivalent data ``57`` of application ``index`` (its own or the
        common template's), for the authorisation's track 2."""
        return self._card_data(self.applications[index], Tag.TRACK2_EQUIVALENT)

    def pan(self, index: int = 0) -> bytes | None:
        """The PAN ``5A`` of application ``index`` (its own or the common template's)."""
        return self._card_data(self.applications[index], Tag.PAN)

    def icc_data(self, index: int = 0, terminal: Mapping[int, bytes] | None = None) -> bytes:
        """Field 55 (BER-TLV) of application ``index``, as a tap's would be.

        The data objects of :data:`~emvwire.contract.FIELD_55_TAGS`, in that order,
        taken from the application's transparent template 63, then the common
        transparent template 64, then ``terminal`` (the till's own: amount, date,
        TVR, country...); the DF name ``84`` is the application's AID, as a card's
        SELECT answer gives it. A tag given twice with different values is a
        :class:`~emvwire.errors.QrError`: the till cannot contradict the code.
        """
        app = self.applications[index]
        sources: list[tuple[str, Mapping[int, bytes]]] = [
            ("61.63", app.data),
            ("62.64", self.common.data if self.common is not None else {}),
            ("terminal", terminal or {}),
            ("61.4F", {Tag.DF_NAME: app.aid}),
        ]
        values: dict[int, bytes] = {}
        for where, source in sources:
            for tag, value in source.items():
                if tag in values and values[tag] != value:
                    raise QrError(
                        f"{tag_hex(tag)} differs from the code's", field=f"{where}.{tag_hex(tag)}"
                    )
                values.setdefault(tag, value)
        return b"".join(tlv.encode(tag, values[tag]) for tag in FIELD_55_TAGS if tag in values)

    def _data(self) -> bytes:
        parts = [tlv.encode(PAYLOAD_FORMAT_INDICATOR, FORMAT_INDICATOR)]
        parts += [tlv.encode(APPLICATION_TEMPLATE, _encoded(a.objects)) for a in self.applications]
        if self.common is not None:
            parts.append(tlv.encode(COMMON_DATA_TEMPLATE, _encoded(self.common.objects)))
        return b"".join(parts)

    def encode(self) -> str:
        """The code's text: Base64 of the BER-TLV data (QRCPS-CPM)."""
        return base64.b64encode(self._data()).decode("ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> ConsumerPresentedCode:
        """Decode and check a code's text (see the module doc).

        Raises :class:`~emvwire.errors.QrError` naming the data object at fault, and
        nothing else, for any input.
        """
        data = _base64(text)
        if len(data) > MAX_DATA:
            raise QrError(f"code over {MAX_DATA} bytes", field=None)
        try:
            objects = tlv.decode(data)
        except DecodeError as exc:
            where = None if exc.tag is None else tag_hex(exc.tag)
            raise QrError(f"not BER-TLV: {exc.message}", field=where, offset=exc.offset) from None
        offset = 0
        for obj in objects:
            if _canonical(obj) != data[offset : offset + len(obj.encode())]:
                raise QrError(
                    "BER-TLV not in its shortest form (padding or a long length)",
                    field=tag_hex(obj.tag),
                    offset=offset,
                )
            offset += len(obj.encode())
        if offset != len(data):
            raise QrError("padding bytes around the data objects", field=None, offset=offset)
        if not objects or objects[0].tag != PAYLOAD_FORMAT_INDICATOR:
            raise QrError("the payload format indicator 85 must come first", field="85")
        if objects[0].value != FORMAT_INDICATOR:
            raise QrError("payload format indicator is not CPV01", field="85")
        applications: list[Application] = []
        common: CommonData | None = None
        for obj in objects[1:]:
            if obj.tag == APPLICATION_TEMPLATE:
                if common is not None:
                    raise QrError("application template after the common data", field="61")
                applications.append(Application(obj.children))
            elif obj.tag == COMMON_DATA_TEMPLATE:
                if common is not None:
                    raise QrError("a second common data template", field="62")
                common = CommonData(obj.children)
            else:
                raise QrError(
                    f"tag {tag_hex(obj.tag)} does not belong at the top", field=tag_hex(obj.tag)
                )
        return cls(tuple(applications), common)


def _canonical(obj: Tlv) -> bytes:
    """``obj`` encoded in the shortest form, templates re-encoded from their children."""
    if obj.constructed and obj.children:
        return tlv.encode(obj.tag, b"".join(_canonical(c) for c in obj.children))
    return tlv.encode(obj.tag, obj.value)


def _base64(text: str | bytes) -> bytes:
    """The bytes of a code's Base64 text, which must be canonical (RFC 4648 §4)."""
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
    elif isinstance(text, str):
        if not text.isascii():
            raise QrError("code is not Base64 (a character outside ASCII)", field=None)
        raw = text.encode("ascii")
    else:
        raise QrError("code is text or bytes", field=None)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise QrError("code is not Base64", field=None) from None
    if base64.b64encode(data) != raw:
        raise QrError("code is not canonical Base64", field=None)
    return data
