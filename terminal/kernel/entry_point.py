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

When no combination is allowed, the outcome is Try Another Interface (§3.1.1.13).

Start B, protocol activation: the reader waits for a card ("Present card").

Start C, combination selection (§3.3): SELECT ``2PAY.SYS.DDF01``; a status other than
9000 or an FCI without directory entries ends the transaction (End Application, "Insert,
swipe or try another card"). Each directory entry (61: 4F ADF name, 50 label, 87
priority, 9F2A kernel identifier, 9F29 extended selection) is matched against every
allowed combination: the ADF name equals the combination's AID or begins with it
(partial matching), and the requested kernel id (:func:`~terminal.kernel.registry.
requested_kernel_id`) equals the combination's and is registered. Candidates are ordered
by priority (1 first; no priority, or 0, last), then in directory order (§3.3.3). The
first is selected (with its extended selection appended when the combination allows
it); an answer other than 9000, or an FCI that names another application, removes it
and the next is tried.

Start D, kernel activation (§3.4): the kernel of the combination runs with a
:class:`~terminal.kernel.registry.KernelContext`. A Select Next outcome removes the
candidate and goes back to the selection of the next one (Start C).

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from emvwire import tlv
from emvwire.apdu import select
from emvwire.errors import DecodeError
from terminal.kernel.config import Combination, TerminalConfig
from terminal.kernel.outcome import Outcome, Status, UiMessage, UiRequest
from terminal.kernel.registry import (
    KernelContext,
    KernelRegistry,
    PreProcessing,
    default_registry,
    requested_kernel_id,
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
    "PPSE_NAME",
    "Candidate",
    "DirectoryEntry",
    "EntryPoint",
    "aid_matches",
    "build_candidates",
    "parse_ppse",
    "pre_process",
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


def _pre_process_one(
    combination: Combination, transaction: Transaction, config: TerminalConfig
) -> PreProcessing:
    amount = transaction.amount
    reasons: list[str] = []
    if transaction.type not in combination.transaction_types:
        return PreProcessing(
            not_allowed=True, reasons=(f"transaction type {transaction.type:02X} not supported",)
        )
    ttq = bytearray(combination.ttq) if combination.ttq is not None else None
    if ttq is not None:
        ttq[1] &= 0x3F
    status_check = combination.status_check and amount == 10 ** _currency_exponent(
        config, transaction
    )
    not_allowed = False
    zero = False
    if amount == 0:
        if combination.zero_amount_allowed is False:
            not_allowed = True
            reasons.append("zero amount not allowed")
        else:
            zero = True
    limit = combination.transaction_limit
    if limit is not None and amount >= limit:
        not_allowed = True
        reasons.append("amount at or over the contactless transaction limit")
    floor = combination.floor_limit
    if floor is None:
        floor = combination.terminal_floor_limit
        if floor is None and 0x9F1B in config.terminal_data:
            floor = int.from_bytes(config.terminal_data[0x9F1B], "big")
    floor_exceeded = floor is not None and amount > floor
    cvm_limit = combination.cvm_required_limit
    cvm_exceeded = cvm_limit is not None and amount >= cvm_limit
    if ttq is not None:
        if floor_exceeded or status_check:
            ttq[1] |= TTQ_ONLINE_CRYPTOGRAM
        if zero:
            if ttq[0] & TTQ_OFFLINE_ONLY:
                not_allowed = True
                reasons.append("zero amount on an offline-only reader")
            else:
                ttq[1] |= TTQ_ONLINE_CRYPTOGRAM
        if cvm_exceeded:
            ttq[1] |= TTQ_CVM_REQUIRED
    return PreProcessing(
        status_check_requested=status_check,
        not_allowed=not_allowed,
        zero_amount=zero,
        cvm_required_limit_exceeded=cvm_exceeded,
        floor_limit_exceeded=floor_exceeded,
        transaction_limit_exceeded=limit is not None and amount >= limit,
        ttq=bytes(ttq) if ttq is not None else None,
        reasons=tuple(reasons),
    )


def pre_process(
    config: TerminalConfig, transaction: Transaction
) -> list[tuple[Combination, PreProcessing]]:
    """The pre-processing indicators of every combination, in configuration order."""
    return [(c, _pre_process_one(c, transaction, config)) for c in config.combinations]


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
    return len(adf_name) >= len(aid) and adf_name[: len(aid)] == aid


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
    """The candidate list (Book B §3.3.2.5-§3.3.2.6), ordered by §3.3.3."""
    found: list[tuple[tuple[int, int, int], Candidate]] = []
    for entry in entries:
        kid = requested_kernel_id(entry.adf_name, entry.kernel_identifier)
        if kid is None:
            continue
        for index, (combination, indicators) in enumerate(processed):
            if indicators.not_allowed:
                continue
            if not aid_matches(entry.adf_name, combination.aid):
                continue
            if combination.kernel_id != kid or kid not in registry:
                continue
            cand = Candidate(entry, combination, indicators, kid)
            prio, order, _ = cand.sort_key
            found.append(((prio, order, index), cand))
            break
    found.sort(key=lambda item: item[0])
    return [c for _, c in found]


# --- the entry point --------------------------------------------------------------------


def _dfname(fci: bytes) -> bytes | None:
    try:
        top = tlv.decode_one(fci, 0x6F)
    except DecodeError:
        return None
    node = next((c for c in top.children if c.tag == 0x84), None)
    return node.value if node is not None else None


@dataclass(slots=True)
class _Session:
    """Counters of one transaction, shared by the entry point and the kernel."""

    timer: Callable[[], float]
    started: float
    apdu_count: int = 0
    card_seconds: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    ui: list[UiRequest] = field(default_factory=list)

    def transmit(self, reader: Reader, apdu: bytes) -> bytes:
        self.apdu_count += 1
        began = self.timer()
        try:
            return reader.transmit(apdu)
        finally:
            self.card_seconds += self.timer() - began


class EntryPoint:
    """Book B entry point over a :class:`TerminalConfig` and a :class:`KernelRegistry`.

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
    ) -> TransactionResult:
        self._note(f"entry point: {outcome.label}: {reason}")
        session.timings_ms["card"] = session.card_seconds * 1000.0
        session.timings_ms["total"] = (self.timer() - session.started) * 1000.0
        return build_result(
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

    def run(
        self,
        reader: Reader,
        transaction: Transaction,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> TransactionResult:
        """One transaction from pre-processing to its outcome (module docstring).

        ``wait`` makes the reader wait for (and activate) a card first, up to
        ``timeout`` seconds (:class:`NoCardError` when none comes); without it the card
        must already be activated.
        """
        session = _Session(self.timer, self.timer())
        if transaction.when is None:
            transaction = transaction.at(self.clock())
        processed = pre_process(self.config, transaction)
        for combination, ind in processed:
            self._note(
                f"pre-processing {combination!r}: "
                + ("not allowed (" + "; ".join(ind.reasons) + ")" if ind.not_allowed else "allowed")
                + (f", TTQ {ind.ttq.hex().upper()}" if ind.ttq is not None else "")
            )
        if all(ind.not_allowed for _, ind in processed):
            reasons = sorted({r for _, ind in processed for r in ind.reasons})
            return self._finish(
                session,
                transaction,
                Outcome.TRY_ANOTHER_INTERFACE,
                "no combination allowed: " + "; ".join(reasons),
            )
        currency = transaction.currency or self.config.data(0x5F2A)
        if wait:
            session.ui.append(
                UiRequest(
                    UiMessage.PRESENT_CARD,
                    Status.READY_TO_READ,
                    value=transaction.amount,
                    currency=currency,
                )
            )
            reader.wait_for_card(timeout)
        try:
            return self._select_and_activate(reader, transaction, processed, session)
        except ReaderUnavailableError:
            raise
        except NoCardError as exc:
            return self._finish(session, transaction, Outcome.TRY_AGAIN, f"card gone: {exc}")
        except CommunicationError as exc:
            return self._finish(
                session, transaction, Outcome.TRY_AGAIN, f"card removed or not answering: {exc}"
            )
        except ProtocolError as exc:
            return self._finish(
                session, transaction, Outcome.END_APPLICATION, f"reader protocol error: {exc}"
            )

    def _select_and_activate(
        self,
        reader: Reader,
        transaction: Transaction,
        processed: list[tuple[Combination, PreProcessing]],
        session: _Session,
    ) -> TransactionResult:
        began = self.timer()
        answer = session.transmit(reader, select(PPSE_NAME).encode())
        session.timings_ms["select_ppse"] = (self.timer() - began) * 1000.0
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
        candidates = build_candidates(entries, processed, self.registry)
        self._note(f"entry point: candidates {candidates!r}")
        tried = 0
        skipped: list[str] = []
        while candidates:
            if tried >= MAX_SELECTIONS:
                break
            tried += 1
            cand = candidates.pop(0)
            began = self.timer()
            fci_answer = session.transmit(reader, select(cand.select_name).encode())
            session.timings_ms["select_aid"] = session.timings_ms.get("select_aid", 0.0) + (
                (self.timer() - began) * 1000.0
            )
            name = cand.entry.adf_name.hex().upper()
            if len(fci_answer) < 2:
                skipped.append(f"{name}: no status word")
                continue
            fci, sw = fci_answer[:-2], int.from_bytes(fci_answer[-2:], "big")
            if sw != 0x9000:
                skipped.append(f"{name}: SELECT answered {sw:04X}")
                self._note(f"entry point: {skipped[-1]}")
                continue
            dfname = _dfname(fci)
            if dfname is None or not aid_matches(dfname, cand.combination.aid):
                skipped.append(f"{name}: the FCI names no or another application")
                self._note(f"entry point: {skipped[-1]}")
                continue
            result = self._activate(reader, transaction, cand, dfname, fci, sw, session)
            if result.outcome is Outcome.SELECT_NEXT:
                skipped.append(f"{name}: " + ("; ".join(result.reasons) or "select next"))
                self._note("entry point: select next")
                continue
            return result
        why = f" ({'; '.join(skipped)})" if skipped else ""
        return self._finish(
            session,
            transaction,
            Outcome.END_APPLICATION,
            f"no application of the card could be selected{why}",
        )

    def _activate(
        self,
        reader: Reader,
        transaction: Transaction,
        cand: Candidate,
        dfname: bytes,
        fci: bytes,
        sw: int,
        session: _Session,
    ) -> TransactionResult:
        kernel = self.registry.get(cand.kernel_id)
        assert kernel is not None  # build_candidates kept only registered kernels
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
        )
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
