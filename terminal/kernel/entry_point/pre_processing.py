"""Start A, pre-processing (EMV Book B §3.1): the indicators of each combination.

Per combination of the configuration (§3.1.1):

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
swipe card" with status Processing Error (§3.1.1.13, :func:`pre_processing`). Autorun
(the reader starts at B, §3.2.1.1) does no pre-processing: every indicator is 0 and the
TTQ copy is the TTQ as configured (:func:`autorun_indicators`); its transaction is the
one configured (§3.1, ``autorun`` of the configuration, :func:`autorun_transaction`).

The configuration is per combination and transaction type (§3.1): a combination whose
types do not include the transaction's is left out (1.), so the same AID and kernel
configured again for a refund or a cash advance brings that type its own limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from emvwire.currency import currency_by_code
from emvwire.qualifiers import TTQ
from emvwire.tags import Tag
from terminal.kernel.config import Combination, TerminalConfig
from terminal.kernel.entry_point.session import Session
from terminal.kernel.outcome import Outcome, Status
from terminal.kernel.registry import PreProcessing
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
)

__all__ = [
    "CompiledCombination",
    "autorun_indicators",
    "autorun_transaction",
    "compile_combinations",
    "pre_process",
    "pre_process_compiled",
    "pre_processing",
]

#: TTQ byte 2 bits that pre-processing sets (§3.1.1.8-§3.1.1.9) and the rest of the
#: byte as configured (§3.1.1.2 clears bits 8 and 7).
_ONLINE_CRYPTOGRAM: Final = TTQ.ONLINE_CRYPTOGRAM_REQUIRED.mask
_CVM_REQUIRED: Final = TTQ.CVM_REQUIRED.mask
_TTQ2_KEPT: Final = 0xFF & ~(_ONLINE_CRYPTOGRAM | _CVM_REQUIRED)
#: TTQ byte 1 bit 4: offline-only reader.
_OFFLINE_ONLY: Final = TTQ.OFFLINE_ONLY.mask


def _currency_exponent(config: TerminalConfig, transaction: Transaction) -> int:
    exponent = config.terminal_data.get(Tag.TRANSACTION_CURRENCY_EXPONENT)
    if transaction.currency is None and exponent is not None:
        return exponent[0] if len(exponent) == 1 and exponent[0] <= 9 else 2
    code = transaction.currency or config.currency
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
class CompiledCombination:
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


def compile_combinations(config: TerminalConfig) -> tuple[CompiledCombination, ...]:
    """The pre-processing parameters of every combination, in configuration order."""
    raw_floor = config.terminal_data.get(Tag.TERMINAL_FLOOR_LIMIT)
    terminal_floor = int.from_bytes(raw_floor, "big") if raw_floor is not None else None
    out = []
    for c in config.combinations:
        floor = c.floor_limit
        if floor is None:
            floor = c.terminal_floor_limit if c.terminal_floor_limit is not None else terminal_floor
        ttq = c.ttq
        out.append(
            CompiledCombination(
                c,
                c.transaction_types,
                c.status_check,
                c.zero_amount_allowed is False,
                c.transaction_limit,
                floor,
                c.cvm_required_limit,
                ttq[0] if ttq is not None else -1,
                ttq[1] & _TTQ2_KEPT if ttq is not None else 0,
                bytes(ttq[2:]) if ttq is not None else b"",
            )
        )
    return tuple(out)


def _pre_process_one(
    c: CompiledCombination, amount: int, txn_type: int, unit: int
) -> PreProcessing:
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
            byte2 |= _ONLINE_CRYPTOGRAM
        if zero:
            if c.ttq1 & _OFFLINE_ONLY:
                not_allowed = True
                reasons += ("zero amount on an offline-only reader",)
            else:
                byte2 |= _ONLINE_CRYPTOGRAM
        if cvm_exceeded:
            byte2 |= _CVM_REQUIRED
        ttq = bytes((c.ttq1, byte2)) + c.ttq_tail
    return _indicators(
        status_check, not_allowed, zero, cvm_exceeded, floor_exceeded, over_limit, ttq, reasons
    )


def pre_process_compiled(
    compiled: tuple[CompiledCombination, ...], config: TerminalConfig, transaction: Transaction
) -> list[tuple[Combination, PreProcessing]]:
    """The indicators of every compiled combination (:func:`compile_combinations`)."""
    unit = 10 ** _currency_exponent(config, transaction)
    amount, txn_type = transaction.amount, transaction.type
    return [(c.combination, _pre_process_one(c, amount, txn_type, unit)) for c in compiled]


def pre_process(
    config: TerminalConfig, transaction: Transaction
) -> list[tuple[Combination, PreProcessing]]:
    """The pre-processing indicators of every combination, in configuration order."""
    return pre_process_compiled(compile_combinations(config), config, transaction)


def autorun_indicators(config: TerminalConfig) -> list[tuple[Combination, PreProcessing]]:
    """Autorun (Book B §3.2.1.1): the entry point started at B by the reader, without
    pre-processing. Every indicator of every combination is 0 and the copy of the TTQ is
    the configured TTQ, unchanged."""
    return [(c, PreProcessing(ttq=c.ttq)) for c in config.combinations]


def autorun_transaction(config: TerminalConfig) -> Transaction | None:
    """The configured Autorun transaction (Book B §3.1, §3.2.1.1): its type, amount and
    other amount in the terminal's currency; ``None`` when none is configured."""
    run = config.autorun
    if run is None:
        return None
    return Transaction(run.amount, run.other_amount, type=run.type)


def pre_processing(
    session: Session, compiled: tuple[CompiledCombination, ...], transaction: Transaction
) -> tuple[list[tuple[Combination, PreProcessing]], TransactionResult | None]:
    """Start A (Book B §3.1.1): the indicators, and the outcome of §3.1.1.13 when no
    combination is allowed (``None`` otherwise)."""
    processed = pre_process_compiled(compiled, session.config, transaction)
    for combination, ind in processed if session.trace is not None else ():
        session.note(
            f"pre-processing {combination!r}: "
            + ("not allowed (" + "; ".join(ind.reasons) + ")" if ind.not_allowed else "allowed")
            + (f", TTQ {ind.ttq.hex().upper()}" if ind.ttq is not None else "")
        )
    if all(ind.not_allowed for _, ind in processed):
        reasons = sorted({r for _, ind in processed for r in ind.reasons})
        result = session.finish(
            transaction,
            Outcome.TRY_ANOTHER_INTERFACE,
            "no combination allowed: " + "; ".join(reasons),
            status=Status.PROCESSING_ERROR,
        )
        return processed, result
    return processed, None
