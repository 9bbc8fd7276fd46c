"""The contactless entry point (EMV Book B): pre-processing, combination selection,
kernel activation and the outcomes that restart it.

Start A, pre-processing (Book B §3.1.1), per combination of the configuration:

1. a combination that does not support the transaction type is left out;
2. the TTQ (9F66) is copied with byte 2 bits 8 and 7 cleared;
3. status check supported and the amount a single unit of currency: Status Check
   Requested;
4. a zero amount: Contactless Application Not Allowed if the combination's Zero
   Amount Allowed flag is 0, else Zero Amount;
5. amount >= Reader Contactless Transaction Limit: not allowed;
6. amount > Reader Contactless Floor Limit (or, with none, > Terminal Floor Limit
   9F1B): Floor Limit Exceeded;
7. amount >= Reader CVM Required Limit: CVM Required Limit Exceeded;
8. TTQ byte 2 bit 8 (online cryptogram required) for Floor Limit Exceeded, Status
   Check Requested, and a zero amount on a reader that is not offline-only (an
   offline-only reader cannot take a zero amount: not allowed); TTQ byte 2 bit 7 (CVM
   required) for CVM Required Limit Exceeded.

When no combination is allowed, the outcome is Try Another Interface, "Please insert or
swipe card" with status Processing Error (§3.1.1.13). Autorun (the reader starts at B,
§3.2.1.1) does no pre-processing: every indicator is 0 and the TTQ copy is the TTQ as
configured (:func:`autorun_indicators`).

Start B, protocol activation (§3.2.1): "Present card" (Ready to Read), or at a restart
the outcome's UI Request on Restart (§3.2.1.2); the reader polls for a card; a
collision of two cards (:func:`is_collision`) shows "Please present one card only"
(Processing Error), then the same with Ready to Read once it is over (§3.2.1.4-§3.2.1.5).

Start C, combination selection (§3.3): SELECT ``2PAY.SYS.DDF01``; a status other than
9000 (6A82, 6283...) or an FCI without directory entries ends the transaction (End
Application, "Insert, swipe or try another card", §3.3.2.3-§3.3.2.4, §3.3.2.7). Padding
and unknown data objects in the FCI are skipped. Each directory entry (61: 4F ADF name,
50 label, 87 priority, 9F2A kernel identifier, 9F29 extended selection) is matched
against every allowed combination (§3.3.2.5): the ADF name equals the combination's AID
or begins with it (partial matching), and the Requested Kernel ID
(:func:`~terminal.kernel.registry.kernel_request`: absent or empty 9F2A the RID's
default, one byte for an international kernel, three for a domestic one, a domestic
9F2A shorter than 3 bytes skips the entry, zero accepts any kernel) accepts the
combination's kernel, which must be registered. Candidates are ordered by priority (87
bits 4-1; 1 first; absent, empty or 0 last), then in directory order (§3.3.3.2). The
first is selected with its extended selection appended when the combination supports
it (§3.3.3.3); an answer other than 9000, or an FCI that names another application,
removes it and the next is tried (§3.3.3.5). A Visa AID selected for kernel 3 whose
PDOL does not ask for the TTQ goes to kernel 1 when one is registered, else the
candidate is removed (§3.3.3.6, :meth:`EntryPoint._kernel_for`).

Start D, kernel activation (§3.4): the kernel of the combination runs with a
:class:`~terminal.kernel.registry.KernelContext`: the FCI and status word, the
combination's indicators and TTQ copy, the start point, the restart flag and the online
response data. A Select Next outcome removes the candidate and goes back to the
selection of the next one (Start C).

Outcome processing (§3.5, :meth:`EntryPoint.process`): the UI Request on Outcome is
shown; an outcome with Start B, C or D restarts there (B: protocol activation and a new
SELECT PPSE; C: final combination selection on the retained candidate list; D: the
kernel again, without FCI), with the restart flag set and, after an Online Request, the
issuer's answer (91, 71, 72) as online response data. :meth:`EntryPoint.run` is one pass
without outcome processing (``terminal pay``).

A card pulled away (:class:`~terminal.readers.base.CardRemovedError`,
:class:`~terminal.readers.base.CommunicationError`, or a card gone before an answer)
ends in Try Again ("Present card again", restart at B), never in an exception. An
answer the reader itself cannot make sense of (:class:`~terminal.readers.base.
ProtocolError`) ends the application. :class:`~terminal.readers.base.
ReaderUnavailableError` (the reader itself is gone) and a :class:`NoCardError` while
waiting for a card propagate: they are not outcomes of a transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from emvwire import dol, tlv
from emvwire.apdu import select
from emvwire.errors import DecodeError
from terminal.kernel.config import Combination, TerminalConfig
from terminal.kernel.outcome import OnlineResponse, Outcome, Start, Status, UiMessage, UiRequest
from terminal.kernel.recording import Activation, EntryPointRecord, RecordingReader
from terminal.kernel.registry import (
    KernelContext,
    KernelRegistry,
    PreProcessing,
    default_registry,
    kernel_request,
    kernel_supported,
)
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
    build_result,
    currency_by_code,
)
from terminal.readers.base import (
    CommunicationError,
    NoCardError,
    ProtocolError,
    Reader,
    ReaderUnavailableError,
)

__all__ = [
    "MAX_RESTARTS",
    "PPSE_NAME",
    "VISA_RID",
    "Candidate",
    "CollisionError",
    "DirectoryEntry",
    "EntryPoint",
    "OnlineHandler",
    "aid_matches",
    "autorun_indicators",
    "build_candidates",
    "is_collision",
    "parse_ppse",
    "pdol_requests_ttq",
    "pre_process",
    "run_entry_point",
]

#: The Proximity Payment System Environment name (Book B §3.3.2.2).
PPSE_NAME: Final = "2PAY.SYS.DDF01"
#: TTQ byte 2 bits (Book C-3 Annex A 9F66): online cryptogram required, CVM required.
TTQ_ONLINE_CRYPTOGRAM: Final = 0x80
TTQ_CVM_REQUIRED: Final = 0x40
#: TTQ byte 1 bit 4: offline-only reader.
TTQ_OFFLINE_ONLY: Final = 0x08
#: Most candidates tried in one transaction (each a SELECT; a card listing a hundred
#: applications must not keep the reader busy).
MAX_SELECTIONS: Final = 16
#: Most restarts (Book B §3.5) of one transaction before its last outcome stands: a
#: card that asks to be presented again for ever must not hold the reader.
MAX_RESTARTS: Final = 4
#: Most collision reports in a row before protocol activation gives up (Book B §3.2.1.4).
MAX_COLLISIONS: Final = 8
#: The Visa RID, for the kernel 3 / kernel 1 rule of Book B §3.3.3.6.
VISA_RID: Final = bytes.fromhex("A000000003")
#: Online response data passed back to the kernel: ``result -> data`` (91, 71, 72...)
#: or ``None`` when no answer came (the transaction ends with its online request).
OnlineHandler = Callable[[TransactionResult], "bytes | None"]


class CollisionError(NoCardError):
    """More than one card in the field (Book D collision; Book B §3.2.1.4)."""


def is_collision(exc: BaseException) -> bool:
    """Whether ``exc`` reports a collision: a :class:`CollisionError`, a class named
    ``CardCollision`` (a software card's; matched by name, terminal never imports card),
    or an exception with ``card_collision = True``."""
    if isinstance(exc, CollisionError) or getattr(exc, "card_collision", False) is True:
        return True
    return any(cls.__name__ == "CardCollision" for cls in type(exc).__mro__)


# --- Start A: pre-processing (Book B §3.1.1) -------------------------------------------


def _currency_exponent(config: TerminalConfig, transaction: Transaction) -> int:
    if transaction.currency is None and 0x5F36 in config.terminal_data:
        exp = config.terminal_data[0x5F36]
        return exp[0] if len(exp) == 1 and exp[0] <= 9 else 2
    code = transaction.currency or config.data(0x5F2A, b"\x09\x78")
    try:
        return currency_by_code(code).exponent
    except ValueError:
        return 2


#: Indicator sets already made (they are immutable values): most combinations of a
#: configuration share a handful of them, and a frozen dataclass costs more to build
#: than a look-up. Emptied when it grows past :data:`_INTERN_MAX`.
_INTERNED: dict[tuple[object, ...], PreProcessing] = {}
_INTERN_MAX: Final = 4096


def _indicators(*fields: object) -> PreProcessing:
    found = _INTERNED.get(fields)
    if found is None:
        if len(_INTERNED) >= _INTERN_MAX:
            _INTERNED.clear()
        found = _INTERNED[fields] = PreProcessing(*fields)  # type: ignore[arg-type]
    return found


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A combination's pre-processing parameters, resolved once per configuration:
    the floor limit of §3.1.1.6-§3.1.1.7 chosen, the TTQ split into its bytes."""

    combination: Combination
    types: frozenset[int]
    status_check: bool
    zero_refused: bool
    limit: int | None
    floor: int | None
    cvm_limit: int | None
    ttq1: int  # byte 1, or -1 without TTQ
    ttq2: int  # byte 2 with bits 8 and 7 cleared (§3.1.1.2)
    ttq_tail: bytes


def _compile(config: TerminalConfig) -> tuple[_Compiled, ...]:
    raw_floor = config.terminal_data.get(0x9F1B)
    terminal_floor = int.from_bytes(raw_floor, "big") if raw_floor is not None else None
    out = []
    for c in config.combinations:
        floor = c.floor_limit
        if floor is None:
            floor = c.terminal_floor_limit if c.terminal_floor_limit is not None else terminal_floor
        ttq = c.ttq
        out.append(
            _Compiled(
                c,
                c.transaction_types,
                c.status_check,
                c.zero_amount_allowed is False,
                c.transaction_limit,
                floor,
                c.cvm_required_limit,
                ttq[0] if ttq is not None else -1,
                ttq[1] & 0x3F if ttq is not None else 0,
                bytes(ttq[2:]) if ttq is not None else b"",
            )
        )
    return tuple(out)


def _pre_process_one(c: _Compiled, amount: int, txn_type: int, unit: int) -> PreProcessing:
    """Book B §3.1.1.1-§3.1.1.12 for one combination (``unit``: a single unit of the
    currency in minor units)."""
    if txn_type not in c.types:
        return _indicators(
            False, True, False, False, False, False, None,
            (f"transaction type {txn_type:02X} not supported",),
        )  # fmt: skip
    reasons: tuple[str, ...] = ()
    status_check = c.status_check and amount == unit
    not_allowed = False
    zero = False
    if amount == 0:
        if c.zero_refused:
            not_allowed = True
            reasons += ("zero amount not allowed",)
        else:
            zero = True
    over_limit = c.limit is not None and amount >= c.limit
    if over_limit:
        not_allowed = True
        reasons += ("amount at or over the contactless transaction limit",)
    floor_exceeded = c.floor is not None and amount > c.floor
    cvm_exceeded = c.cvm_limit is not None and amount >= c.cvm_limit
    ttq = None
    if c.ttq1 >= 0:
        byte2 = c.ttq2
        if floor_exceeded or status_check:
            byte2 |= TTQ_ONLINE_CRYPTOGRAM
        if zero:
            if c.ttq1 & TTQ_OFFLINE_ONLY:
                not_allowed = True
                reasons += ("zero amount on an offline-only reader",)
            else:
                byte2 |= TTQ_ONLINE_CRYPTOGRAM
        if cvm_exceeded:
            byte2 |= TTQ_CVM_REQUIRED
        ttq = bytes((c.ttq1, byte2)) + c.ttq_tail
    return _indicators(
        status_check, not_allowed, zero, cvm_exceeded, floor_exceeded, over_limit, ttq, reasons
    )


def _pre_process_compiled(
    compiled: tuple[_Compiled, ...], config: TerminalConfig, transaction: Transaction
) -> list[tuple[Combination, PreProcessing]]:
    unit = 10 ** _currency_exponent(config, transaction)
    amount, txn_type = transaction.amount, transaction.type
    return [(c.combination, _pre_process_one(c, amount, txn_type, unit)) for c in compiled]


def pre_process(
    config: TerminalConfig, transaction: Transaction
) -> list[tuple[Combination, PreProcessing]]:
    """The pre-processing indicators of every combination, in configuration order."""
    return _pre_process_compiled(_compile(config), config, transaction)


def autorun_indicators(config: TerminalConfig) -> list[tuple[Combination, PreProcessing]]:
    """Autorun (Book B §3.2.1.1): the entry point started at B by the reader, without
    pre-processing. Every indicator of every combination is 0 and the copy of the TTQ is
    the configured TTQ, unchanged."""
    return [(c, PreProcessing(ttq=c.ttq)) for c in config.combinations]


# --- Start C: combination selection (Book B §3.3) --------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One directory entry (61) of the PPSE FCI (Book B §3.3.2.5)."""

    adf_name: bytes
    label: str = ""
    priority: int = 0
    kernel_identifier: bytes | None = None
    extended_selection: bytes = b""
    order: int = 0

    def __repr__(self) -> str:
        return f"DirectoryEntry({self.adf_name.hex().upper()}, priority {self.priority})"


def _label(value: bytes | None) -> str:
    if not value:
        return ""
    text = value.decode("latin-1")
    return "".join(ch for ch in text if ch.isprintable()).strip()


def parse_ppse(fci: bytes) -> list[DirectoryEntry]:
    """The directory entries of a PPSE FCI ``6F {84, A5 {BF0C {61...}}}``.

    A malformed FCI gives no entries (Book B §3.3.2.4); an entry without a valid ADF
    name (4F, 5 to 16 bytes) is left out.
    """
    try:
        top = tlv.decode_one(fci, 0x6F)
    except DecodeError:
        return []
    a5 = next((c for c in top.children if c.tag == 0xA5), None)
    if a5 is None:
        return []
    bf0c = next((c for c in a5.children if c.tag == 0xBF0C), None)
    if bf0c is None:
        return []
    out: list[DirectoryEntry] = []
    for order, entry in enumerate(c for c in bf0c.children if c.tag == 0x61):
        fields: dict[int, bytes] = {}
        for child in entry.children:
            fields.setdefault(child.tag, child.value)
        name = fields.get(0x4F)
        if name is None or not 5 <= len(name) <= 16:
            continue
        prio = fields.get(0x87, b"")
        out.append(
            DirectoryEntry(
                adf_name=name,
                label=_label(fields.get(0x50)),
                priority=prio[0] & 0x0F if len(prio) == 1 else 0,
                kernel_identifier=fields.get(0x9F2A),
                extended_selection=fields.get(0x9F29, b""),
                order=order,
            )
        )
    return out


def aid_matches(adf_name: bytes, aid: bytes) -> bool:
    """Book B §3.3.2.5: the ADF name is the AID, or begins with it (partial match)."""
    return bytes(adf_name).startswith(aid)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A combination that may be selected: the directory entry, its combination, the
    pre-processing indicators and the requested kernel id."""

    entry: DirectoryEntry
    combination: Combination
    indicators: PreProcessing
    kernel_id: bytes

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Priority 1-15 first (0 or absent last), then directory order, then config."""
        prio = self.entry.priority or 16
        return (prio, self.entry.order, 0)

    @property
    def select_name(self) -> bytes:
        """The DF name to select: ADF name plus extended selection when allowed."""
        ext = self.entry.extended_selection if self.combination.extended_selection else b""
        name = self.entry.adf_name + ext
        return name if len(name) <= 16 else self.entry.adf_name

    def __repr__(self) -> str:
        return f"Candidate({self.entry.adf_name.hex().upper()}, kernel {self.kernel_id.hex()})"


def build_candidates(
    entries: Sequence[DirectoryEntry],
    processed: Sequence[tuple[Combination, PreProcessing]],
    registry: KernelRegistry,
) -> list[Candidate]:
    """The candidate list (Book B §3.3.2.5-§3.3.2.6), ordered by §3.3.3.

    Per directory entry (A: an ADF name of 5 to 16 bytes, :func:`parse_ppse`), the
    first allowed combination (configuration order) whose AID the ADF name matches
    (B, :func:`aid_matches`) and whose kernel the Requested Kernel ID accepts (C and D,
    :func:`~terminal.kernel.registry.kernel_request`: zero accepts any) and that is
    registered becomes a candidate (E).
    """
    found: list[tuple[tuple[int, int, int], Candidate]] = []
    for entry in entries:
        requested = kernel_request(entry.adf_name, entry.kernel_identifier)
        if requested is None:
            continue
        for index, (combination, indicators) in enumerate(processed):
            if indicators.not_allowed:
                continue
            if not entry.adf_name.startswith(combination.aid):  # aid_matches, inlined
                continue
            kid = combination.kernel_id
            if not kernel_supported(requested, kid) or kid not in registry:
                continue
            cand = Candidate(entry, combination, indicators, kid)
            prio, order, _ = cand.sort_key
            found.append(((prio, order, index), cand))
            break
    found.sort(key=lambda item: item[0])
    return [c for _, c in found]


# --- the entry point --------------------------------------------------------------------


def _fci_fields(fci: bytes) -> tuple[bytes | None, bytes | None]:
    """The DF name (84) and the PDOL (9F38 in A5) of an FCI, decoded once."""
    try:
        top = tlv.decode_one(fci, 0x6F)
    except DecodeError:
        return None, None
    name = pdol = None
    for child in top.children:
        if child.tag == 0x84 and name is None:
            name = child.value
        elif child.tag == 0xA5:
            pdol = next((c.value for c in child.children if c.tag == 0x9F38), pdol)
    return name, pdol


def _dfname(fci: bytes) -> bytes | None:
    return _fci_fields(fci)[0]


def _asks_ttq(pdol: bytes | None) -> bool:
    if not pdol:
        return False
    try:
        return any(e.tag == 0x9F66 for e in dol.parse(pdol))
    except DecodeError:
        return False


def pdol_requests_ttq(fci: bytes) -> bool:
    """Whether the PDOL (9F38) of an FCI asks for the TTQ (9F66) (Book B §3.3.3.6)."""
    return _asks_ttq(_fci_fields(fci)[1])


#: SELECT 2PAY.SYS.DDF01 (Book B §3.3.2.2), encoded once.
_SELECT_PPSE: Final = select(PPSE_NAME).encode()


@dataclass(slots=True)
class _Session:
    """Counters of one transaction, shared by the entry point and the kernel."""

    timer: Callable[[], float]
    started: float
    apdu_count: int = 0
    card_seconds: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    ui: list[UiRequest] = field(default_factory=list)
    record: EntryPointRecord | None = None

    def transmit(self, reader: Reader, apdu: bytes) -> bytes:
        self.apdu_count += 1
        began = self.timer()
        try:
            return reader.transmit(apdu)
        finally:
            self.card_seconds += self.timer() - began


@dataclass(slots=True)
class _State:
    """What the entry point keeps from one pass to the next (Book B §3.5 restarts)."""

    processed: list[tuple[Combination, PreProcessing]]
    #: Where this pass began (A, B for Autorun, or the restart's start point).
    entry: Start = Start.A
    #: Where the next pass goes: B protocol activation, C final combination selection
    #: on the retained candidate list, D kernel activation again.
    next: Start = Start.B
    restart: bool = False
    ui_on_restart: UiRequest | None = None
    online_response: bytes = b""
    candidates: list[Candidate] = field(default_factory=list)
    current: tuple[Candidate, bytes] | None = None
    #: Whether the kernel of this pass was activated (a card lost before that is
    #: Book B §3.3.3.7, after it the kernel's Try Again).
    in_kernel: bool = False
    #: The card was lost during protocol activation or combination selection.
    lost_in_selection: bool = False


class EntryPoint:
    """Book B entry point over a :class:`TerminalConfig` and a :class:`KernelRegistry`.

    :meth:`run` is one pass from pre-processing to the first outcome (what ``terminal
    pay`` needs); :meth:`process` is the whole transaction with outcome processing and
    its restarts (Book B §3.5), returned as an
    :class:`~terminal.kernel.recording.EntryPointRecord`.

    ``rng`` (``n -> n random bytes``; a CSPRNG by default), ``clock`` (date and time)
    and ``timer`` (monotonic seconds) are injectable for replays and tests; ``trace``
    receives one masked line per step.
    """

    def __init__(
        self,
        config: TerminalConfig,
        registry: KernelRegistry | None = None,
        *,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        clock: Callable[[], datetime] = datetime.now,
        timer: Callable[[], float] = time.perf_counter,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._compiled = (config, _compile(config))
        self.registry = registry if registry is not None else default_registry()
        self.rng = rng
        self.clock = clock
        self.timer = timer
        self.trace = trace

    def __repr__(self) -> str:
        return f"EntryPoint({len(self.config.combinations)} combinations, {self.registry!r})"

    def _note(self, text: str) -> None:
        if self.trace is not None:
            self.trace(text)

    def _finish(
        self,
        session: _Session,
        transaction: Transaction,
        outcome: Outcome,
        reason: str,
        *,
        message: UiMessage | None = None,
        candidate: Candidate | None = None,
        status: Status | None = None,
    ) -> TransactionResult:
        self._note(f"entry point: {outcome.label}: {reason}")
        session.timings_ms["card"] = session.card_seconds * 1000.0
        session.timings_ms["total"] = (self.timer() - session.started) * 1000.0
        result = build_result(
            outcome,
            config=self.config,
            transaction=transaction,
            ui=session.ui,
            kernel="",
            kernel_id=candidate.kernel_id if candidate else b"",
            aid=candidate.entry.adf_name if candidate else b"",
            label=candidate.entry.label if candidate else "",
            reasons=(reason,),
            message=message,
            timings_ms=session.timings_ms,
            apdu_count=session.apdu_count,
        )
        shown = result.parameters.ui_on_outcome
        if status is not None and shown is not None:
            shown = replace(shown, status=status)
            result.parameters = replace(result.parameters, ui_on_outcome=shown)
            result.ui[-1] = shown
        return result

    def _pre_processing(
        self, session: _Session, transaction: Transaction
    ) -> tuple[list[tuple[Combination, PreProcessing]], TransactionResult | None]:
        """Start A (Book B §3.1.1): the indicators, or the outcome of §3.1.1.13."""
        if self._compiled[0] is not self.config:  # the configuration was replaced
            self._compiled = (self.config, _compile(self.config))
        processed = _pre_process_compiled(self._compiled[1], self.config, transaction)
        for combination, ind in processed if self.trace is not None else ():
            self._note(
                f"pre-processing {combination!r}: "
                + ("not allowed (" + "; ".join(ind.reasons) + ")" if ind.not_allowed else "allowed")
                + (f", TTQ {ind.ttq.hex().upper()}" if ind.ttq is not None else "")
            )
        if all(ind.not_allowed for _, ind in processed):
            reasons = sorted({r for _, ind in processed for r in ind.reasons})
            result = self._finish(
                session,
                transaction,
                Outcome.TRY_ANOTHER_INTERFACE,
                "no combination allowed: " + "; ".join(reasons),
                status=Status.PROCESSING_ERROR,
            )
            return processed, result
        return processed, None

    def _present_card(
        self, session: _Session, transaction: Transaction, state: _State | None = None
    ) -> None:
        """Book B §3.2.1.2: the retained UI Request on Restart, else "Present card"."""
        if state is not None and state.restart and state.ui_on_restart is not None:
            session.ui.append(state.ui_on_restart)
            return
        currency = transaction.currency or self.config.data(0x5F2A)
        session.ui.append(
            UiRequest(
                UiMessage.PRESENT_CARD,
                Status.READY_TO_READ,
                value=transaction.amount,
                currency=currency,
            )
        )

    def _wait_for_card(self, reader: Reader, timeout: float | None, session: _Session) -> None:
        """Book B §3.2.1.3-§3.2.1.5: poll for a card; a collision shows "Please present
        one card only" (Processing Error), and once it is over the same message with
        Ready to Read."""
        collided = 0
        while True:
            try:
                reader.wait_for_card(timeout)
            except Exception as exc:
                if not is_collision(exc):
                    raise
                if not collided:
                    session.ui.append(
                        UiRequest(UiMessage.PRESENT_ONE_CARD_ONLY, Status.PROCESSING_ERROR)
                    )
                collided += 1
                if session.record is not None:
                    session.record.note("collision")
                self._note("entry point: collision, more than one card in the field")
                if collided >= MAX_COLLISIONS:
                    raise CollisionError(
                        f"{collided} collisions in a row on {reader.path}"
                    ) from exc
                continue
            break
        if collided:
            session.ui.append(UiRequest(UiMessage.PRESENT_ONE_CARD_ONLY, Status.READY_TO_READ))

    def run(
        self,
        reader: Reader,
        transaction: Transaction,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> TransactionResult:
        """One pass from pre-processing to its outcome (module docstring), no restart.

        ``wait`` makes the reader wait for (and activate) a card first, up to
        ``timeout`` seconds (:class:`NoCardError` when none comes); without it the card
        must already be activated.
        """
        session = _Session(self.timer, self.timer())
        if transaction.when is None:
            transaction = transaction.at(self.clock())
        processed, done = self._pre_processing(session, transaction)
        if done is not None:
            return done
        if wait:
            self._present_card(session, transaction)
            self._wait_for_card(reader, timeout, session)
        state = _State(processed)
        return self._guarded(reader, transaction, state, session)

    def process(
        self,
        reader: Reader,
        transaction: Transaction,
        *,
        start: Start = Start.A,
        online: OnlineHandler | None = None,
        timeout: float | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> EntryPointRecord:
        """One whole transaction with outcome processing (Book B §3.5), recorded.

        ``start`` is :attr:`Start.A` (pre-processing, then protocol activation) or
        :attr:`Start.B` (Autorun: no pre-processing, :func:`autorun_indicators`). After
        each outcome:

        - a UI Request on Outcome is shown; a field-off request and a removal time-out
          are noted;
        - an Online Request whose Start is B or C and whose Online Response Data is not
          N/A goes online through ``online`` (``result -> data`` of 91/71/72, ``None``
          when no answer came: the transaction ends there); the data go to the kernel
          at the restart (:attr:`KernelContext.online_response`);
        - Start B restarts at protocol activation (§3.2: the retained UI Request on
          Restart, else "Present card"; the card is polled and selected again), Start C
          at final combination selection on the retained candidate list (§3.3.3), Start
          D at kernel activation without FCI (§3.4.1.3); the restart flag is set;
        - anything else ends the transaction.

        A card lost during protocol activation or combination selection (before any
        kernel) returns to Start B without the restart flag (§3.3.3.7): "Present card",
        the candidate list built afresh.

        At most ``max_restarts`` restarts; then the last outcome stands (event
        ``restart limit``); so it does when no card comes back within ``timeout`` at a
        restart (event ``no card``). Reader errors of :meth:`run` apply;
        :class:`NoCardError` while waiting for the first card propagates.
        """
        if start not in (Start.A, Start.B):
            raise ValueError("an entry point transaction starts at A or at B (Autorun)")
        record = EntryPointRecord(start=start)
        session = _Session(self.timer, self.timer(), ui=record.ui, record=record)
        recording = RecordingReader(reader, record)
        if transaction.when is None:
            transaction = transaction.at(self.clock())
        if start is Start.A:
            processed, done = self._pre_processing(session, transaction)
            if done is not None:
                return self._outcome(record, done)
        else:
            processed = autorun_indicators(self.config)
            self._note("entry point: Autorun, started at B without pre-processing")
        state = _State(processed, entry=start)
        while True:
            if state.next is Start.B:
                self._present_card(session, transaction, state)
                try:
                    self._wait_for_card(recording, timeout, session)
                except NoCardError as exc:
                    if not state.restart:
                        raise
                    record.note("no card", reason=str(exc))  # the last outcome stands
                    break
            elif state.ui_on_restart is not None:
                session.ui.append(state.ui_on_restart)
            result = self._guarded(recording, transaction, state, session)
            self._outcome(record, result)
            params = result.parameters
            if params.field_off_request_ms is not None:
                record.note("field off", hold_time_ms=params.field_off_request_ms)
            if params.removal_timeout_ms:
                record.note("removal timeout", ms=params.removal_timeout_ms)
            restart_at = params.start
            response = b""
            if state.lost_in_selection:
                # §3.3.3.7: a communication error before the kernel returns to Start B,
                # not as an outcome: no restart flag, "Present card" again.
                if record.restarts >= max_restarts:
                    record.note("restart limit", restarts=record.restarts)
                    break
                record.restarts += 1
                record.note("restart", start="B")
                state.next, state.ui_on_restart = Start.B, None
                continue
            if restart_at not in (Start.B, Start.C, Start.D):
                break
            if (
                result.outcome is Outcome.ONLINE_REQUEST
                and params.online_response_kind is not OnlineResponse.NA
            ):
                answer = online(result) if online is not None else None
                record.note("online", response=answer.hex().upper() if answer else None)
                if answer is None:
                    break
                response = bytes(answer)
            if record.restarts >= max_restarts:
                record.note("restart limit", restarts=record.restarts)
                break
            record.restarts += 1
            record.note("restart", start=restart_at.name)
            self._note(f"entry point: restart at {restart_at.name}")
            state.restart = True
            state.entry = restart_at
            state.next = restart_at
            state.ui_on_restart = params.ui_on_restart
            state.online_response = response
        return record

    @staticmethod
    def _outcome(record: EntryPointRecord, result: TransactionResult) -> EntryPointRecord:
        record.result = result
        record.outcome = result.parameters
        if result.parameters.ui_on_outcome is not None:
            record.ui.append(result.parameters.ui_on_outcome)
        return record

    def _guarded(
        self, reader: Reader, transaction: Transaction, state: _State, session: _Session
    ) -> TransactionResult:
        """One pass from combination selection; reader errors become outcomes (a card
        lost before the kernel is also flagged: Book B §3.3.3.7)."""
        state.in_kernel = state.lost_in_selection = False
        try:
            return self._select_and_activate(reader, transaction, state, session)
        except ReaderUnavailableError:
            raise
        except NoCardError as exc:
            state.lost_in_selection = not state.in_kernel
            return self._finish(session, transaction, Outcome.TRY_AGAIN, f"card gone: {exc}")
        except CommunicationError as exc:
            state.lost_in_selection = not state.in_kernel
            if session.record is not None:
                session.record.note("card removed")
            return self._finish(
                session, transaction, Outcome.TRY_AGAIN, f"card removed or not answering: {exc}"
            )
        except ProtocolError as exc:
            return self._finish(
                session, transaction, Outcome.END_APPLICATION, f"reader protocol error: {exc}"
            )

    def _ppse(
        self, reader: Reader, transaction: Transaction, state: _State, session: _Session
    ) -> TransactionResult | None:
        """Book B §3.3.2: SELECT PPSE and the candidate list (``state.candidates``);
        an outcome when there is none (§3.3.2.3, §3.3.2.4, §3.3.2.7)."""
        began = self.timer()
        answer = session.transmit(reader, _SELECT_PPSE)
        session.timings_ms["select_ppse"] = (self.timer() - began) * 1000.0
        state.candidates = []
        if len(answer) < 2:
            return self._finish(
                session, transaction, Outcome.END_APPLICATION, "PPSE answer without status word"
            )
        sw = int.from_bytes(answer[-2:], "big")
        if sw != 0x9000:
            return self._finish(
                session,
                transaction,
                Outcome.END_APPLICATION,
                f"SELECT PPSE answered {sw:04X}",
            )
        entries = parse_ppse(answer[:-2])
        if not entries:
            return self._finish(
                session, transaction, Outcome.END_APPLICATION, "the PPSE lists no application"
            )
        state.candidates = build_candidates(entries, state.processed, self.registry)
        if self.trace is not None:
            self._note(f"entry point: candidates {state.candidates!r}")
        return None

    def _select_and_activate(
        self,
        reader: Reader,
        transaction: Transaction,
        state: _State,
        session: _Session,
    ) -> TransactionResult:
        if state.next is Start.D and state.current is not None:
            current, selected = state.current
            return self._activate(reader, transaction, current, selected, b"", 0, session, state)
        if state.next is not Start.C:
            ended = self._ppse(reader, transaction, state, session)
            if ended is not None:
                return ended
        candidates = state.candidates
        tried = 0
        skipped: list[str] = []
        while candidates:
            if tried >= MAX_SELECTIONS:
                break
            tried += 1
            cand = candidates[0]
            began = self.timer()
            fci_answer = session.transmit(reader, select(cand.select_name).encode())
            session.timings_ms["select_aid"] = session.timings_ms.get("select_aid", 0.0) + (
                (self.timer() - began) * 1000.0
            )
            name = cand.entry.adf_name.hex().upper()
            problem = ""
            fci, sw = fci_answer[:-2], int.from_bytes(fci_answer[-2:], "big")
            dfname, pdol = _fci_fields(fci) if len(fci_answer) >= 2 else (None, None)
            if len(fci_answer) < 2:
                problem = "no status word"
            elif sw != 0x9000:
                problem = f"SELECT answered {sw:04X}"
            elif dfname is None or not dfname.startswith(cand.combination.aid):
                problem = "the FCI names no or another application"
            if problem and state.online_response:
                return self._finish(
                    session,
                    transaction,
                    Outcome.END_APPLICATION,
                    f"{name}: {problem}: the application of the online request cannot be"
                    " selected again",
                    candidate=cand,
                )
            if problem:
                skipped.append(f"{name}: {problem}")
                self._note(f"entry point: {skipped[-1]}")
                candidates.pop(0)  # Book B §3.3.3.5
                continue
            assert dfname is not None
            kernel_id = self._kernel_for(cand, pdol)
            if kernel_id is None:
                skipped.append(f"{name}: Visa AID without TTQ in the PDOL, no kernel 1")
                self._note(f"entry point: {skipped[-1]} (Book B §3.3.3.6)")
                candidates.pop(0)
                continue
            if kernel_id != cand.kernel_id:
                cand = replace(cand, kernel_id=kernel_id)
                candidates[0] = cand
            result = self._activate(reader, transaction, cand, dfname, fci, sw, session, state)
            if result.outcome is Outcome.SELECT_NEXT:
                skipped.append(f"{name}: " + ("; ".join(result.reasons) or "select next"))
                self._note("entry point: select next")
                candidates.pop(0)
                continue
            return result
        why = f" ({'; '.join(skipped)})" if skipped else ""
        return self._finish(
            session,
            transaction,
            Outcome.END_APPLICATION,
            f"no application of the card could be selected{why}",
        )

    def _kernel_for(self, cand: Candidate, pdol: bytes | None) -> bytes | None:
        """Book B §3.3.3.6: a Visa AID selected for kernel 3 whose PDOL is absent or asks
        no TTQ goes to kernel 1 when it is registered; else the candidate is removed
        (``None``), the last one included: with no candidate left the transaction ends
        (End Application) before any GPO, so no mag-stripe mode is ever offered."""
        if cand.kernel_id != b"\x03" or cand.entry.adf_name[:5] != VISA_RID:
            return cand.kernel_id
        if _asks_ttq(pdol):
            return cand.kernel_id
        if b"\x01" in self.registry:
            self._note("entry point: Visa AID without TTQ in the PDOL: kernel 1 (§3.3.3.6)")
            return b"\x01"
        return None

    def _activate(
        self,
        reader: Reader,
        transaction: Transaction,
        cand: Candidate,
        dfname: bytes,
        fci: bytes,
        sw: int,
        session: _Session,
        state: _State,
    ) -> TransactionResult:
        kernel = self.registry.get(cand.kernel_id)
        assert kernel is not None  # build_candidates kept only registered kernels
        state.current = (cand, dfname)
        ctx = KernelContext(
            reader=reader,
            config=self.config,
            combination=cand.combination,
            aid=dfname,
            fci=fci,
            fci_sw=sw,
            indicators=cand.indicators,
            transaction=transaction,
            label=cand.entry.label,
            kernel_id=cand.kernel_id,
            rng=self.rng,
            clock=self.clock,
            timer=self.timer,
            trace=self.trace,
            timings_ms=session.timings_ms,
            ui=session.ui,
            started=session.started,
            start=state.entry,
            restart=state.restart,
            online_response=state.online_response,
        )
        if session.record is not None:
            session.record.activations.append(Activation.from_context(ctx, kernel.name))
        state.in_kernel = True
        # The kernel counts through its context; the entry point's own APDUs come first.
        ctx.apdu_count = session.apdu_count
        ctx.card_seconds = session.card_seconds
        self._note(f"entry point: activating {kernel.name} for {dfname.hex().upper()}")
        try:
            result = kernel.activate(ctx)
        except (CommunicationError, ProtocolError, ReaderUnavailableError, NoCardError):
            session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
            raise
        except Exception as exc:  # last resort: a kernel bug must not crash the terminal
            session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
            return self._finish(
                session,
                transaction,
                Outcome.END_APPLICATION,
                f"internal error in {kernel.name}: {type(exc).__name__}",
                candidate=cand,
            )
        session.apdu_count, session.card_seconds = ctx.apdu_count, ctx.card_seconds
        return result


def run_entry_point(
    config: TerminalConfig,
    reader: Reader,
    transaction: Transaction,
    *,
    registry: KernelRegistry | None = None,
    start: Start = Start.A,
    online: OnlineHandler | None = None,
    timeout: float | None = None,
    clock: Callable[[], datetime] = datetime.now,
    trace: Callable[[str], None] | None = None,
) -> EntryPointRecord:
    """Run one entry point transaction and return its record (the public API of issue 7).

    ``config`` the terminal configuration, ``reader`` holds the card (an
    :class:`~terminal.readers.emulated.EmulatedReader` of a scripted card, a PC/SC
    reader...), ``transaction`` the amount and type; ``registry`` the kernels (default:
    kernel 2 and kernel 3). See :meth:`EntryPoint.process` for ``start`` and ``online``.
    """
    entry = EntryPoint(config, registry, clock=clock, trace=trace)
    return entry.process(reader, transaction, start=start, online=online, timeout=timeout)
