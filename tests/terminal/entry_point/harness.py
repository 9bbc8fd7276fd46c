"""The entry point test harness: a case is a configuration, a scripted card and a
transaction; running it gives an :class:`EntryPointRecord` that is checked against the
expected record (EMVCo's entry point test assertions have the same shape: a terminal
setting, a lower tester script, and the observed exchanges, kernel activations, outcome
and user interface requests).

The builders keep cases short: :func:`combo` (one combination of the terminal
configuration, Book B §3.1.1 parameters), :func:`config`, :func:`entry` (a PPSE
directory entry), :func:`app` (an application of the scripted card with its FCI and
scripted outcomes), :func:`card`, :func:`outcome` and :func:`ui`. Every value left out
is absent (not zero): Book B distinguishes the two.

The case files of cases/ (one or several transactions each, the format of
:mod:`terminal.kernel.conformance`) run with :func:`run_case_file`, in process or on a
reader holding the card.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from card.emv import EmvCard
from card.scripted import ScriptedCard
from emvwire.profile import load_profile
from terminal.kernel.config import TRANSACTION_TYPES, parse_config
from terminal.kernel.conformance import TestKernel, load_case, mismatches
from terminal.kernel.conformance import run_case as run_conformance
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Start
from terminal.kernel.recording import EntryPointRecord
from terminal.kernel.registry import KernelRegistry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import Reader
from terminal.readers.emulated import EmulatedReader

WHEN = datetime(2026, 3, 1, 12, 30, 0)
VISA = "A0000000031010"
MASTERCARD = "A0000000041010"
AMEX = "A00000002501"
JCB = "A0000000651010"
DISCOVER = "A0000001523010"
UNIONPAY = "A000000333010101"
#: The RIDs of Book B Table 3-6 and their default kernels.
RID_DEFAULTS = {
    "A000000004": "02",
    "A000000003": "03",
    "A000000025": "04",
    "A000000065": "05",
    "A000000152": "06",
    "A000000333": "07",
}
#: The cases/ folder: configurations, scripted cards and case files.
CASES = Path(__file__).resolve().parent / "cases"
#: The fixture cards of the repository (fixtures/cards).
FIXTURE_CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
#: A SELECT of the PPSE answered 9000, as :func:`check` takes ``selects``.
PPSE_OK = ("2PAY.SYS.DDF01", "9000")
#: Issuer authentication data and two issuer scripts (Book 3 §10.10): what an issuer
#: answers to an online request with issuer update processing.
ISSUER_UPDATE = bytes.fromhex(
    "910A1122334455667788"
    "3030"  # 91: ARPC || ARC
    "710A9F180400000001"
    "860100"  # 71: script id, one command (illustrative)
    "720A9F180400000002"
    "860100"  # 72: likewise, after the second GENERATE AC
)


def combo(aid: str, kernel_id: str, **params: Any) -> dict[str, Any]:
    """One combination (``tapstack.terminal-config/1``). ``params``: ``ttq``,
    ``status_check``, ``zero_amount_allowed``, ``extended_selection``,
    ``transaction_types``, and the limits ``transaction``, ``floor``,
    ``terminal_floor``, ``cvm_required`` (each absent unless given)."""
    out: dict[str, Any] = {"aid": aid, "kernel_id": kernel_id}
    limits = {k: params.pop(k) for k in ("transaction", "floor", "terminal_floor", "cvm_required")
              if k in params}  # fmt: skip
    if limits:
        out["limits"] = limits
    out.update(params)
    if "zero_amount_allowed" not in out:
        out["zero_amount_allowed"] = None  # absent, as Book B allows
    return out


def config(
    *combinations: dict[str, Any], terminal: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A terminal configuration: France, EUR (exponent 2) and ``combinations``."""
    data = {"9F1A": "0250", "5F2A": "0978", "5F36": "02", "9F35": "22"}
    data.update(terminal or {})
    return {"schema": "tapstack.terminal-config/1", "terminal": data,
            "combinations": list(combinations)}  # fmt: skip


def entry(aid: str, **fields: str) -> dict[str, Any]:
    """A PPSE directory entry: ``label``, ``priority``, ``kernel_id``,
    ``extended_selection``, ``extra`` (hex; absent unless given, ``""`` empty)."""
    return {"aid": aid, **fields}


def ui(message: str, status: str = "na", **fields: Any) -> dict[str, Any]:
    """A scripted UI request: message id (hex), status name, ``hold_time_ms``,
    ``language``, ``value``, ``currency`` (hex)."""
    return {"message": message, "status": status, **fields}


def outcome(name: str, **fields: Any) -> dict[str, Any]:
    """A scripted outcome (:mod:`card.scripted`)."""
    return {"outcome": name, **fields}


APPROVED = outcome("approved", ui_on_outcome=ui("03", "card_read_successfully"))
#: Visa (kernel 3, TTQ 36C04000, CVM required limit 50.00) and Mastercard (kernel 2).
VISA_MASTERCARD = config(
    combo(VISA, "03", ttq="36C04000", cvm_required=5000), combo(MASTERCARD, "02")
)


