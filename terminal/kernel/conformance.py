"""The test kernel: an EMVCo-style kernel that records its activation and returns a
scripted outcome (EMV Book B §3.4; EMVCo entry point testing uses such "test kernels").

A :class:`TestKernel` runs no payment logic. Each activation is recorded
(:class:`~terminal.kernel.recording.Activation`: the selected AID, the FCI and the status
word of the SELECT, the Entry Point Pre-Processing Indicators with the copy of the TTQ,
the start point, the restart flag, the transaction data and the online response data of
a restart) and the kernel then returns an outcome with its full parameter set (Book A
§6.2: start, online response data, CVM, UI request on outcome and on restart, data
record, receipt, alternate interface, field off request, removal time-out).

The outcome comes from one of two scripts:

- ``outcomes`` given to the constructor, one per activation (the last repeats);
- otherwise the card, as EMVCo's lower tester does: the kernel sends GET PROCESSING
  OPTIONS with the data its PDOL (9F38, when the FCI has one) asks for, and the card
  answers template ``77`` holding the Outcome Parameter Set ``DF8129`` (8 bytes, Book A
  Table 6.1), then one User Interface Request Data ``DF8116`` (22 bytes, Book A Table
  9.1) for each of "UI request on outcome" and "UI request on restart" that DF8129 byte
  5 says is present, in that order. :mod:`card.scripted` writes such answers.

A card answer that is not that (another status word, a malformed template, an unknown
outcome) ends the transaction: End Application with the reason.

A conformance case (:class:`ConformanceCase`, :func:`load_case`) is a terminal
configuration, a scripted card and one or more transactions, each with the record it
must give (:func:`mismatches` compares; :func:`run_case` runs them one after the
other on the same card and reader, as a test lab presents one card to a series of
transactions). Case file, JSON::

    {
      "name": "...", "book_b": "§3.5",
      "config": {...} or "visa-config.json",        (a file beside the case)
      "card": {...} or "card.json",                 (a scripted card profile)
      "transaction": {"amount": 1000, "type": "purchase", "other_amount": 0,
                      "start": "A", "autorun": false, "online_response": "91..",
                      "timeout": 1.0},
      "expected": {...}                             (the record, in part)
    }

or ``"transactions": [{...transaction..., "expected": {...}}, ...]`` for a sequence.
``autorun`` starts at B with the configuration's Autorun transaction (Book B §3.1,
§3.2.1.1) instead of ``amount`` and ``type``. In ``expected``, objects are compared on
the keys given, lists item by item and whole, and ``{"at_least": n}`` /
``{"at_most": n}`` bound a measured number (how long the field was off).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from emvwire import dol, tlv
from emvwire.apdu import get_processing_options
from emvwire.errors import DecodeError
from emvwire.tags import Tag
from terminal.kernel.config import TRANSACTION_TYPES, ConfigError, TerminalConfig
from terminal.kernel.entry_point.pre_processing import autorun_transaction
from terminal.kernel.outcome import CvmOutcome, Outcome, OutcomeParameters, Start, UiRequest
from terminal.kernel.recording import Activation, EntryPointRecord
from terminal.kernel.registry import KernelContext, KernelRegistry, check_kernel_id
from terminal.kernel.transaction import Cvm, Transaction, TransactionResult
from terminal.readers.base import Reader

__all__ = [
    "CaseStep",
    "ConformanceCase",
    "TestKernel",
    "decode_outcome",
    "load_case",
    "mismatches",
    "run_case",
    "scripted_registry",
]

_CVM: Final = {
    CvmOutcome.NO_CVM: Cvm.NO_CVM,
    CvmOutcome.SIGNATURE: Cvm.SIGNATURE,
    CvmOutcome.ONLINE_PIN: Cvm.ONLINE_PIN,
    CvmOutcome.CONFIRMATION_CODE_VERIFIED: Cvm.CDCVM,
    CvmOutcome.NA: Cvm.NOT_DETERMINED,
}


def decode_outcome(body: bytes) -> OutcomeParameters:
    """The scripted outcome of a card answer body: template 77 with DF8129 and the
    DF8116 objects its byte 5 announces (module docstring). ``ValueError`` (or
    :class:`~emvwire.errors.DecodeError`) when it is not that."""
    top = tlv.decode_one(body, Tag.RESPONSE_FORMAT_2)
    ops = next((c.value for c in top.children if c.tag == Tag.OUTCOME_PARAMETER_SET), None)
    if ops is None:
        raise ValueError("no outcome parameter set (DF8129) in the answer")
    params = OutcomeParameters.decode(ops)
    on_outcome, on_restart = OutcomeParameters.ui_flags(ops)
    ui = [c.value for c in top.children if c.tag == Tag.UI_REQUEST_DATA]
    if len(ui) != on_outcome + on_restart:
        raise ValueError(
            f"DF8129 announces {on_outcome + on_restart} UI requests, the answer holds {len(ui)}"
        )
    shown = UiRequest.decode(ui.pop(0)) if on_outcome else None
    again = UiRequest.decode(ui.pop(0)) if on_restart else None
    return replace(params, ui_on_outcome=shown, ui_on_restart=again)


class TestKernel:
    """A test kernel for ``kernel_id`` (module docstring)."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        kernel_id: bytes,
        *,
        outcomes: Iterable[OutcomeParameters] = (),
        name: str | None = None,
    ) -> None:
        self._kernel_id = check_kernel_id(kernel_id)
        self._name = name or f"test kernel {self._kernel_id.hex().upper()}"
        self.outcomes: list[OutcomeParameters] = list(outcomes)
        self.activations: list[Activation] = []

    @property
    def kernel_id(self) -> bytes:
        """The id it is registered under."""
        return self._kernel_id

    @property
    def name(self) -> str:
        """``test kernel 03``."""
        return self._name

    def __repr__(self) -> str:
        return f"TestKernel({self._kernel_id.hex().upper()}, {len(self.activations)} activations)"

    def _scripted(self) -> OutcomeParameters | None:
        if not self.outcomes:
            return None
        index = min(len(self.activations) - 1, len(self.outcomes) - 1)
        return self.outcomes[index]

    def _from_card(self, ctx: KernelContext) -> tuple[OutcomeParameters | None, str]:
        pdol = b""
        try:
            top = tlv.decode_one(ctx.fci, Tag.FCI_TEMPLATE) if ctx.fci else None
        except DecodeError:
            top = None
        if top is not None:
            found = tlv.find(top.children, Tag.PDOL)
            pdol = found.value if found is not None else b""
        try:
            data = dol.build(pdol, ctx.terminal_data()) if pdol else b""
        except (DecodeError, ValueError) as exc:
            return None, f"the PDOL cannot be filled: {exc}"
        answer = ctx.exchange(get_processing_options(data))
        if answer.sw != 0x9000:
            return None, f"GET PROCESSING OPTIONS answered {answer.sw:04X}"
        try:
            return decode_outcome(answer.data), "outcome scripted by the card"
        except (DecodeError, ValueError) as exc:
            return None, f"the card's scripted outcome is malformed: {exc}"

    def activate(self, ctx: KernelContext) -> TransactionResult:
        """Record the activation, return the scripted outcome (module docstring)."""
        self.activations.append(Activation.from_context(ctx, self._name))
        ctx.note(f"{self._name}: activated for {ctx.aid.hex().upper()}, start {ctx.start.name}")
        params = self._scripted()
        reason = "outcome scripted by the test"
        if params is None:
            params, reason = self._from_card(ctx)
        if params is None:
            return ctx.result(Outcome.END_APPLICATION, kernel=self._name, reasons=(reason,))
        result = ctx.result(
            params.outcome,
            kernel=self._name,
            reasons=(reason,),
            cvm=_CVM[params.cvm],
            receipt=params.receipt,
        )
        result.parameters = replace(params, reasons=(reason,))
        shown = [u for u in (params.ui_on_outcome, params.ui_on_restart) if u is not None]
        result.ui = list(ctx.ui) + shown
        return result


