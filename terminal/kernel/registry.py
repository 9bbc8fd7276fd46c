"""The kernel plug-in interface and the registry of kernels (EMV Book B §3.4, Book A §5).

The entry point (:mod:`terminal.kernel.entry_point`) does everything up to the final
SELECT of an application, then hands over to the kernel registered for the requested
kernel id with one :class:`KernelContext`: the reader, the configuration, the chosen
:class:`~terminal.kernel.config.Combination`, the selected AID with its FCI and status
word, the pre-processing indicators (with the TTQ copy), the transaction, the random
source, the clock and a trace. The kernel runs its flow with :meth:`KernelContext.exchange`
(which counts APDUs and times the card) and ends with :meth:`KernelContext.result`.

Writing a kernel: a module defines an object satisfying :class:`Kernel` (``kernel_id``,
``name``, ``activate(ctx) -> TransactionResult``) and exposes it as the module-level
name ``KERNEL``; :data:`BUILTIN_KERNEL_MODULES` lists the modules
:func:`default_registry` loads (a module that is not there yet is skipped). A kernel
keeps no state between transactions: everything of one transaction lives in the
context. Reader errors (:class:`~terminal.readers.base.CardRemovedError`,
:class:`~terminal.readers.base.CommunicationError`) may be left to propagate: the entry
point turns them into the outcome Try Again. Anything a card answers, however
malformed, must end in a result with a reason; an exception escaping a kernel is
caught by the entry point as a last resort and ends the transaction (End Application).

Kernel ids (Book B §3.3.2.5, Kernel Identifier 9F2A): one byte (01-07, the
international kernels: 1 Visa/JCB legacy, 2 Mastercard, 3 Visa, 4 American Express, 5
JCB, 6 Discover, 7 UnionPay; :data:`KERNEL_NAMES`) or three bytes (domestic kernels:
byte 1 bits 8-7 10b EMVCo, 11b proprietary; :func:`check_kernel_id`). When a directory
entry carries no kernel id, the default of the RID applies (:data:`DEFAULT_KERNEL_BY_RID`,
Book B Table 3-6); :func:`kernel_request` is the entry point's reading of 9F2A and
:func:`kernel_supported` its §3.3.2.5 D match. :mod:`terminal.kernel.conformance` gives
a kernel for any id that records its activation (EMVCo-style entry point testing).
"""

from __future__ import annotations

import importlib
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from emvwire.apdu import CApdu, RApdu
from emvwire.mask import scrub
from emvwire.tags import FIELD_55_TAGS, Tag
from terminal.kernel.bounds import Budget
from terminal.kernel.config import CaKeys, Combination, TerminalConfig
from terminal.kernel.outcome import Outcome, Start, Status, UiMessage, UiRequest
from terminal.kernel.transaction import (
    Cvm,
    OdaResult,
    Transaction,
    TransactionResult,
    build_result,
)
from terminal.readers.base import Reader

__all__ = [
    "ANY_KERNEL",
    "BUILTIN_KERNEL_MODULES",
    "DEFAULT_KERNEL_BY_RID",
    "KERNEL_NAMES",
    "FlowKernel",
    "Kernel",
    "KernelContext",
    "KernelRegistry",
    "PreProcessing",
    "check_kernel_id",
    "default_kernel_id",
    "default_registry",
    "kernel_id_kind",
    "kernel_request",
    "kernel_supported",
]

#: Default kernel id by RID when a directory entry has no 9F2A (Book B §3.3.2.5).
DEFAULT_KERNEL_BY_RID: Final[Mapping[bytes, bytes]] = {
    bytes.fromhex("A000000004"): b"\x02",  # Mastercard
    bytes.fromhex("A000000003"): b"\x03",  # Visa
    bytes.fromhex("A000000025"): b"\x04",  # American Express
    bytes.fromhex("A000000065"): b"\x05",  # JCB
    bytes.fromhex("A000000152"): b"\x06",  # Discover
    bytes.fromhex("A000000324"): b"\x06",  # Discover (Diners)
    bytes.fromhex("A000000333"): b"\x07",  # UnionPay
}

#: The international kernels of Book B §2.3 by their one-byte id (Book C-1 to C-7).
KERNEL_NAMES: Final[Mapping[bytes, str]] = {
    b"\x01": "kernel 1 (Visa and JCB legacy, Book C-1)",
    b"\x02": "kernel 2 (Mastercard, Book C-2)",
    b"\x03": "kernel 3 (Visa, Book C-3)",
    b"\x04": "kernel 4 (American Express, Book C-4)",
    b"\x05": "kernel 5 (JCB, Book C-5)",
    b"\x06": "kernel 6 (Discover, Book C-6)",
    b"\x07": "kernel 7 (UnionPay, Book C-7)",
}

