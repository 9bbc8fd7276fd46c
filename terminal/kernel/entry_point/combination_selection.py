"""Start C, combination selection (EMV Book B §3.3): the PPSE, the candidates, the AID.

SELECT ``2PAY.SYS.DDF01`` (§3.3.2.2, :func:`select_ppse`); a status other than 9000
(6A82, 6283...) or an FCI without directory entries ends the transaction (End
Application, "Insert, swipe or try another card", §3.3.2.3-§3.3.2.4, §3.3.2.7). Padding
and unknown data objects in the FCI are skipped (:func:`parse_ppse`). Each directory
entry (61: 4F ADF name, 50 label, 87 priority, 9F2A kernel identifier, 9F29 extended
selection) is matched against every allowed combination (§3.3.2.5,
:func:`build_candidates`): the ADF name equals the combination's AID or begins with it
(partial matching), and the Requested Kernel ID
(:func:`~terminal.kernel.registry.kernel_request`: absent or empty 9F2A the RID's
default, one byte for an international kernel, three for a domestic one, a domestic
9F2A shorter than 3 bytes skips the entry, zero accepts any kernel) accepts the
combination's kernel, which must be registered. Candidates are ordered by priority (87
bits 4-1; 1 first; absent, empty or 0 last), then in directory order (§3.3.3.2).

Final combination selection (§3.3.3): the first candidate is selected with its extended
selection appended when the combination supports it (§3.3.3.3,
:func:`select_application`); an answer other than 9000, or an FCI that names another
application, removes it and the next is tried (§3.3.3.5). A Visa AID selected for
kernel 3 whose PDOL does not ask for the TTQ goes to kernel 1 when one is registered,
else the candidate is removed (§3.3.3.6, :func:`kernel_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from emvwire import dol, tlv
from emvwire.apdu import PPSE, select
from emvwire.errors import DecodeError, DolError
from emvwire.tags import Tag
from terminal.kernel.config import Combination
from terminal.kernel.entry_point.candidates import (
    Candidate,
    DirectoryEntry,
    aid_matches,
    parse_ppse,
)
from terminal.kernel.entry_point.session import PassState, Session
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import (
    KernelRegistry,
    PreProcessing,
    kernel_request,
    kernel_supported,
)
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import Reader

__all__ = [
    "MAX_SELECTIONS",
    "VISA_RID",
    "SelectAnswer",
    "aid_matches",
    "build_candidates",
    "kernel_for",
    "parse_ppse",
    "select_application",
    "select_ppse",
]

#: Most candidates tried in one transaction (each a SELECT; a card listing a hundred
#: applications must not keep the reader busy).
MAX_SELECTIONS: Final = 16
#: The Visa RID, for the kernel 3 / kernel 1 rule of Book B §3.3.3.6.
VISA_RID: Final = bytes.fromhex("A000000003")
#: SELECT 2PAY.SYS.DDF01 (Book B §3.3.2.2), encoded once.
_SELECT_PPSE: Final = select(PPSE).encode()


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


def _fci_fields(fci: bytes) -> tuple[bytes | None, bytes | None]:
    """The DF name (84) and the PDOL (9F38 in A5) of an FCI, decoded once; data after
    the FCI template are ignored (:func:`emvwire.tlv.decode_leading`)."""
    try:
        top = tlv.decode_leading(fci, Tag.FCI_TEMPLATE)
    except DecodeError:
        return None, None
    name = pdol = None
    for child in top.children:
        if child.tag == Tag.DF_NAME and name is None:
            name = child.value
        elif child.tag == Tag.FCI_PROPRIETARY_TEMPLATE:
            pdol = next((c.value for c in child.children if c.tag == Tag.PDOL), pdol)
    return name, pdol


def _asks_ttq(pdol: bytes | None) -> bool:
    """Whether a PDOL asks for the TTQ (Book B §3.3.3.6); a malformed PDOL asks for
    nothing here (the kernel refuses it when it builds the GPO)."""
    if not pdol:
        return False
    try:
        return any(e.tag == Tag.TTQ for e in dol.parse(pdol))
    except (DecodeError, DolError):
        return False


def select_ppse(
    session: Session, reader: Reader, transaction: Transaction, state: PassState
) -> TransactionResult | None:
    """Book B §3.3.2: SELECT PPSE and the candidate list (``state.candidates``); the
    outcome when there is none (§3.3.2.3, §3.3.2.4, §3.3.2.7), else ``None``."""
    began = session.timer()
    answer = session.transmit(reader, _SELECT_PPSE)
    session.timings_ms["select_ppse"] = (session.timer() - began) * 1000.0
    state.candidates = []
    if len(answer) < 2:
        return session.finish(
            transaction, Outcome.END_APPLICATION, "PPSE answer without status word"
        )
    sw = int.from_bytes(answer[-2:], "big")
    if sw != 0x9000:
        return session.finish(
            transaction, Outcome.END_APPLICATION, f"SELECT PPSE answered {sw:04X}"
        )
    entries = parse_ppse(answer[:-2])
    if not entries:
        return session.finish(transaction, Outcome.END_APPLICATION, "the PPSE lists no application")
    state.candidates = build_candidates(entries, state.processed, session.registry)
    if session.trace is not None:
        session.note(f"entry point: candidates {state.candidates!r}")
    return None


class SelectAnswer(NamedTuple):
    """The card's answer to the SELECT of a candidate (Book B §3.3.3.3-§3.3.3.5):
    the DF name (84) and PDOL (9F38) of its FCI, the FCI, the status word, and why the
    candidate cannot be kept (``""`` when it can)."""

    dfname: bytes | None
    pdol: bytes | None
    fci: bytes
    sw: int
    problem: str


def select_application(session: Session, reader: Reader, cand: Candidate) -> SelectAnswer:
    """Book B §3.3.3.3-§3.3.3.5: SELECT the candidate's ADF name (with its extended
    selection, :attr:`Candidate.select_name`); an answer other than 9000 or an FCI that
    names another application is a problem (the candidate is removed)."""
    began = session.timer()
    answer = session.transmit(reader, select(cand.select_name).encode())
    timings = session.timings_ms
    timings["select_aid"] = timings.get("select_aid", 0.0) + (session.timer() - began) * 1000.0
    fci, sw = answer[:-2], int.from_bytes(answer[-2:], "big")
    dfname, pdol = _fci_fields(fci) if len(answer) >= 2 else (None, None)
    problem = ""
    if len(answer) < 2:
        problem = "no status word"
    elif sw != 0x9000:
        problem = f"SELECT answered {sw:04X}"
    elif dfname is None or not dfname.startswith(cand.combination.aid):
        problem = "the FCI names no or another application"
    return SelectAnswer(dfname, pdol, fci, sw, problem)


def kernel_for(session: Session, cand: Candidate, pdol: bytes | None) -> bytes | None:
    """Book B §3.3.3.6: a Visa AID selected for kernel 3 whose PDOL is absent or asks
    no TTQ goes to kernel 1 when it is registered; else the candidate is removed
    (``None``), the last one included: with no candidate left the transaction ends
    (End Application) before any GPO, so no mag-stripe mode is ever offered."""
    if cand.kernel_id != b"\x03" or cand.entry.adf_name[:5] != VISA_RID:
        return cand.kernel_id
    if _asks_ttq(pdol):
        return cand.kernel_id
    if b"\x01" in session.registry:
        session.note("entry point: Visa AID without TTQ in the PDOL: kernel 1 (§3.3.3.6)")
        return b"\x01"
    return None