def scripted_registry(
    kernel_ids: Sequence[bytes], *, base: KernelRegistry | None = None
) -> KernelRegistry:
    """A registry with the kernels of ``base`` and a :class:`TestKernel` for each of
    ``kernel_ids`` that ``base`` does not hold."""
    registry = KernelRegistry(list(base) if base is not None else [])
    for kid in kernel_ids:
        if bytes(kid) not in registry:
            registry.register(TestKernel(bytes(kid)))
    return registry


# --- conformance cases -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One transaction of a case and the record it must give (module docstring)."""

    amount: int = 1000
    other_amount: int = 0
    type: str = "purchase"
    start: Start = Start.A
    autorun: bool = False
    online_response: bytes | None = None
    timeout: float | None = None
    expected: Mapping[str, Any] = field(default_factory=dict)

    def transaction(self, config: TerminalConfig) -> tuple[Transaction, Start]:
        """The transaction and its start point: with ``autorun``, the configuration's
        Autorun transaction at B (Book B §3.1, §3.2.1.1; :class:`ConfigError` when it
        has none)."""
        if self.autorun:
            configured = autorun_transaction(config)
            if configured is None:
                raise ConfigError("autorun", "the case runs Autorun: configure its transaction")
            return configured, Start.B
        made = Transaction(self.amount, self.other_amount, type=TRANSACTION_TYPES[self.type])
        return made, self.start