def fixture_card(name: str) -> EmvCard:
    """The EMV card of fixtures/cards/``name``.json (its counters in memory)."""
    return EmvCard(load_profile(FIXTURE_CARDS / f"{name}.json"))


def app(
    pdol: str | None = "9F6604",
    outcomes: Sequence[dict[str, Any]] = (APPROVED,),
    *,
    sw: str = "9000",
    fci: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A scripted application: FCI with a PDOL (``None``: no PDOL), its outcomes."""
    if fci is None:
        fci = {"label": "APP"} if pdol is None else {"label": "APP", "pdol": pdol}
    return {"sw": sw, "fci": fci, "outcomes": list(outcomes)}


def card(
    entries: Iterable[dict[str, Any]] | None,
    applications: Mapping[str, dict[str, Any]] | None = None,
    *,
    ppse_sw: str = "9000",
    **extra: Any,
) -> dict[str, Any]:
    """A scripted card: the PPSE (``entries=None``: no PPSE, 6A82), the applications
    (default: one approving application per entry), and ``extra`` profile keys
    (``events``, ``commands``) or PPSE keys (``padding``, ``ppse_extra``)."""
    doc: dict[str, Any] = {"schema": "tapstack.scripted-card/1", "name": "test card"}
    listed = list(entries) if entries is not None else []
    if entries is not None:
        ppse: dict[str, Any] = {"sw": ppse_sw, "entries": listed}
        if extra.pop("padding", False):
            ppse["padding"] = True
        if "ppse_extra" in extra:
            ppse["extra"] = extra.pop("ppse_extra")
        doc["ppse"] = ppse
    doc["applications"] = dict(applications) if applications is not None else {
        e["aid"]: app() for e in listed if "aid" in e
    }  # fmt: skip
    doc.update(extra)
    return doc


@dataclass
class Case:
    """A configuration, a scripted card and a transaction (module docstring)."""

    config: dict[str, Any]
    card: dict[str, Any]
    amount: int = 1000
    type: str = "purchase"
    other_amount: int = 0
    start: Start = Start.A
    online: bytes | None = None
    #: Kernel ids of test kernels to register (default: every id of the config).
    kernels: Sequence[str] | None = None
    #: Other kernels (real ones) registered first.
    extra_kernels: Sequence[Any] = field(default_factory=list)

    def registry(self) -> KernelRegistry:
        registry = KernelRegistry(self.extra_kernels)
        ids = self.kernels
        if ids is None:
            ids = sorted({c["kernel_id"] for c in self.config["combinations"]})
        for kid in ids:
            if bytes.fromhex(kid) not in registry:
                registry.register(TestKernel(bytes.fromhex(kid)))
        return registry

    def transaction(self) -> Transaction:
        return Transaction(self.amount, self.other_amount, type=TRANSACTION_TYPES[self.type])


def run_case(
    case: Case, reader: Reader | None = None, *, timeout: float | None = None
) -> EntryPointRecord:
    """Run ``case`` in-process (the scripted card in an emulated reader) or on
    ``reader`` (a PC/SC reader holding the card)."""
    cfg = parse_config(copy.deepcopy(case.config))
    the_reader = reader if reader is not None else EmulatedReader(ScriptedCard(case.card))
    response = case.online

    def online(_result: TransactionResult) -> bytes | None:
        return response

    entry_point = EntryPoint(cfg, case.registry(), clock=lambda: WHEN)
    return entry_point.process(
        the_reader, case.transaction(), start=case.start, online=online, timeout=timeout
    )


def check(record: EntryPointRecord, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Assert that the record holds ``expected`` (objects compared on the keys given,
    lists item by item and whole). ``selects`` may be given as ``[(name, sw), ...]`` and
    ``ui`` as ``[(message, status), ...]``. Returns the record's JSON."""
    data = record.to_json()
    want = dict(expected)
    if "selects" in want:
        want["selects"] = [
            {"name": s[0], "sw": s[1]} if isinstance(s, tuple) else s for s in want["selects"]
        ]
    if "ui" in want:
        want["ui"] = [
            {"message": u[0], "status": u[1]} if isinstance(u, tuple) else u for u in want["ui"]
        ]
    problems = mismatches(data, want)
    assert not problems, "\n".join(problems)
    return data


def run_and_check(case: Case, expected: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`run_case` then :func:`check`."""
    return check(run_case(case), expected)


def run_case_file(path: Path, reader: Reader | None = None) -> list[dict[str, Any]]:
    """Run every transaction of a case file (:func:`terminal.kernel.conformance.
    load_case`) on its scripted card (or ``reader``, holding it) and assert that each
    gives its expected record; returns the records' JSON."""
    case = load_case(path)
    cfg = parse_config(copy.deepcopy(dict(case.config)), base=case.base)
    the_reader = reader if reader is not None else EmulatedReader(ScriptedCard(dict(case.card)))
    built = Case(dict(case.config), dict(case.card))
    entry_point = EntryPoint(cfg, built.registry(), clock=lambda: WHEN)
    results = run_conformance(case, cfg, the_reader, entry_point.process)
    problems = [f"transaction {i + 1}: {p}" for i, (_, found) in enumerate(results) for p in found]
    assert not problems, "\n".join(problems)
    return [record.to_json() for record, _ in results]
