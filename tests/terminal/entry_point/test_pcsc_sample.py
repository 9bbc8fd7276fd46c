"""A sample of the entry point cases through a real pcscd and vpcd: the scripted card is
presented in a vpcd reader (in a thread by :func:`card.vpcd.serve_tap`, and once by
``card serve`` as a user runs it), the entry point talks to it through the PC/SC driver
(:class:`~terminal.readers.pcsc.PcscReader`). The records must be the ones the
in-process reader gives: the reader is not part of what Book B decides.

The vpcd readers are machine-wide: run it alone, not beside another PC/SC run::

    scripts/test tests/terminal/entry_point/test_pcsc_sample.py -m pcsc
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from card.scripted import ScriptedCard
from terminal.kernel.conformance import load_case
from tests.support.cards import VpcdCard
from tests.support.e2e import ROOT, ServedCard, child_env, free_vpcd_reader
from tests.terminal.entry_point.harness import (
    CASES,
    ISSUER_UPDATE,
    MASTERCARD,
    PPSE_OK,
    VISA,
    VISA_MASTERCARD,
    Case,
    app,
    card,
    check,
    entry,
    outcome,
    run_case,
    run_case_file,
    ui,
)

pytestmark = pytest.mark.pcsc

CFG = VISA_MASTERCARD

SAMPLE: dict[str, tuple[Case, dict[str, Any]]] = {
    "priority order": (
        Case(CFG, card([entry(MASTERCARD, priority="02"), entry(VISA, priority="01")])),
        {
            "selects": [PPSE_OK, (VISA, "9000")],
            "activations": [{"kernel_id": "03"}],
            "outcome": {"outcome": "approved"},
        },
    ),
    "ppse not found": (
        Case(CFG, card(None, {VISA: app()})),
        {
            "selects": [("2PAY.SYS.DDF01", "6A82")],
            "activations": [],
            "outcome": {"outcome": "end application"},
        },
    ),
    "select next": (
        Case(
            CFG,
            card(
                [entry(VISA, priority="01"), entry(MASTERCARD, priority="02")],
                {VISA: app(outcomes=[outcome("select_next", start="C")]), MASTERCARD: app()},
            ),
        ),
        {
            "selects": [PPSE_OK, (VISA, "9000"), (MASTERCARD, "9000")],
            "activations": [{"kernel_id": "03"}, {"kernel_id": "02"}],
            "outcome": {"outcome": "approved"},
        },
    ),
    "online request, restart at B with issuer update data": (
        Case(
            CFG,
            card(
                [entry(VISA, kernel_id="03")],
                {
                    VISA: app(
                        outcomes=[
                            outcome(
                                "online_request",
                                start="B",
                                online_response="emv_data",
                                ui_on_outcome=ui("1B", "processing"),
                            ),
                            outcome(
                                "approved",
                                ui_on_outcome=ui(
                                    "03",
                                    "card_read_successfully",
                                    language="en",
                                    value=6000,
                                    currency="0978",
                                ),
                            ),
                        ]
                    )
                },
            ),
            amount=6000,
            online=ISSUER_UPDATE,
        ),
        {
            # Book B §3.3.2.1: the same combination again, without the PPSE
            "selects": [PPSE_OK, (VISA, "9000"), (VISA, "9000")],
            "activations": [
                {"restart": False, "indicators": {"ttq": "36404000"}},
                {"restart": True, "start": "B", "online_response": ISSUER_UPDATE.hex().upper()},
            ],
            "ui": [
                ("15", "ready_to_read"),
                ("1B", "processing"),
                ("15", "ready_to_read"),
                {"message": "03", "language": "en", "value": 6000},
            ],
            "outcome": {"outcome": "approved"},
        },
    ),
    "visa without ttq in the pdol goes to kernel 1": (
        Case(CFG, card([entry(VISA)], {VISA: app(None)}), kernels=["01", "02", "03"]),
        {"activations": [{"kernel_id": "01"}], "outcome": {"outcome": "approved"}},
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        "case-3.3.2.1-restart-b-online-response",
        "case-3.5-restart-a",
        "case-a-6.2-field-off-hold",
        "case-a-9.4-card-read-ok",
    ],
)
def test_a_case_file_gives_its_expected_records_through_pcscd_and_vpcd(
    name: str, vpcd: Callable[..., VpcdCard]
) -> None:
    """The field, the UI requests among the SELECTs, restarts and a sequence of
    transactions, on a reader of pcscd holding the scripted card."""
    from terminal.readers.pcsc import PcscReader

    path = CASES / f"{name}.json"
    served = vpcd(ScriptedCard(dict(load_case(path).card)))
    with PcscReader(served.reader) as reader:
        run_case_file(path, reader)


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_a_sample_case_gives_the_same_record_through_pcscd_and_vpcd(
    name: str, vpcd: Callable[..., VpcdCard]
) -> None:
    from terminal.readers.pcsc import PcscReader

    case, expected = SAMPLE[name]
    served = vpcd(ScriptedCard(case.card))
    with PcscReader(served.reader) as reader:
        record = run_case(case, reader, timeout=10)
    through_pcsc = check(record, expected)
    in_process = check(run_case(case), expected)
    for key in ("selects", "activations", "outcome", "ui", "events", "restarts"):
        assert through_pcsc[key] == in_process[key], key


def test_card_serve_presents_a_scripted_card_to_terminal_entry_point(pcscd: str) -> None:
    number = free_vpcd_reader()
    profile = CASES / "two-applications-select-next.json"
    with ServedCard(profile, 1, "--json", reader=number, presenting=False, settle=0) as serve:
        run = subprocess.run(
            [sys.executable, "-m", "terminal", "entry-point", "--config",
             str(CASES / "visa-config.json"), "--reader", f"pcsc:{number}", "--amount", "12.34",
             "--timeout", "10", "--json"],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        card_out, card_err = serve.finish(timeout=20)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert [(s["name"], s["sw"]) for s in record["selects"]] == [
        PPSE_OK, (VISA, "9000"), (MASTERCARD, "9000")
    ]  # fmt: skip
    assert [a["kernel_id"] for a in record["activations"]] == ["03", "02"]
    assert record["outcome"]["outcome"] == "approved"
    assert serve.process.returncode == 0, card_err
    tap = json.loads(card_out.strip().splitlines()[-1])
    assert tap["apdus"] == 5  # PPSE, SELECT, GPO, SELECT, GPO


def test_terminal_entry_point_runs_a_case_on_a_card_that_card_serve_presents(
    pcscd: str, tmp_path: Path
) -> None:
    """``--case --reader``: the case's card served by ``card serve`` through pcscd."""
    case_file = CASES / "case-a-9.4-value-qualifier.json"
    profile = tmp_path / "card.json"
    profile.write_text(json.dumps(load_case(case_file).card))
    number = free_vpcd_reader()
    with ServedCard(profile, 1, "--json", reader=number, presenting=False, settle=0) as serve:
        run = subprocess.run(
            [sys.executable, "-m", "terminal", "entry-point", "--case", str(case_file),
             "--reader", f"pcsc:{number}", "--json"],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        _, card_err = serve.finish(timeout=20)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(run.stdout)
    assert data["passed"] is True
    shown = [s["value_qualifier"] for s in data["transactions"][0]["record"]["sequence"]
             if "ui" in s]  # fmt: skip
    assert shown == ["amount", "balance"]
    assert serve.process.returncode == 0, card_err