#: The Requested Kernel ID zero (Book B §3.3.2.5 D): whatever kernel the reader's
#: combination names is accepted.
ANY_KERNEL: Final = b"\x00"

#: Modules :func:`default_registry` loads, each exporting ``KERNEL``.
BUILTIN_KERNEL_MODULES: Final[tuple[str, ...]] = (
    "terminal.kernel.k3.flow",
    "terminal.kernel.k2.flow",
    "terminal.kernel.k4.flow",
    "terminal.kernel.k7.flow",
)


def default_kernel_id(aid: bytes) -> bytes | None:
    """The kernel id for an AID whose directory entry names none, by its RID."""
    return DEFAULT_KERNEL_BY_RID.get(bytes(aid[:5]))


def kernel_id_kind(kernel_id: bytes) -> str:
    """What a Kernel ID is (Book B §3.3.2.5, Kernel Identifier byte 1 bits 8-7):
    ``international`` (00b, one byte), ``rfu`` (01b), ``emvco domestic`` (10b) or
    ``proprietary domestic`` (11b, three bytes: b8b7 || Short Kernel ID || Extended
    Kernel ID)."""
    if not kernel_id:
        raise ValueError("an empty kernel id")
    return ("international", "rfu", "emvco domestic", "proprietary domestic")[kernel_id[0] >> 6]


def check_kernel_id(kernel_id: bytes) -> bytes:
    """``kernel_id`` if it can name a kernel of a combination, else ``ValueError``.

    One byte 01-3F (an international kernel; 01-07 are Book C-1 to C-7), or three bytes
    whose byte 1 bits 8-7 are 10b or 11b (a domestic kernel) with a Short Kernel ID
    other than zero (Book B §3.3.2.5 C).
    """
    kid = bytes(kernel_id)
    if len(kid) == 1:
        if not 0x01 <= kid[0] <= 0x3F:
            raise ValueError(f"a one-byte kernel id is 01 to 3F, not {kid.hex().upper()}")
        return kid
    if len(kid) == 3:
        if kid[0] & 0xC0 not in (0x80, 0xC0) or not kid[0] & 0x3F:
            raise ValueError(
                f"a three-byte kernel id {kid.hex().upper()} must be domestic (byte 1 bits"
                " 8-7 10b or 11b) with a Short Kernel ID other than 0"
            )
        return kid
    raise ValueError(f"kernel id {kid.hex().upper()} is neither 1 nor 3 bytes")


def kernel_request(adf_name: bytes, kernel_identifier: bytes | None) -> bytes | None:
    """The Requested Kernel ID of a directory entry, as Book B §3.3.2.5 C says.

    - 9F2A absent or empty: the default of the RID (:data:`DEFAULT_KERNEL_BY_RID`,
      Book B Table 3-6), or :data:`ANY_KERNEL` for a RID the table does not name;
    - byte 1 bits 8-7 ``00b`` or ``01b``: byte 1 alone (``00`` is :data:`ANY_KERNEL`);
    - ``10b`` or ``11b`` with fewer than three bytes: malformed, ``None`` (the entry
      is skipped);
    - ``10b``/``11b``, Short Kernel ID not zero: bytes 1-3 (the rest is ignored);
    - ``10b``/``11b``, Short Kernel ID zero: out of scope of Book B; the whole value is
      kept (it matches no combination a configuration can hold).
    """
    if not kernel_identifier:
        return default_kernel_id(adf_name) or ANY_KERNEL
    first = kernel_identifier[0]
    if first & 0xC0 in (0x00, 0x40):
        return bytes(kernel_identifier[:1])
    if len(kernel_identifier) < 3:
        return None
    if first & 0x3F:
        return bytes(kernel_identifier[:3])
    return bytes(kernel_identifier)


def kernel_supported(requested: bytes, kernel_id: bytes) -> bool:
    """Book B §3.3.2.5 D: the Requested Kernel ID is zero, or equals the combination's."""
    return requested in (ANY_KERNEL, kernel_id)


@dataclass(frozen=True, slots=True)
class PreProcessing:
    """The Entry Point Pre-Processing Indicators of one combination (Book B §3.1.1).

    ``ttq`` is the TTQ copy (9F66) after pre-processing, ``None`` when the combination
    configures none (a kernel that does not use a TTQ).
    """

    status_check_requested: bool = False
    not_allowed: bool = False
    zero_amount: bool = False
    cvm_required_limit_exceeded: bool = False
    floor_limit_exceeded: bool = False
    transaction_limit_exceeded: bool = False
    ttq: bytes | None = None
    reasons: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now()


