"""The README's main command, ``scripts/demo`` (scripts/demo.py): the whole day of taps
and QR payments ends by itself with status 0, every step in order, the books agreeing,
and no full PAN or track 2 anywhere in what it prints; with ``--show-commands`` the
command line of each step before its outcome, keys as shell variables. In process, and
through pcscd +
vpcd."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.e2e import ROOT, free_vpcd_reader

STEPS = [
    "== the issuer",
    "== the shop",
    "APPROVED",
    "APPROVED 625800",
    "A000000333010102 UNIONPAY CREDIT: 8.80",
    "REFUNDED 2.50",
    "by its consumer-presented code: 4.20 EUR",
    "paid the till's dynamic code (read from its PNG): 3.80 EUR, the till told by long poll",
    "till and issuer MATCH: 4 sales 29.30 EUR (2 by QR code)",
    "== the metro",
    "1 aggregation completed, 6.00 EUR captured",
    "charged 0.00 EUR, DAILY_CAP",
    "== the car park",
    "pre-authorised 20.00 EUR",
    "charged 7.50 EUR",
    "Ada    balance 82.50 EUR, held 0.00 EUR; expected 82.50 EUR: agree",
    "Grace  balance 86.00 EUR, held 0.00 EUR; expected 86.00 EUR: agree",
    "Lei    balance 91.20 EUR, held 0.00 EUR; expected 91.20 EUR: agree",
    "issuer ledger: balances equal their entries",
    "back office rider 1: 4 trips, charged 6.00 EUR",
    "All consistent",
]


def _demo(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-2000:]
    at = 0
    for step in STEPS:  # each step, in this order
        found = out.find(step, at)
        assert found >= 0, f"{step!r} missing after position {at}:\n{out[at:][:1500]}"
        at = found
    assert "Traceback" not in out
    # A PAN or token is shown only masked; no run of 13-19 digits, no track 2 (PAN D YYMM).
    assert not re.search(r"(?<![\dA-Fa-f])\d{13,19}(?![\dA-Fa-f])", out)
    assert not re.search(r"\d{12,19}[D=]\d{4}", out)
    return out


def test_demo_in_process_shows_the_commands_of_each_step() -> None:
    out = _demo("--in-process", "--show-commands")
    assert "cards are tapped in process (--in-process)" in out
    assert "   $ issuer init --kdf-cost 10 --json" in out
    assert out.index("$ terminal gate transit ") < out.index("OPEN 520474")
    # a key printed once is a shell variable in the commands, never its value
    assert '--terminal-key "$SHOP_KEY"' in out
    assert '--gate-key "$GATE_KEY"' in out
    assert "tsk_" not in out


@pytest.mark.pcsc
def test_demo_through_pcscd(pcscd: str) -> None:
    out = _demo("--reader", str(free_vpcd_reader()))
    assert "cards are tapped through pcscd + vpcd" in out
