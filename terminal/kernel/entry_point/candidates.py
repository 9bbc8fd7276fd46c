"""The candidates of combination selection (EMV Book B §3.3.2): the directory entries
of the PPSE (:func:`parse_ppse`, :func:`aid_matches`), and the entries of the candidate
list that pair one with a configured combination.

It imports no other phase of the entry point: ``terminal read`` parses the PPSE with
it and loads nothing of the transaction (:mod:`terminal.kernel.reading`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emvwire import tlv
from emvwire.errors import DecodeError
from emvwire.tags import Tag

if TYPE_CHECKING:
    from terminal.kernel.config import Combination
    from terminal.kernel.registry import PreProcessing

__all__ = ["Candidate", "DirectoryEntry", "aid_matches", "parse_ppse"]


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


def _label(value: bytes | None) -> str:
    if not value:
        return ""
    text = value.decode("latin-1")
    return "".join(ch for ch in text if ch.isprintable()).strip()


def _child(node: tlv.Tlv, tag: int) -> tlv.Tlv | None:
    return next((c for c in node.children if c.tag == tag), None)


def parse_ppse(fci: bytes) -> list[DirectoryEntry]:
    """The directory entries of a PPSE FCI ``6F {84, A5 {BF0C {61...}}}``.

    A malformed FCI gives no entries (Book B §3.3.2.4); an entry without a valid ADF
    name (4F, 5 to 16 bytes) is left out. Data after the FCI template are ignored, not
    a reason to drop the entries (:func:`emvwire.tlv.decode_leading`; Book B §3.3.2.4
    names what makes the answer unusable, and trailing data is not among it).
    """
    try:
        top = tlv.decode_leading(fci, Tag.FCI_TEMPLATE)
    except DecodeError:
        return []
    proprietary = _child(top, Tag.FCI_PROPRIETARY_TEMPLATE)
    if proprietary is None:
        return []
    discretionary = _child(proprietary, Tag.FCI_ISSUER_DISCRETIONARY_DATA)
    if discretionary is None:
        return []
    entry_tag = Tag.APPLICATION_TEMPLATE
    out: list[DirectoryEntry] = []
    for order, entry in enumerate(c for c in discretionary.children if c.tag == entry_tag):
        fields: dict[int, bytes] = {}
        for child in entry.children:
            fields.setdefault(child.tag, child.value)
        name = fields.get(Tag.AID)
        if name is None or not 5 <= len(name) <= 16:
            continue
        prio = fields.get(Tag.APPLICATION_PRIORITY, b"")
        out.append(
            DirectoryEntry(
                adf_name=name,
                label=_label(fields.get(Tag.APPLICATION_LABEL)),
                priority=prio[0] & 0x0F if len(prio) == 1 else 0,
                kernel_identifier=fields.get(Tag.KERNEL_IDENTIFIER),
                extended_selection=fields.get(Tag.EXTENDED_SELECTION, b""),
                order=order,
            )
        )
    return out


def aid_matches(adf_name: bytes, aid: bytes) -> bool:
    """Book B §3.3.2.5: the ADF name is the AID, or begins with it (partial match)."""
    return bytes(adf_name).startswith(aid)
