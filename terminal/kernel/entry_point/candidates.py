"""The candidates of combination selection (EMV Book B §3.3.2): the directory entries
of the PPSE, and the entries of the candidate list that pair one with a configured
combination."""

from __future__ import annotations

from dataclasses import dataclass

from terminal.kernel.config import Combination
from terminal.kernel.registry import PreProcessing

__all__ = ["Candidate", "DirectoryEntry"]


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