@dataclass(frozen=True, slots=True)
class ConformanceCase:
    """A configuration, a scripted card (both JSON data) and the transactions run on
    them in order (module docstring); ``base`` the folder of the case file."""

    name: str
    config: Mapping[str, Any]
    card: Mapping[str, Any]
    steps: tuple[CaseStep, ...]
    base: Path | None = None


_STEP_KEYS: Final = {
    "amount", "other_amount", "type", "start", "autorun", "online_response", "timeout",
    "expected",
}  # fmt: skip


def _step(obj: Any, where: str) -> CaseStep:
    if not isinstance(obj, dict) or set(obj) - _STEP_KEYS:
        raise ValueError(f"{where}: expected an object with keys {sorted(_STEP_KEYS)}")
    response = obj.get("online_response")
    if obj.get("type", "purchase") not in TRANSACTION_TYPES:
        raise ValueError(f"{where}: type: one of {', '.join(TRANSACTION_TYPES)}")
    try:
        return CaseStep(
            amount=int(obj.get("amount", 1000)),
            other_amount=int(obj.get("other_amount", 0)),
            type=str(obj.get("type", "purchase")),
            start=Start[obj.get("start", "A")],
            autorun=bool(obj.get("autorun", False)),
            online_response=None if response is None else bytes.fromhex(response),
            timeout=None if obj.get("timeout") is None else float(obj["timeout"]),
            expected=dict(obj.get("expected", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _json(file: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not JSON: line {exc.lineno}: {exc.msg}") from None


def load_case(path: str | Path) -> ConformanceCase:
    """A case file (module docstring); ``OSError`` when it cannot be read,
    ``ValueError`` naming the place of a problem (a file it names that cannot be read
    among them)."""
    file = Path(path)
    doc = _json(file, file.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{file}: a case is a JSON object")

    def part(key: str) -> dict[str, Any]:
        value = doc.get(key)
        if isinstance(value, str):
            beside = file.parent / value
            try:
                value = _json(beside, beside.read_text())
            except OSError as exc:
                raise ValueError(f"{file}: {key}: cannot read {beside}: {exc.strerror}") from None
        if not isinstance(value, dict):
            raise ValueError(f"{file}: {key}: expected an object or a file name beside it")
        return value

    if "transactions" in doc:
        items = doc["transactions"]
        if not isinstance(items, list) or not items:
            raise ValueError(f"{file}: transactions: expected a non-empty list")
        steps = tuple(_step(t, f"{file}: transactions[{i}]") for i, t in enumerate(items))
    else:
        one = {**doc.get("transaction", {}), "expected": doc.get("expected", {})}
        steps = (_step(one, f"{file}: transaction"),)
    name = str(doc.get("name", file.stem))
    return ConformanceCase(name, part("config"), part("card"), steps, file.parent)


def _bounds(expected: Mapping[str, Any]) -> bool:
    return bool(expected) and set(expected) <= {"at_least", "at_most"}


def mismatches(actual: Any, expected: Any, path: str = "record") -> list[str]:
    """Where ``actual`` (a record's JSON) differs from ``expected``: objects on the keys
    given, lists item by item and whole, ``{"at_least": n, "at_most": m}`` a number in
    those bounds; one line per difference (empty: it matches)."""
    problems: list[str] = []
    if isinstance(expected, dict) and _bounds(expected):
        low, high = expected.get("at_least"), expected.get("at_most")
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            problems.append(f"{path}: expected a number, got {actual!r}")
        elif (low is not None and actual < low) or (high is not None and actual > high):
            problems.append(f"{path}: expected {expected!r}, got {actual!r}")
    elif isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += mismatches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            problems += mismatches(a, e, f"{path}[{i}]")
    elif actual != expected:
        problems.append(f"{path}: expected {expected!r}, got {actual!r}")
    return problems


def run_case(
    case: ConformanceCase,
    config: TerminalConfig,
    reader: Reader,
    process: Callable[..., EntryPointRecord],
) -> list[tuple[EntryPointRecord, list[str]]]:
    """Run the transactions of ``case`` one after the other on ``reader`` (which holds
    the case's card) with ``process`` (:meth:`EntryPoint.process
    <terminal.kernel.entry_point.EntryPoint.process>`) and compare each record with its
    expected one: ``(record, mismatches)`` per transaction."""
    out = []
    for step in case.steps:
        transaction, start = step.transaction(config)
        response = step.online_response

        def online(_result: TransactionResult, answer: bytes | None = response) -> bytes | None:
            return answer

        record = process(reader, transaction, start=start, online=online, timeout=step.timeout)
        out.append((record, mismatches(record.to_json(), step.expected)))
    return out
