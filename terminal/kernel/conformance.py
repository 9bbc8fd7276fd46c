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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Final

from emvwire import dol, tlv
from emvwire.apdu import get_processing_options
from emvwire.errors import DecodeError
from emvwire.tags import Tag
from terminal.kernel.outcome import CvmOutcome, Outcome, OutcomeParameters, UiRequest
from terminal.kernel.recording import Activation
from terminal.kernel.registry import KernelContext, KernelRegistry, check_kernel_id
from terminal.kernel.transaction import Cvm, TransactionResult

__all__ = [
    "TestKernel",
    "decode_outcome",
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
