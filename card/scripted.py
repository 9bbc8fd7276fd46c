"""A scripted card: answers fixed by a JSON profile, the "lower tester" of entry point
testing (EMV Book B; EMVCo tests an entry point against cards that answer exactly as a
test case says).

Profile, schema ``tapstack.scripted-card/1`` (every hex value may be empty ``""``; a key
left out means the data object is absent)::

    {
      "schema": "tapstack.scripted-card/1",
      "name": "two applications",
      "atr": "3B8080018080",                        (optional)
      "ppse": {                                      (absent: SELECT PPSE answers 6A82)
        "sw": "9000",                                (default 9000)
        "fci": "6F...",                              (the whole FCI, or built from:)
        "entries": [{"aid": "A0000000031010", "label": "VISA", "priority": "01",
                     "kernel_id": "03", "extended_selection": "01", "extra": "DF7F0100"}],
        "extra": "9F0A0400010104",                   (appended to BF0C: unknown tags)
        "padding": true                              (00 bytes between the entries)
      },
      "applications": {
        "A0000000031010": {
          "sw": "9000",
          "fci": {"pdol": "9F66049F0206", "label": "VISA", "extra": "..."}  (or hex),
          "outcomes": [{"outcome": "approved", ...}]  (GPO answers, one per GPO)
        }
      },
      "commands": [{"apdu": "80CA9F17", "answers": ["9F170103", "9000"]}],
      "events": {"collisions": 1, "remove_after": 2, "removals": 1, "away_ms": 300,
                 "mute_after": 3, "mutes": 1}
    }

- SELECT by name answers the PPSE or the application whose key is exactly the name
  selected (an extended selection appended to an ADF name makes another key); any other
  name answers ``6A82``.
- GET PROCESSING OPTIONS on a selected application with ``outcomes`` answers the next
  one (the last repeats), encoded as :mod:`terminal.kernel.conformance` reads it:
  template 77 with the Outcome Parameter Set DF8129 (Book A Table 6.1) and the User
  Interface Request Data DF8116 (Book A Table 9.1) on outcome, then on restart. An
  outcome object: ``outcome`` (approved, declined, online_request, end_application,
  select_next, try_another_interface, try_again), ``start`` (A-D or null),
  ``online_response`` (emv_data, any or null), ``cvm`` (no_cvm, signature, online_pin,
  confirmation_code_verified or null), ``ui_on_outcome`` / ``ui_on_restart`` (``message``
  hex id, ``status`` name, ``hold_time_ms``, ``language``, ``value``, ``currency`` hex,
  ``qualifier`` amount or balance), ``data_record``, ``discretionary_data``, ``receipt``,
  ``alternate_interface`` (contact_chip, mag_stripe or null), ``field_off_ms`` (null:
  none), ``removal_timeout_ms``.
- ``commands``: a C-APDU whose hex begins with ``apdu`` gets the next of ``answers``
  (R-APDUs in hex, the last repeats), before any rule above.
- Anything else answers ``6D00``.
- ``events``: the first ``collisions`` activations report a collision (two cards in the
  field: :class:`CardCollision` from :meth:`ScriptedCard.power_on`); after
  ``remove_after`` C-APDUs of one presentation the card leaves the field
  (:class:`~card.transport.CardRemoved`), ``removals`` times (default 1), and stays
  away ``away_ms`` (default 0: back at once; the exception carries ``away_seconds``,
  which the in-process reader honours: no card to poll until then); after
  ``mute_after`` C-APDUs of one presentation the card does not answer the next one
  (it stays silent until the field goes off, as a card that lost its power supply
  halfway), ``mutes`` times (default 1).

The card never holds a secret; its counters (activations, commands, GPOs answered)
live in memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from card.errors import CardError
from card.transport import CardRemoved
from emvwire.apdu import PPSE
from emvwire.tags import Tag
from emvwire.tlv import encode

__all__ = [
    "SCHEMA",
    "CardCollision",
    "ScriptError",
    "ScriptedCard",
    "encode_outcome",
    "encode_ui_request",
    "is_scripted_profile",
    "load_scripted",
]

SCHEMA: Final = "tapstack.scripted-card/1"
_DEFAULT_ATR: Final = bytes.fromhex("3B8080018080")

#: Book A Table 6.1 values by name.
_OUTCOMES: Final[Mapping[str, int]] = {
    "approved": 0x1,
    "declined": 0x2,
    "online_request": 0x3,
    "end_application": 0x4,
    "select_next": 0x5,
    "try_another_interface": 0x6,
    "try_again": 0x7,
}
_STARTS: Final[Mapping[str | None, int]] = {"A": 0x0, "B": 0x1, "C": 0x2, "D": 0x3, None: 0xF}
_ONLINE: Final[Mapping[str | None, int]] = {"emv_data": 0x0, "any": 0x1, None: 0xF}
_CVMS: Final[Mapping[str | None, int]] = {
    "no_cvm": 0x0,
    "signature": 0x1,
    "online_pin": 0x2,
    "confirmation_code_verified": 0x3,
    None: 0xF,
}
_INTERFACES: Final[Mapping[str | None, int]] = {"contact_chip": 0x1, "mag_stripe": 0x2, None: 0xF}
#: Book A §9.2 reader status by name.
_STATUSES: Final[Mapping[str, int]] = {
    "not_ready": 0x00,
    "idle": 0x01,
    "ready_to_read": 0x02,
    "processing": 0x03,
    "card_read_successfully": 0x04,
    "processing_error": 0x05,
    "na": 0xFF,
}
_QUALIFIERS: Final[Mapping[str | None, int]] = {None: 0x00, "amount": 0x10, "balance": 0x20}


class ScriptError(CardError, ValueError):
    """A scripted card profile is malformed; ``path`` says where (``ppse.entries[1]``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CardCollision(CardError):  # noqa: N818 - the name the terminal matches
    """More than one card in the field: raised by :meth:`ScriptedCard.power_on`."""

    card_collision = True


def _hex(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise ScriptError(path, "expected a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ScriptError(path, "not a hex string") from None


def _sw(value: Any, path: str) -> bytes:
    sw = _hex(value, path)
    if len(sw) != 2:
        raise ScriptError(path, "a status word is 4 hex digits")
    return sw


def _choice(table: Mapping[Any, int], value: Any, path: str) -> int:
    if value not in table:
        names = ", ".join(str(k) for k in table if k is not None)
        raise ScriptError(path, f"{value!r} is not one of {names} (or null)")
    return table[value]


def _int(obj: Mapping[str, Any], key: str, path: str, default: int, top: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ScriptError(f"{path}.{key}", f"expected a whole number 0 to {top}")
    return value


def encode_ui_request(obj: Any, path: str = "ui") -> bytes:
    """User Interface Request Data DF8116 (Book A Table 9.1, 22 bytes) from JSON."""
    if not isinstance(obj, dict):
        raise ScriptError(path, "expected an object")
    message = _hex(obj.get("message", "FF"), f"{path}.message")
    if len(message) != 1:
        raise ScriptError(f"{path}.message", "a message identifier is one byte (2 hex digits)")
    status = _choice(_STATUSES, obj.get("status", "na"), f"{path}.status")
    hold = _int(obj, "hold_time_ms", path, 0, 0xFFFFFF * 100) // 100
    language = obj.get("language", "")
    if not isinstance(language, str) or len(language) > 8 or not language.isascii():
        raise ScriptError(f"{path}.language", "up to 8 ASCII characters (ISO 639 codes)")
    value = obj.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ScriptError(f"{path}.value", "expected an amount in minor units")
    if value is not None and not 0 <= value <= 999_999_999_999:
        raise ScriptError(f"{path}.value", "the value is n 12")
    qualifier = _choice(
        _QUALIFIERS, obj.get("qualifier", "amount" if value is not None else None), path
    )
    currency = _hex(obj.get("currency", ""), f"{path}.currency")
    if len(currency) not in (0, 2):
        raise ScriptError(f"{path}.currency", "a currency code is 4 hex digits (n 3)")
    return (
        message
        + bytes((status,))
        + hold.to_bytes(3, "big")
        + language.encode("ascii").ljust(8, b"\x00")
        + bytes((qualifier,))
        + bytes.fromhex(f"{value or 0:012d}")
        + currency.rjust(2, b"\x00")
    )


def encode_outcome(obj: Any, path: str = "outcome") -> bytes:
    """The GPO answer body of a scripted outcome (module docstring): template 77 with
    DF8129 and the DF8116 objects it announces."""
    if not isinstance(obj, dict):
        raise ScriptError(path, "expected an object")
    if "outcome" not in obj:
        raise ScriptError(path, "an outcome needs 'outcome'")
    field_off = obj.get("field_off_ms")
    if field_off is not None and (
        isinstance(field_off, bool) or not isinstance(field_off, int) or not 0 <= field_off < 25500
    ):
        raise ScriptError(f"{path}.field_off_ms", "0 to 25400 ms (units of 100 ms) or null")
    shown = obj.get("ui_on_outcome")
    again = obj.get("ui_on_restart")
    flags = (
        (0x80 if shown is not None else 0)
        | (0x40 if again is not None else 0)
        | (0x20 if obj.get("data_record") else 0)
        | (0x10 if obj.get("discretionary_data") else 0)
        | (0x08 if obj.get("receipt") else 0)
    )
    ops = bytes(
        (
            _choice(_OUTCOMES, obj["outcome"], f"{path}.outcome") << 4,
            _choice(_STARTS, obj.get("start"), f"{path}.start") << 4,
            _choice(_ONLINE, obj.get("online_response"), f"{path}.online_response") << 4,
            _choice(_CVMS, obj.get("cvm"), f"{path}.cvm") << 4,
            flags,
            _choice(_INTERFACES, obj.get("alternate_interface"), path) << 4 | 0x0F,
            0xFF if field_off is None else field_off // 100,
            _int(obj, "removal_timeout_ms", path, 0, 25500) // 100,
        )
    )
    body = encode(Tag.OUTCOME_PARAMETER_SET, ops)
    if shown is not None:
        body += encode(Tag.UI_REQUEST_DATA, encode_ui_request(shown, f"{path}.ui_on_outcome"))
    if again is not None:
        body += encode(Tag.UI_REQUEST_DATA, encode_ui_request(again, f"{path}.ui_on_restart"))
    return encode(Tag.RESPONSE_FORMAT_2, body)


def _ppse_fci(obj: Mapping[str, Any], path: str) -> bytes:
    if "fci" in obj:
        return _hex(obj["fci"], f"{path}.fci")
    entries = obj.get("entries", [])
    if not isinstance(entries, list):
        raise ScriptError(f"{path}.entries", "expected a list")
    gap = b"\x00\x00" if obj.get("padding") else b""
    built = []
    for i, entry in enumerate(entries):
        where = f"{path}.entries[{i}]"
        if not isinstance(entry, dict):
            raise ScriptError(where, "expected an object")
        body = b""
        if "aid" in entry:
            body += encode(Tag.AID, _hex(entry["aid"], f"{where}.aid"))
        if "label" in entry:
            body += encode(Tag.APPLICATION_LABEL, str(entry["label"]).encode("latin-1", "replace"))
        if "priority" in entry:
            body += encode(Tag.APPLICATION_PRIORITY, _hex(entry["priority"], f"{where}.priority"))
        if "kernel_id" in entry:
            body += encode(Tag.KERNEL_IDENTIFIER, _hex(entry["kernel_id"], f"{where}.kernel_id"))
        if "extended_selection" in entry:
            body += encode(
                Tag.EXTENDED_SELECTION,
                _hex(entry["extended_selection"], f"{where}.extended_selection"),
            )
        body += _hex(entry.get("extra", ""), f"{where}.extra")
        built.append(encode(Tag.APPLICATION_TEMPLATE, body))
    directory = gap + gap.join(built) + gap + _hex(obj.get("extra", ""), f"{path}.extra")
    a5 = encode(Tag.FCI_ISSUER_DISCRETIONARY_DATA, directory)
    return encode(
        Tag.FCI_TEMPLATE, encode(Tag.DF_NAME, PPSE) + encode(Tag.FCI_PROPRIETARY_TEMPLATE, a5)
    )


def _app_fci(name: bytes, fci: Any, path: str) -> bytes:
    if isinstance(fci, str):
        return _hex(fci, path)
    if not isinstance(fci, dict):
        raise ScriptError(path, "expected hex or an object {pdol, label, extra}")
    body = b""
    if "label" in fci:
        body += encode(Tag.APPLICATION_LABEL, str(fci["label"]).encode("latin-1", "replace"))
    if "pdol" in fci:
        body += encode(Tag.PDOL, _hex(fci["pdol"], f"{path}.pdol"))
    body += _hex(fci.get("extra", ""), f"{path}.extra")
    gap = b"\x00" if fci.get("padding") else b""
    return encode(
        Tag.FCI_TEMPLATE,
        encode(Tag.DF_NAME, name) + gap + encode(Tag.FCI_PROPRIETARY_TEMPLATE, body) + gap,
    )


@dataclass
class _App:
    answer: bytes
    outcomes: list[bytes] = field(default_factory=list)
    gpos: int = 0


@dataclass
class _Command:
    prefix: bytes
    answers: list[bytes]
    used: int = 0


#: The keys of ``events`` and their defaults (``remove_after`` and ``mute_after``
#: absent: never).
_EVENTS: Final[Mapping[str, int]] = {
    "collisions": 0, "remove_after": 0, "removals": 1, "away_ms": 0, "mute_after": 0,
    "mutes": 1,
}  # fmt: skip
#: Longest a mute card waits for its field to go off before it gives up on the
#: command it never answers.
_MUTE_LIMIT: Final = 60.0


def _parse(
    doc: Any,
) -> tuple[str, bytes, bytes | None, dict[bytes, _App], list[_Command], dict[str, int]]:
    if not isinstance(doc, dict):
        raise ScriptError("", "a scripted card profile is a JSON object")
    if doc.get("schema") != SCHEMA:
        raise ScriptError("schema", f"expected {SCHEMA!r}, found {doc.get('schema')!r}")
    known = {"schema", "name", "note", "atr", "ppse", "applications", "commands", "events"}
    unknown = set(doc) - known
    if unknown:
        raise ScriptError("", f"unknown keys {sorted(unknown)}")
    atr = _hex(doc.get("atr", _DEFAULT_ATR.hex()), "atr")
    ppse_answer: bytes | None = None
    if "ppse" in doc:
        ppse = doc["ppse"]
        if not isinstance(ppse, dict):
            raise ScriptError("ppse", "expected an object")
        sw = _sw(ppse.get("sw", "9000"), "ppse.sw")
        has_fci = "fci" in ppse or "entries" in ppse
        ppse_answer = (_ppse_fci(ppse, "ppse") if has_fci else b"") + sw
    apps: dict[bytes, _App] = {}
    raw_apps = doc.get("applications", {})
    if not isinstance(raw_apps, dict):
        raise ScriptError("applications", "expected an object of AID -> application")
    for key, app in raw_apps.items():
        where = f"applications.{key}"
        name = _hex(key, where)
        if not 1 <= len(name) <= 16:
            raise ScriptError(where, "a DF name is 1 to 16 bytes")
        if not isinstance(app, dict):
            raise ScriptError(where, "expected an object")
        sw = _sw(app.get("sw", "9000"), f"{where}.sw")
        fci = _app_fci(name, app["fci"], f"{where}.fci") if "fci" in app else b""
        outcomes = app.get("outcomes", [])
        if not isinstance(outcomes, list):
            raise ScriptError(f"{where}.outcomes", "expected a list")
        encoded = [encode_outcome(o, f"{where}.outcomes[{i}]") for i, o in enumerate(outcomes)]
        apps[name] = _App(fci + sw, encoded)
    commands = []
    raw_commands = doc.get("commands", [])
    if not isinstance(raw_commands, list):
        raise ScriptError("commands", "expected a list")
    for i, cmd in enumerate(raw_commands):
        where = f"commands[{i}]"
        if not isinstance(cmd, dict) or not isinstance(cmd.get("answers"), list):
            raise ScriptError(where, "expected {apdu, answers: [...]}")
        answers = [_hex(a, f"{where}.answers") for a in cmd["answers"]]
        if not answers or any(len(a) < 2 for a in answers):
            raise ScriptError(f"{where}.answers", "R-APDUs of at least a status word")
        commands.append(_Command(_hex(cmd.get("apdu", ""), f"{where}.apdu"), answers))
    events = doc.get("events", {})
    if not isinstance(events, dict) or set(events) - set(_EVENTS):
        raise ScriptError("events", "expected {" + ", ".join(_EVENTS) + "}")
    counts = {k: _int(events, k, "events", _EVENTS[k], 1000) for k in
              ("collisions", "removals", "mutes")}  # fmt: skip
    counts["away_ms"] = _int(events, "away_ms", "events", 0, 60_000)
    for key in ("remove_after", "mute_after"):
        if key in events:
            counts[key] = _int(events, key, "events", 0, 1000)
    return str(doc.get("name", "scripted card")), atr, ppse_answer, apps, commands, counts


class ScriptedCard:
    """A card answering as its profile says (module docstring); the shape of
    :class:`~card.transport.CardApplication` (``atr``, ``power_on``, ``power_off``,
    ``process``), so it runs in-process, on vpcd and wherever a card runs."""

    def __init__(self, doc: Any) -> None:
        self.name, self._atr, self._ppse, self._apps, self._commands, events = _parse(doc)
        self._collisions = events["collisions"]
        self._remove_after = events.get("remove_after")
        self._removals = events["removals"]
        self._away = events["away_ms"] / 1000.0
        self._mute_after = events.get("mute_after")
        self._mutes = events["mutes"]
        self._off = threading.Event()  # set while the field is off
        self._off.set()
        self._lock = threading.Lock()
        self._selected: _App | None = None
        self._count = 0
        self.activations = 0
        self.commands: list[bytes] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedCard:
        """Load a profile file (:class:`ScriptError` names the problem)."""
        file = Path(path)
        try:
            doc = json.loads(file.read_text())
        except OSError as exc:
            raise ScriptError("", f"cannot read {file}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ScriptError("", f"{file} is not JSON: line {exc.lineno}: {exc.msg}") from None
        return cls(doc)

    def __repr__(self) -> str:
        return f"ScriptedCard({self.name!r}, {len(self._apps)} applications)"

    @property
    def atr(self) -> bytes:
        """The answer to reset."""
        return self._atr

    @property
    def uid(self) -> bytes:
        """No fixed UID (a random one per activation, as phones give)."""
        return b""

    def power_on(self) -> None:
        """Field on: nothing selected. The first ``collisions`` activations report a
        collision instead (:class:`CardCollision`)."""
        with self._lock:
            if self._collisions:
                self._collisions -= 1
                raise CardCollision("two cards in the field")
            self.activations += 1
            self._selected = None
            self._count = 0
            self._off.clear()

    def power_off(self) -> None:
        """Field off (a command left unanswered by a mute card is given up)."""
        with self._lock:
            self._selected = None
            self._off.set()

    def process(self, c_apdu: bytes) -> bytes:
        """Answer one C-APDU (module docstring); a mute card answers nothing until the
        field goes off (then an empty answer that nobody waits for any more)."""
        apdu = bytes(c_apdu)
        with self._lock:
            self.commands.append(apdu)
            self._count += 1
            mute = self._mute_after is not None and self._mutes and self._count > self._mute_after
            if not mute:
                return self._answer(apdu)
            self._mutes -= 1
            off = self._off
        off.wait(_MUTE_LIMIT)
        return b""

    def _answer(self, apdu: bytes) -> bytes:
        """The answer to ``apdu`` (module docstring), the lock held."""
        if self._remove_after is not None and self._removals and self._count > self._remove_after:
            self._removals -= 1
            gone = CardRemoved(f"the card left the field after {self._remove_after} C-APDUs")
            gone.away_seconds = self._away
            raise gone
        for cmd in self._commands:
            if apdu.startswith(cmd.prefix):
                answer = cmd.answers[min(cmd.used, len(cmd.answers) - 1)]
                cmd.used += 1
                return answer
        if len(apdu) >= 5 and apdu[:3] == b"\x00\xa4\x04":
            return self._select(apdu[5 : 5 + apdu[4]])
        if apdu[:2] == b"\x80\xa8":
            return self._gpo()
        return b"\x6d\x00"

    def _select(self, name: bytes) -> bytes:
        self._selected = None
        if name == PPSE:
            return self._ppse if self._ppse is not None else b"\x6a\x82"
        app = self._apps.get(name)
        if app is None:
            return b"\x6a\x82"
        if app.answer[-2:] == b"\x90\x00":
            self._selected = app
        return app.answer

    def _gpo(self) -> bytes:
        app = self._selected
        if app is None or not app.outcomes:
            return b"\x69\x85"
        answer = app.outcomes[min(app.gpos, len(app.outcomes) - 1)]
        app.gpos += 1
        return answer + b"\x90\x00"


def is_scripted_profile(path: str | Path) -> bool:
    """Whether the file is a scripted card profile (its ``schema``), without raising."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        return (
            SCHEMA.encode() in head and json.loads(Path(path).read_text()).get("schema") == SCHEMA
        )
    except (OSError, ValueError, AttributeError):
        return False


def load_scripted(path: str) -> ScriptedCard:
    """A :class:`ScriptedCard` from a profile path (the card loader's hook)."""
    return ScriptedCard.from_file(path)