@dataclass(slots=True, eq=False)
class KernelContext:
    """Everything a kernel gets for one transaction (module docstring).

    ``rng(n)`` gives ``n`` random bytes (a CSPRNG by default: :func:`secrets.token_bytes`;
    a transcript replay injects recorded values). ``clock()`` gives the date and time
    (the transaction's ``when`` is already set from it). ``timer()`` is a monotonic
    clock in seconds for the step timings. ``trace`` receives one line per kernel step,
    already masked.
    """

    reader: Reader
    config: TerminalConfig
    combination: Combination
    aid: bytes
    fci: bytes
    fci_sw: int
    indicators: PreProcessing
    transaction: Transaction
    label: str = ""
    kernel_id: bytes = b""
    rng: Callable[[int], bytes] = secrets.token_bytes
    clock: Callable[[], datetime] = _now
    timer: Callable[[], float] = time.perf_counter
    trace: Callable[[str], None] | None = None
    apdu_count: int = 0
    card_seconds: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    ui: list[UiRequest] = field(default_factory=list)
    started: float | None = None
    #: Where the entry point started for this activation (Book B §3.5: A for a
    #: transaction from pre-processing, B for Autorun or a restart at B, C, D).
    start: Start = Start.A
    #: Whether this activation follows a restart after an outcome (Book B §3.2.1.1).
    restart: bool = False
    #: The online response data the reader passes at a restart after an online
    #: request (issuer authentication data 91, issuer scripts 71/72; Book A §6.2.4).
    online_response: bytes = b""
    #: The time budget of this pass (the entry point's; a new one from the
    #: configuration when the kernel runs alone).
    budget: Budget | None = None
    _un: bytes = b""

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.timer()
        if self.budget is None:
            self.budget = Budget(self.config.timing)

    def __repr__(self) -> str:
        return f"KernelContext({self.aid.hex().upper()}, {self.apdu_count} APDUs)"

    @property
    def ttq(self) -> bytes | None:
        """The TTQ copy of pre-processing (9F66)."""
        return self.indicators.ttq

    @property
    def ca_keys(self) -> CaKeys:
        """The terminal's CA public keys."""
        return self.config.ca_keys

    @property
    def when(self) -> datetime:
        """The transaction's date and time."""
        return self.transaction.when if self.transaction.when is not None else self.clock()

    @property
    def unpredictable_number(self) -> bytes:
        """The 4-byte Unpredictable Number 9F37 of this transaction, drawn once from
        ``rng`` (Book 4 §6.5.6; Bond et al. 2014: it must not be predictable)."""
        if not self._un:
            un = bytes(self.rng(4))
            if len(un) != 4:
                raise ValueError("the random source gave a UN that is not 4 bytes")
            self._un = un
        return self._un

    def terminal_data(self) -> dict[int, bytes]:
        """The terminal-side data objects for DOLs: terminal data, the combination's
        kernel data, the transaction (9F02, 9F03, 5F2A, 9C, 9A, 9F21), the TTQ copy
        (9F66), the UN (9F37), an all-zero TVR (95) and the selected AID (9F06)."""
        out = dict(self.config.terminal_data)
        out.update(self.combination.kernel_data)
        out[Tag.TVR] = bytes(5)
        out[Tag.TERMINAL_AID] = self.aid
        out.update(self.transaction.data(self.config.currency))
        if self.ttq is not None:
            out[Tag.TTQ] = self.ttq
        out[Tag.UNPREDICTABLE_NUMBER] = self.unpredictable_number
        return out

    def note(self, text: str) -> None:
        """A line for the trace (scrubbed of anything that looks like a PAN)."""
        if self.trace is not None:
            self.trace(scrub(text))

    def exchange(self, apdu: CApdu | bytes) -> RApdu:
        """Send one C-APDU through the reader within the pass's time budget
        (:meth:`~terminal.kernel.bounds.Budget.transmit`); count it and time the card.

        Reader errors propagate (the entry point maps them to Try Again), and so does
        :class:`~terminal.kernel.bounds.TransactionTimeoutError` (End Application); an
        answer without status word is a :class:`~emvwire.errors.DecodeError`.
        """
        raw = apdu.encode() if isinstance(apdu, CApdu) else bytes(apdu)
        assert self.budget is not None  # set by __post_init__
        self.apdu_count += 1
        began = self.timer()
        try:
            answer = self.budget.transmit(self.reader, raw)
        finally:
            self.card_seconds += self.timer() - began
        return RApdu.decode(answer)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step into ``timings_ms[name]`` (added to if run twice)."""
        began = self.timer()
        try:
            yield
        finally:
            spent = (self.timer() - began) * 1000.0
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + spent

    def show(
        self, message: UiMessage, status: Status = Status.NA, *, value: int | None = None
    ) -> None:
        """Record a user interface request shown during the kernel's flow (Book A §9)."""
        currency = self.transaction.currency or self.config.data(Tag.TRANSACTION_CURRENCY_CODE)
        self.ui.append(UiRequest(message, status, value=value, currency=currency))

    def result(
        self,
        outcome: Outcome,
        *,
        kernel: str,
        reasons: Iterable[str] = (),
        data: Mapping[int, bytes] | None = None,
        cvm: Cvm = Cvm.NOT_DETERMINED,
        oda: OdaResult = OdaResult.NOT_PERFORMED,
        oda_method: str = "",
        tvr: bytes | None = None,
        field55_tvr: bytes | None = None,
        field55_tags: Iterable[int] = FIELD_55_TAGS,
        pan: str = "",
        psn: bytes | None = None,
        token: bool = False,
        message: UiMessage | None = None,
        receipt: bool = False,
    ) -> TransactionResult:
        """The :class:`TransactionResult` of this transaction (timings, APDUs, UI done).

        ``data`` is the kernel's data store (card and terminal objects): field 55 is
        built from it, with ``tvr`` as 95 unless ``field55_tvr`` says which TVR the
        card's cryptogram covers (kernel 3: the one sent in the PDOL). ``pan`` (digits)
        and ``psn`` (5F34) give the masked PAN and the card reference; ``message``
        overrides the outcome's default message
        (:data:`~terminal.kernel.transaction.DEFAULT_UI`).
        """
        assert self.started is not None
        self.timings_ms["card"] = self.card_seconds * 1000.0
        self.timings_ms["total"] = (self.timer() - self.started) * 1000.0
        return build_result(
            outcome,
            config=self.config,
            transaction=self.transaction,
            ui=self.ui,
            kernel=kernel,
            kernel_id=self.kernel_id or self.combination.kernel_id,
            aid=self.aid,
            label=self.label,
            reasons=tuple(reasons),
            data=dict(data or {}),
            cvm=cvm,
            oda=oda,
            oda_method=oda_method,
            tvr=tvr,
            field55_tvr=field55_tvr,
            field55_tags=tuple(field55_tags),
            pan=pan,
            psn=psn,
            token=token,
            message=message,
            receipt=receipt,
            timings_ms=self.timings_ms,
            apdu_count=self.apdu_count,
        )


