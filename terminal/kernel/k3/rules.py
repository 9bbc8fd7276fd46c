"""The decisions of Visa kernel 3, as pure functions (EMV Book C-3), hardened.

Everything here is bytes and flags in, a decision out, with no card and no clock, so
each rule is tested on its own and :mod:`terminal.kernel.k3.flow` only sequences them:

- :func:`cryptogram_type`: the cryptogram the card answered, from the CID (9F27) or,
  without one, from the CVR in the Issuer Application Data (Book C-3 §5.4.3.1);
- :func:`visa_cvm`: cardholder verification (§5.7), below.

:func:`visa_cvm` chooses the CVM from the reader's TTQ (9F66: online PIN supported byte
1 bit 3, signature supported byte 1 bit 2, CVM required byte 2 bit 7) and the card's
CTQ (9F6C: online PIN required byte 1 bit 8, signature required byte 1 bit 7, consumer
device CVM performed byte 2 bit 8):

1. no CTQ: with a CVM required, signature if the reader supports it, else online PIN
   for an online cryptogram, else decline; without, no CVM (§5.7.1.1);
2. online PIN required by the card and supported by the reader: online PIN (the
   transaction must go online);
3. consumer device CVM performed: accepted only when ``cdcvm_verified`` -- the CTQ
   the terminal acts on equals the copy inside the card authentication related data
   (9F69) that a verified fDDA signature covers. Book C-3 §5.7.1.2 accepts an unsigned
   claim with an ARQC, which is how Basin, Sasse and Toro-Pozo ("The EMV Standard:
   Break, Fix, Verify", S&P 2021) skip the PIN of a Visa card. An unverified claim on a
   transaction that needs no CVM changes nothing (no CVM); on one that needs a CVM the
   combination's policy applies: ``decline``, or ``require_cvm`` (the claim is ignored and
   the reader asks for online PIN or a signature as in step 1);
4. signature required by the card and supported by the reader: signature;
5. a CVM required and none agreed: decline (§5.7.1.3); otherwise no CVM.

:data:`CVM_RESULTS` gives the CVM Results (9F34, Book 3 Annex C3) reported for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from emvwire.apdu import AAC, AC_NAMES, ARQC, TC
from emvwire.qualifiers import CTQ, TTQ, is_set
from terminal.kernel.transaction import Cvm

__all__ = [
    "CVM_RESULTS",
    "CvmDecision",
    "cryptogram_type",
    "visa_cvm",
]

#: The AC type of the CVR's bits 6-5 (Visa IAD formats; Book C-3 Annex A, 9F10).
_CVR_AC_TYPES: Final[Mapping[int, int]] = {0: AAC, 1: TC, 2: ARQC}


def cryptogram_type(cid: bytes | None, iad: bytes) -> int | None:
    """The cryptogram type: 9F27 bits 8-7, or without a CID the AC type of the CVR in
    the IAD (Visa IAD formats 0/1/3: CVR data byte 1 at IAD byte 5; format 2 (IAD
    byte 1 ``1F``): at IAD byte 4; bits 6-5: 00 AAC, 01 TC, 10 ARQC). ``None`` when
    neither tells (an RFU type, or an IAD too short)."""
    if cid:
        kind = cid[0] & 0xC0
        return kind if kind in AC_NAMES else None
    index = 3 if iad[:1] == b"\x1f" else 4
    if len(iad) <= index:
        return None
    return _CVR_AC_TYPES.get((iad[index] >> 4) & 0x03)


#: CVM Results 9F34 (Book 3 Annex C3: method, condition, result) per CVM. Online PIN
#: and signature are "unknown" until the issuer or the clerk says; a consumer device
#: CVM is reported as kernel 2 does (01 00 02: verified by the ICC, successful).
CVM_RESULTS: Final[Mapping[Cvm, bytes]] = {
    Cvm.NO_CVM: bytes.fromhex("1F0002"),
    Cvm.SIGNATURE: bytes.fromhex("1E0000"),
    Cvm.ONLINE_PIN: bytes.fromhex("020000"),
    Cvm.CDCVM: bytes.fromhex("010002"),
    Cvm.NOT_DETERMINED: bytes.fromhex("3F0001"),
}


@dataclass(frozen=True, slots=True)
class CvmDecision:
    """The CVM chosen; ``decline`` with a ``reason`` when none is acceptable; ``online``
    when the CVM needs the issuer (online PIN)."""

    cvm: Cvm
    decline: bool = False
    online: bool = False
    reason: str = ""


def _reader_cvm(ttq: bytes, online_cryptogram: bool, why: str) -> CvmDecision:
    """The reader's own CVM when the card's is not usable (step 1 and policy)."""
    if is_set(ttq, TTQ.ONLINE_PIN) and online_cryptogram and not is_set(ttq, TTQ.OFFLINE_ONLY):
        return CvmDecision(Cvm.ONLINE_PIN, online=True, reason=why)
    if is_set(ttq, TTQ.SIGNATURE):
        return CvmDecision(Cvm.SIGNATURE, reason=why)
    return CvmDecision(Cvm.NO_CVM, decline=True, reason=f"{why}; the reader supports no other CVM")


def visa_cvm(
    *,
    ttq: bytes,
    ctq: bytes | None,
    online_cryptogram: bool,
    cdcvm_verified: bool,
    policy: str = "decline",
) -> CvmDecision:
    """The CVM of a qVSDC transaction (module docstring). ``ttq`` is the TTQ sent (4
    bytes), ``ctq`` the card's 9F6C (2 bytes) or ``None``, ``online_cryptogram`` whether
    the transaction goes online (ARQC)."""
    required = is_set(ttq, TTQ.CVM_REQUIRED)
    if ctq is None:
        if not required:
            return CvmDecision(Cvm.NO_CVM)
        if is_set(ttq, TTQ.SIGNATURE):
            return CvmDecision(Cvm.SIGNATURE)
        return _reader_cvm(ttq, online_cryptogram, "a CVM is required and the card gave no CTQ")
    if is_set(ctq, CTQ.ONLINE_PIN_REQUIRED) and is_set(ttq, TTQ.ONLINE_PIN):
        return CvmDecision(Cvm.ONLINE_PIN, online=True)
    if is_set(ctq, CTQ.CDCVM_PERFORMED):
        if cdcvm_verified:
            return CvmDecision(Cvm.CDCVM)
        if required:
            why = "the CTQ claims a consumer device CVM that no verified fDDA signature covers"
            if policy != "require_cvm":
                return CvmDecision(Cvm.NO_CVM, decline=True, reason=why)
            return _reader_cvm(ttq, online_cryptogram, why)
    if is_set(ctq, CTQ.SIGNATURE_REQUIRED) and is_set(ttq, TTQ.SIGNATURE):
        return CvmDecision(Cvm.SIGNATURE)
    if required:
        return CvmDecision(
            Cvm.NO_CVM,
            decline=True,
            reason="a CVM is required and the card asked for none the reader supports",
        )
    return CvmDecision(Cvm.NO_CVM)
