"""An EMV contactless card in software, run from a card profile.

:class:`EmvCard` implements :class:`card.transport.CardApplication`: the transports
(in-process, vpcd, nfcpy) give it power control and C-APDUs, it answers R-APDUs. It
dispatches ISO/IEC 7816-4 commands:

- SELECT by DF name (``00 A4 04 00|02``; EMV Book 1 §11.3, Book B §3.3):
  ``2PAY.SYS.DDF01`` answers the PPSE FCI ``6F {84, A5 {BF0C {61 {4F, 50, 87,
  9F2A}...}}}``; ``1PAY.SYS.DDF01`` (when the profile has ``pse``) answers ``6F {84,
  A5 {88}}`` naming the directory file (SFI 1), whose record 1 is ``70 {61 {4F, 50,
  87}...}``; an AID by exact or partial (leading 5 bytes or more) match, P2 ``00``
  first occurrence or ``02`` next, answers the application's FCI;
- READ RECORD (``00 B2``, P2 = SFI << 3 | 4; Book 3 §6.5.11) of the selected
  application or of the PSE directory;
- GET DATA (``80 CA``; Book 3 §6.5.7): ATC ``9F36``, last online ATC ``9F13``,
  ``9F17`` / ``9F4F`` if held (else ``6A88``);
- GET PROCESSING OPTIONS (``80 A8``), GENERATE AC (``80 AE``) and EXCHANGE RELAY
  RESISTANCE DATA (``80 EA``), answered by the selected application's kernel
  (:mod:`card.visa`, :mod:`card.mastercard`).

Status words (ISO/IEC 7816-4 §5.1.3): ``6E00`` unknown class or the wrong class for
the instruction, ``6D00`` unknown instruction (or one the application does not offer),
``6700`` wrong length (a header under 4 bytes, Lc that does not fit, extended length,
data of the wrong size), ``6A86`` wrong P1-P2, ``6A82`` file or application not
found, ``6A83`` record not found, ``6A88`` data not held, ``6985`` a command out of
sequence (GPO or READ RECORD with nothing selected, a second GPO, GENERATE AC before
GPO or twice), ``6A80`` a malformed data field. Anything unforeseen is ``6F00``:
:meth:`EmvCard.process` never raises, except :class:`~card.transport.CardRemoved` when
the profile's ``pull_after`` fault takes the card away.

Non-volatile counters (:mod:`card.state`) survive power cycles, and with a state
file (in the state folder by default), processes. ``power_on`` starts the volatile
state afresh (nothing selected).

Faults (``profile.faults``): ``pull_after`` (after answering that many C-APDUs since
power on, the next ``process`` raises ``CardRemoved``, and every one after it until
``power_on``), ``delay_ms`` (each answer held back, through the ``sleep`` callable),
``wrong_sw`` (that INS is not processed and answered with the status word alone),
``corrupt`` (``truncate``: the last quarter of the answer's data, at least one byte, is
cut; ``garble``: the outer TLV length is made 16 larger than the data), ``wrong_key``
(cryptograms under a key the issuer does not have), ``atc_rollback`` (each power on
sets the ATC back by that much, as a clone replaying an old image would).

Nothing here logs data fields: only instruction, length and status word.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from card.amex import AmexApplication
from card.application import PaymentApplication, Transaction, fci_template
from card.iso7816 import (
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_NO_PRECISE_DIAGNOSIS,
    SW_RECORD_NOT_FOUND,
    SW_WRONG_LENGTH,
    StatusWordError,
    parse_command,
    respond,
)
from card.mastercard import MastercardApplication
from card.scripted import ScriptedCard, is_scripted_profile
from card.state import CardState, default_state_path
from card.transport import CardRemoved
from card.unionpay import UnionPayApplication
from card.visa import VisaApplication
from emvwire.apdu import PPSE, PSE, CApdu
from emvwire.errors import DecodeError
from emvwire.profile import Application, CardProfile, Counters, load_profile
from emvwire.tags import Tag
from emvwire.tlv import encode, encode_length, read_length, read_tag, tag_bytes

__all__ = ["PSE_DIRECTORY_SFI", "EmvCard", "load_card"]

log = logging.getLogger(__name__)

#: SFI of the PSE directory file (Book 1 §12.2.3, tag 88).
PSE_DIRECTORY_SFI: Final = 1
#: Shortest AID prefix accepted for partial selection (the RID, Book 1 §12.3.3).
_MIN_PARTIAL = 5

#: Instruction -> the class byte it must come with (Book 1 §11.1, Book 3 §6.5).
_INSTRUCTIONS: Final = {
    0xA4: 0x00,  # SELECT
    0xB2: 0x00,  # READ RECORD
    0xCA: 0x80,  # GET DATA
    0xA8: 0x80,  # GET PROCESSING OPTIONS
    0xAE: 0x80,  # GENERATE AC
    0xEA: 0x80,  # EXCHANGE RELAY RESISTANCE DATA
}
_CLASSES: Final = frozenset(_INSTRUCTIONS.values())

_KERNELS: Final[dict[str, type[PaymentApplication]]] = {
    "visa": VisaApplication,
    "mastercard": MastercardApplication,
    "amex": AmexApplication,
    "unionpay": UnionPayApplication,
}

#: What is selected: nothing, the PPSE, the PSE, or an application (its index).
_PPSE_SELECTED: Final = -2
_PSE_SELECTED: Final = -1


class EmvCard:
    """A contactless EMV card (Visa qVSDC and/or Mastercard M/Chip) from a profile.

    ``state_path`` names the JSON file of the counters (created on first use);
    without it they live on this object. ``rng(n)`` gives ``n`` random bytes (card
    unpredictable number, ICC dynamic number, relay resistance entropy); ``sleep``
    holds answers back for the ``delay_ms`` fault.
    """

    def __init__(
        self,
        profile: CardProfile,
        *,
        state_path: str | Path | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.profile = profile
        self.state = CardState(profile.applications, state_path)
        self._sleep = sleep
        wrong_key = profile.faults.wrong_key
        self.applications: tuple[PaymentApplication, ...] = tuple(
            _KERNELS[a.kernel](a, self.state, rng=rng, wrong_key=wrong_key)
            for a in profile.applications
        )
        self._lock = threading.RLock()
        self._selected: int | None = None
        self._txn = Transaction()
        self._answered = 0
        self._removed = False
        self._pse_record = encode(
            Tag.RECORD_TEMPLATE,
            b"".join(app.directory_entry(with_kernel_id=False) for app in self.applications),
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        state_path: str | Path | None = None,
        persist: bool = True,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        sleep: Callable[[float], None] = time.sleep,
    ) -> EmvCard:
        """Load a profile (:func:`emvwire.profile.load_profile`) and run it.

        With ``persist`` the counters live in ``state_path`` or, by default, in the
        state folder (:func:`card.state.default_state_path`); without, in memory.
        """
        profile = load_profile(path)
        target = (state_path or default_state_path(path)) if persist else None
        return cls(profile, state_path=target, rng=rng, sleep=sleep)

    def __repr__(self) -> str:
        return f"EmvCard({self.profile.name!r}, {len(self.applications)} applications)"

    # --- CardApplication -------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        """The answer to reset given to a PC/SC reader (profile ``atr``)."""
        return self.profile.atr

    @property
    def uid(self) -> bytes:
        """The ISO/IEC 14443-3 UID given to an NFC reader (profile ``uid``)."""
        return self.profile.uid

    def power_on(self) -> None:
        """Field on or reset: nothing selected, the counters re-read from the state file.

        The ``atc_rollback`` fault sets every ATC back here. A state file that cannot
        be read now is logged and the counters in memory are kept.
        """
        with self._lock:
            self._reset_volatile()
            self._answered = 0
            self._removed = False
            try:
                self.state.reload()
            except (OSError, ValueError) as exc:
                log.warning("card state not re-read: %s", type(exc).__name__)
            rollback = self.profile.faults.atc_rollback
            if rollback:
                for app in self.applications:
                    counters = app.counters
                    counters.atc = max(0, counters.atc - rollback)
                try:
                    self.state.save()
                except OSError as exc:
                    log.warning("card state not saved after rollback: %s", type(exc).__name__)

    def power_off(self) -> None:
        """Field off: the volatile state is lost."""
        with self._lock:
            self._reset_volatile()

    def process(self, c_apdu: bytes) -> bytes:
        """Answer one C-APDU (module docstring); never raises except ``CardRemoved``."""
        with self._lock:
            faults = self.profile.faults
            if self._removed or (
                faults.pull_after is not None and self._answered >= faults.pull_after
            ):
                self._removed = True
                self._reset_volatile()
                raise CardRemoved("the card left the field")
            raw = bytes(c_apdu)
            ins = raw[1] if len(raw) >= 2 else None
            forced = faults.wrong_sw.get(ins) if ins is not None else None
            if forced is not None:
                answer = respond(b"", forced)
            else:
                answer = self._answer(raw)
                mode = faults.corrupt.get(ins) if ins is not None else None
                if mode is not None:
                    answer = _corrupt(answer, mode)
            if faults.delay_ms:
                self._sleep(faults.delay_ms / 1000.0)
            self._answered += 1
            return answer

    # --- inspection ------------------------------------------------------------------

    def counters(self, aid: bytes | None = None) -> Counters:
        """A snapshot of an application's counters (the first application by default)."""
        app = self.applications[0] if aid is None else self._by_aid(aid)
        return app.counters.as_counters()

    def _by_aid(self, aid: bytes) -> PaymentApplication:
        for app in self.applications:
            if app.app.aid == aid:
                return app
        raise KeyError("no application with that AID")

    @property
    def selected(self) -> Application | None:
        """The selected application's profile entry, if an application is selected."""
        if self._selected is None or self._selected < 0:
            return None
        return self.applications[self._selected].app

    # --- dispatch --------------------------------------------------------------------

    def _reset_volatile(self) -> None:
        self._selected = None
        self._txn = Transaction()

    def _answer(self, raw: bytes) -> bytes:
        try:
            answer = self._dispatch(raw)
        except StatusWordError as exc:
            answer = respond(b"", exc.sw)
        except Exception as exc:  # last resort: a card answers, it does not crash
            log.error("internal error answering a C-APDU: %s", type(exc).__name__)
            answer = respond(b"", SW_NO_PRECISE_DIAGNOSIS)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "C-APDU INS %s, %d bytes -> %d bytes, SW %s",
                raw[1:2].hex().upper() or "--",
                len(raw),
                len(answer) - 2,
                answer[-2:].hex().upper(),
            )
        return answer

    def _dispatch(self, raw: bytes) -> bytes:
        if len(raw) < 4:
            raise StatusWordError(SW_WRONG_LENGTH, "no full header")
        cla, ins = raw[0], raw[1]
        if cla not in _CLASSES:
            raise StatusWordError(SW_CLA_NOT_SUPPORTED)
        expected = _INSTRUCTIONS.get(ins)
        if expected is None:
            raise StatusWordError(SW_INS_NOT_SUPPORTED)
        if cla != expected:
            raise StatusWordError(SW_CLA_NOT_SUPPORTED, "wrong class for the instruction")
        cmd = parse_command(raw)
        if ins == 0xA4:
            return self._select(cmd)
        if ins == 0xB2:
            return self._read_record(cmd)
        app = self._application()
        if ins == 0xCA:
            if cmd.data:
                raise StatusWordError(SW_WRONG_LENGTH, "GET DATA has no data field")
            return respond(app.get_data((cmd.p1 << 8) | cmd.p2))
        return app.handle(self._txn, cmd)

    def _application(self) -> PaymentApplication:
        if self._selected is None or self._selected < 0:
            raise StatusWordError(SW_CONDITIONS_NOT_SATISFIED, "no application selected")
        return self.applications[self._selected]

    def _select(self, cmd: CApdu) -> bytes:
        """SELECT by DF name, first or next occurrence (Book 1 §11.3.2)."""
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x02):
            raise StatusWordError(SW_INCORRECT_P1P2)
        name = cmd.data
        if not 1 <= len(name) <= 16:
            raise StatusWordError(SW_WRONG_LENGTH, "a DF name is 1 to 16 bytes")
        first = cmd.p2 == 0x00
        if name == PPSE:
            if not first:
                raise StatusWordError(SW_FILE_NOT_FOUND)
            self._enter(_PPSE_SELECTED)
            entries = b"".join(
                app.directory_entry(with_kernel_id=True) for app in self.applications
            )
            prop = encode(Tag.FCI_ISSUER_DISCRETIONARY_DATA, entries)
            return respond(fci_template(PPSE, prop))
        if name == PSE:
            if not first or not self.profile.pse:
                raise StatusWordError(SW_FILE_NOT_FOUND)
            self._enter(_PSE_SELECTED)
            prop = encode(Tag.SFI, bytes((PSE_DIRECTORY_SFI,)))
            return respond(fci_template(PSE, prop))
        start = 0
        if not first and self._selected is not None and self._selected >= 0:
            current = self.applications[self._selected].app.aid
            if current.startswith(name):
                start = self._selected + 1
        for index in range(start, len(self.applications)):
            aid = self.applications[index].app.aid
            if aid == name or (len(name) >= _MIN_PARTIAL and aid.startswith(name)):
                self._enter(index)
                return respond(self.applications[index].fci())
        raise StatusWordError(SW_FILE_NOT_FOUND)

    def _enter(self, selection: int) -> None:
        self._selected = selection
        self._txn = Transaction()

    def _read_record(self, cmd: CApdu) -> bytes:
        """READ RECORD (Book 3 §6.5.11): P1 the record, P2 = SFI << 3 | 100b."""
        if cmd.data:
            raise StatusWordError(SW_WRONG_LENGTH, "READ RECORD has no data field")
        sfi = cmd.p2 >> 3
        if cmd.p1 == 0 or cmd.p2 & 0x07 != 0x04 or not 1 <= sfi <= 30:
            raise StatusWordError(SW_INCORRECT_P1P2)
        if self._selected == _PSE_SELECTED:
            if sfi != PSE_DIRECTORY_SFI:
                raise StatusWordError(SW_FILE_NOT_FOUND)
            if cmd.p1 != 1:
                raise StatusWordError(SW_RECORD_NOT_FOUND)
            return respond(self._pse_record)
        app = self._application()
        return respond(app.read_record(self._txn, sfi, cmd.p1))


def _corrupt(answer: bytes, mode: str) -> bytes:
    """Apply the ``corrupt`` fault to an R-APDU (module docstring)."""
    data, sw = answer[:-2], answer[-2:]
    if not data:
        return answer
    if mode == "truncate":
        cut = max(1, len(data) // 4)
        return data[:-cut] + sw
    try:
        tag, pos = read_tag(data)
        length, pos = read_length(data, pos)
    except DecodeError:
        return bytes((data[0] ^ 0xFF,)) + data[1:] + sw
    return tag_bytes(tag) + encode_length(length + 16) + data[pos:] + sw


def load_card(path: str) -> EmvCard | ScriptedCard:
    """The ``tapstack.cards`` entry point: a card from a profile path, for ``emulated:``
    readers. Its counters persist in the state folder (:func:`card.state.state_dir`:
    ``$TAPSTACK_STATE_DIR`` or the user's state folder, never beside the profile), so
    the ATC keeps rising across processes as a real card's does. A scripted card profile
    (:mod:`card.scripted`, entry point tests) gives a :class:`ScriptedCard`."""
    if is_scripted_profile(path):
        return ScriptedCard.from_file(path)
    return EmvCard.from_file(path)