@runtime_checkable
class Kernel(Protocol):
    """A contactless kernel (Book A §5.8): an id, a name, and one entry point."""

    @property
    def kernel_id(self) -> bytes:
        """1-byte (01-07) or 3-byte kernel id, as in a combination."""
        ...

    @property
    def name(self) -> str:
        """A name for output: ``kernel 3 (Visa qVSDC)``."""
        ...

    def activate(self, ctx: KernelContext) -> TransactionResult:
        """Run the transaction from the selected application to its outcome."""
        ...


class _Flow(Protocol):
    def run(self) -> TransactionResult: ...


@dataclass(frozen=True, slots=True)
class FlowKernel:
    """A kernel whose transaction is one run of its flow (kernels 2 and 3: ``flow(ctx)
    .run()``), keeping no state between taps."""

    kernel_id: bytes
    name: str
    flow: Callable[[KernelContext], _Flow] = field(repr=False)

    def activate(self, ctx: KernelContext) -> TransactionResult:
        """Run one transaction from the selected application to its outcome."""
        return self.flow(ctx).run()


class KernelRegistry:
    """Kernels by kernel id (Book B §3.4.1: the entry point activates the kernel of
    the selected combination)."""

    def __init__(self, kernels: Iterable[Kernel] = ()) -> None:
        self._kernels: dict[bytes, Kernel] = {}
        for kernel in kernels:
            self.register(kernel)

    def register(self, kernel: Kernel, *, replace: bool = False) -> None:
        """Add ``kernel`` under its id; an id already taken needs ``replace``."""
        kid = check_kernel_id(kernel.kernel_id)
        if kid in self._kernels and not replace:
            raise ValueError(f"kernel {kid.hex().upper()} is already registered")
        self._kernels[kid] = kernel

    def get(self, kernel_id: bytes) -> Kernel | None:
        """The kernel registered for ``kernel_id``, or ``None``."""
        return self._kernels.get(bytes(kernel_id))

    def ids(self) -> list[bytes]:
        """The registered kernel ids, sorted."""
        return sorted(self._kernels)

    def __contains__(self, kernel_id: object) -> bool:
        return isinstance(kernel_id, bytes) and kernel_id in self._kernels

    def __iter__(self) -> Iterator[Kernel]:
        return iter([self._kernels[k] for k in self.ids()])

    def __len__(self) -> int:
        return len(self._kernels)

    def __repr__(self) -> str:
        ids = ", ".join(k.hex().upper() for k in self.ids())
        return f"KernelRegistry({ids})"


def default_registry(modules: Iterable[str] = BUILTIN_KERNEL_MODULES) -> KernelRegistry:
    """A registry with the ``KERNEL`` of each module of ``modules`` that exists."""
    registry = KernelRegistry()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        kernel = getattr(module, "KERNEL", None)
        if kernel is not None:
            registry.register(kernel)
    return registry
