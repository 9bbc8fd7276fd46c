"""Kernel 4: American Express Expresspay in EMV mode (EMV Contactless Book C-4).

Public sources: Book C-4 is published by EMVCo; what this module relies on of it is
the public part: kernel id 04 for the RID A000000025 (Book B Table 3-6), the Enhanced
Contactless Reader Capabilities 9F6E (Book C-4 v2.10 §4.3.4 Table 4-4, as Leon
Lynch's public emv-utils decoder transcribes it; :class:`emvwire.qualifiers.ECRC`),
and the EMV-mode sequence Expresspay shares with contact EMV (Book 3: GET PROCESSING
OPTIONS, READ RECORD, processing restrictions, CVM list, terminal risk management and
action analysis, GENERATE AC; Book 2 §6.6: CDA). Where Book C-4's own rules are not
publicly described (its exact CVM and ODA variants, mobile CVM, delayed
authorisation, "try another interface after a decline"), this kernel applies Book 3
and Book 2 as kernel 2 does, and the report of the change says so.

The flow is kernel 2's (:mod:`terminal.kernel.k2.flow`, each step documented there),
with these differences:

1. **9F6E.** Before GPO the kernel builds the Enhanced Contactless Reader
   Capabilities from the combination's kernel data (``9F6E``, default
   :data:`DEFAULT_READER_CAPABILITIES`: partial online mode, mobile, online PIN,
   signature, mobile CVM, C-4 version 2.7) and sets, per transaction, byte 3 bit 8
   "reader is offline only" (a terminal type that cannot go online, Book 4 Annex A1)
   and byte 3 bit 7 "CVM required" (the entry point's CVM required limit, Book B
   §3.1.1). The card's PDOL asks for it (and for the Terminal Type 9F35).
2. **No mag-stripe mode, no relay resistance.** Kernel 4 has no EXCHANGE RELAY
   RESISTANCE DATA, and the AIP's byte 2 is not read as kernel 2's "EMV mode"; a
   card that answers GPO without an AFL ends the application (kernel 2's check).
3. **Brand.** The PAN must be an American Express PAN (IIN 34 or 37) behind the RID
   A000000025 (Basin et al., card brand mixup: declined).
4. **ODA.** CDA as kernel 2 does it, requested for a TC or ARQC when the AIP (byte 1
   bit 1) and Terminal Capabilities (byte 3 bit 4) offer it; a failed CDA declines.

Outcomes: TC Approved (offline), ARQC Online Request, AAC Declined.
"""

from __future__ import annotations

from typing import ClassVar, Final

from emvwire.qualifiers import ECRC, Bit
from emvwire.tags import Tag
from terminal.kernel.k2.flow import _Flow as _K2Flow
from terminal.kernel.k2.rules import is_online_capable
from terminal.kernel.registry import FlowKernel, KernelContext

__all__ = ["DEFAULT_READER_CAPABILITIES", "KERNEL", "NAME", "reader_capabilities"]

NAME: Final = "kernel 4 (American Express Expresspay)"

#: Enhanced Contactless Reader Capabilities when the combination configures none:
#: byte 1 partial online mode and mobile supported; byte 2 mobile CVM, online PIN and
#: signature; byte 3 set per transaction; byte 4 C-4 kernel version 2.7 (011b).
DEFAULT_READER_CAPABILITIES: Final = bytes.fromhex("18E00003")


def _set(value: bytearray, bit: Bit, on: bool) -> None:
    if on:
        value[bit.byte] |= bit.mask
    else:
        value[bit.byte] &= ~bit.mask & 0xFF


def reader_capabilities(
    configured: bytes | None, *, cvm_required: bool, offline_only: bool
) -> bytes:
    """9F6E for one transaction (module docstring, step 1): the configured value (4
    bytes, else :data:`DEFAULT_READER_CAPABILITIES`) with byte 3 bits 8-7 set from the
    transaction; the legacy full online mode bit (byte 1 bit 6) always clear."""
    value = bytearray(
        configured if configured and len(configured) == 4 else DEFAULT_READER_CAPABILITIES
    )
    _set(value, ECRC.FULL_ONLINE_MODE, False)
    _set(value, ECRC.OFFLINE_ONLY, offline_only)
    _set(value, ECRC.CVM_REQUIRED, cvm_required)
    return bytes(value)


class _Flow(_K2Flow):
    """One kernel 4 transaction: kernel 2's flow with the differences above."""

    __slots__ = ()
    name: ClassVar[str] = NAME
    short: ClassVar[str] = "kernel 4"

    def __init__(self, ctx: KernelContext) -> None:
        super().__init__(ctx)
        self.db[Tag.ENHANCED_CONTACTLESS_READER_CAPABILITIES] = reader_capabilities(
            ctx.combination.kernel_data.get(Tag.ENHANCED_CONTACTLESS_READER_CAPABILITIES),
            cvm_required=ctx.indicators.cvm_required_limit_exceeded,
            offline_only=not is_online_capable(self.db.get(Tag.TERMINAL_TYPE, b"")),
        )

    def _check_mode_and_limit(self) -> None:
        """Kernel 4 reads no EMV-mode bit in the AIP (module docstring, step 2)."""

    def _relay_resistance_step(self) -> None:
        """Kernel 4 has no relay resistance, and no TVR bits for it (step 2)."""


#: American Express kernel 4 (module docstring), as the registry loads it
#: (:data:`terminal.kernel.registry.BUILTIN_KERNEL_MODULES`).
KERNEL: Final = FlowKernel(b"\x04", NAME, _Flow)
