"""The contactless entry point (EMV Book B), one module per phase.

=========================  ==========================================================
module                     phase
=========================  ==========================================================
``pre_processing``         Start A, pre-processing (§3.1): the indicators and the TTQ
                           copy of each combination; Autorun's indicators and
                           transaction
``protocol_activation``    Start B, protocol activation (§3.2): "Present card",
                           polling, collisions
``combination_selection``  Start C, combination selection (§3.3): SELECT PPSE, the
                           candidate list, final selection, the kernel 3/1 rule
``kernel_activation``      Start D, kernel activation (§3.4): the kernel's context
``outcome_processing``     outcome processing (§3.5): online response data, restarts
``sequencer``              :class:`EntryPoint`, which sequences them: ``process`` (the
                           whole transaction), ``run`` (one pass, ``terminal pay``)
``candidates``             the PPSE's directory entries and the candidate list (§3.3.2)
``session``                what the phases of one transaction share
=========================  ==========================================================

One transaction::

    result = EntryPoint(default_config()).run(reader, Transaction(1234))
    record = EntryPoint(default_config()).process(reader, Transaction(1234))  # Book B §3.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emvwire.lazy import lazy_names

if TYPE_CHECKING:
    from terminal.kernel.entry_point.candidates import (
        Candidate,
        DirectoryEntry,
        aid_matches,
        parse_ppse,
    )
    from terminal.kernel.entry_point.combination_selection import VISA_RID, build_candidates
    from terminal.kernel.entry_point.outcome_processing import MAX_RESTARTS, OnlineHandler
    from terminal.kernel.entry_point.pre_processing import (
        autorun_indicators,
        autorun_transaction,
        pre_process,
    )
    from terminal.kernel.entry_point.protocol_activation import CollisionError, is_collision
    from terminal.kernel.entry_point.sequencer import EntryPoint, run_entry_point

#: Each name of the package -> the module that defines it, imported on first use
#: (PEP 562), so that importing one phase (``terminal read`` needs the PPSE parsing of
#: :mod:`.candidates` only) does not load them all.
_LAZY: dict[str, str] = {
    "Candidate": "candidates",
    "DirectoryEntry": "candidates",
    "aid_matches": "candidates",
    "parse_ppse": "candidates",
    "VISA_RID": "combination_selection",
    "build_candidates": "combination_selection",
    "MAX_RESTARTS": "outcome_processing",
    "OnlineHandler": "outcome_processing",
    "autorun_indicators": "pre_processing",
    "autorun_transaction": "pre_processing",
    "pre_process": "pre_processing",
    "CollisionError": "protocol_activation",
    "is_collision": "protocol_activation",
    "EntryPoint": "sequencer",
    "run_entry_point": "sequencer",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "MAX_RESTARTS",
    "VISA_RID",
    "Candidate",
    "CollisionError",
    "DirectoryEntry",
    "EntryPoint",
    "OnlineHandler",
    "aid_matches",
    "autorun_indicators",
    "autorun_transaction",
    "build_candidates",
    "is_collision",
    "parse_ppse",
    "pre_process",
    "run_entry_point",
]
