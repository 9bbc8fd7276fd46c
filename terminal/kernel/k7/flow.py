"""Kernel 7: UnionPay QuickPass, qUICS (EMV Contactless Book C-7).

Public sources: Book C-7 is published by EMVCo; what this module relies on of it is
the public part: kernel id 07 for the RID A000000333 (Book B Table 3-6), and that
qUICS, like qPBOC before it, runs the quick flow of Visa's qVSDC: the Terminal
Transaction Qualifiers 9F66 in the PDOL (with the entry point's online-cryptogram and
CVM-required bits, Book B §3.1.1), the card's decision and cryptogram in the GPO
answer, the Card Transaction Qualifiers 9F6C, fDDA over 9F37 || 9F02 || 5F2A || 9F69
(card authentication related data, version 01) with the Book 2 certificates, and READ
RECORD only for offline data authentication. Public tag dictionaries of UnionPay
terminals and cards give these data objects the meanings of Book C-3 Annex A. Where
Book C-7's own rules differ and are not publicly described (its "electronic cash"
balance 9F79, its contact-chip fallback), kernel 7 does what kernel 3 does, with
kernel 3's defences, and the report of the change says so.

So the flow is :mod:`terminal.kernel.k3.flow` step for step (documented there):
FCI and PDOL (a PDOL without the TTQ is refused: no mag-stripe mode), GET PROCESSING
OPTIONS, READ RECORD only when an offline approval or a consumer device CVM claim needs
the signature, the brand check (a UnionPay PAN, IIN 62 or 81, behind A000000333:
:mod:`terminal.kernel.brand`), expiry, fDDA (a CTQ that differs from the signed copy
in 9F69 is declined, whichever of its two bytes changed), the CVM
(:func:`terminal.kernel.k3.rules.visa_cvm`), then Approved (TC with fDDA), Online
Request (ARQC) or Declined (AAC).

The card side's cryptogram version (TDES 01 or the SM4 suite 04, per card range) does
not change the terminal: the issuer verifies the cryptogram. The SM suite's offline data
authentication does: a card whose CA public key index (8F) names an SM2 CA key in the
terminal's store (the test CA's A000000333/E8) is verified with SM2 and SM3, PBOC 3.0's
variant (SM2-signed issuer and ICC certificates and dynamic signature, no message
recovery; the field layout is tapstack's where the public text is silent:
:mod:`emvwire.oda.sm`), and the result names it (``fDDA (SM2)``).
"""

from __future__ import annotations

from typing import ClassVar, Final

from terminal.kernel.k3.flow import _Flow as _K3Flow
from terminal.kernel.registry import FlowKernel

__all__ = ["KERNEL", "NAME"]

NAME: Final = "kernel 7 (UnionPay QuickPass)"


class _Flow(_K3Flow):
    """One kernel 7 transaction: kernel 3's flow under kernel 7's name."""

    name: ClassVar[str] = NAME


#: UnionPay kernel 7 (module docstring), as the registry loads it
#: (:data:`terminal.kernel.registry.BUILTIN_KERNEL_MODULES`).
KERNEL: Final = FlowKernel(b"\x07", NAME, _Flow)
