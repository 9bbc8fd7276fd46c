"""End to end through the command lines: ``card serve --via pcsc`` presents a fixture card
in a vpcd reader of pcscd, ``terminal pay --reader pcsc:N --json`` taps it; both are
subprocesses, as a user runs them.

The online request's JSON carries the PAN masked (first six, last four; PCI DSS 4.0
req. 3.4.1) and the Track 2 Equivalent Data (57) masked; neither the full PAN nor the
track 2 image appears anywhere in either program's stdout or stderr. A card pulled
away mid-tap ends in TRY AGAIN with exit code 8, "card" (Book A §6.1.2; not a decline).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import e2e

pytestmark = pytest.mark.pcsc

#: Exit code of ``terminal pay`` for a card removed or a transaction it could not
#: complete (clikit.exits: card).
EXIT_NOT_DONE = 8


def _run_tap(
    pcscd: str, tmp_path: Path, name: str, amount: str, *serve_options: str
) -> tuple[subprocess.CompletedProcess[str], str, str, list[str]]:
    """Serve one tap of fixture ``name`` (state in tmp_path), pay ``amount`` against it;
    the pay process, the card's stdout and stderr, and the values that must not leak."""
    profile = e2e.CARDS / f"{name}.json"
    state = tmp_path / f"{name}.state.json"
    beside = sorted(e2e.CARDS.iterdir())
    number = e2e.free_vpcd_reader()
    with e2e.ServedCard(profile, 1, "--state", str(state), "--json", *serve_options, reader=number,
                    presenting=False, settle=0) as serve:  # fmt: skip
        pay = subprocess.run(
            [sys.executable, "-m", "terminal", "pay", "--reader", f"pcsc:{number}",
             "--amount", amount, "--timeout", "10", "--json"],
            cwd=e2e.ROOT, env=e2e.child_env(), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        card_out, card_err = serve.finish(timeout=15)
    assert serve.process.returncode == 0, card_err
    # The counters went to tmp_path (a card pulled before GPO counted nothing, wrote nothing).
    assert state.is_file() or "--pull-after" in serve_options
    assert sorted(e2e.CARDS.iterdir()) == beside, "a file was written beside the fixtures"
    return pay, card_out, card_err, e2e.card_secrets(profile)


def test_visa_card_purchase_is_an_online_request_with_a_masked_pan(
    pcscd: str, tmp_path: Path
) -> None:
    pay, card_out, card_err, secrets = _run_tap(pcscd, tmp_path, "visa-card", "12.34")
    assert pay.returncode == 0, pay.stderr
    doc = json.loads(pay.stdout)
    assert doc["outcome"] == "online request"
    assert doc["pan"] == "476173******0010"
    assert doc["track2"].startswith("476173******0010D")
    assert doc["amount"] == "12.34 EUR"
    assert doc["cvm"] == "no CVM"
    assert doc["kernel_id"] == "03"
    assert "9F26" in doc["authorisation_tags"]  # the ARQC goes to the issuer
    assert "5A" not in doc["authorisation_tags"]
    assert "57" not in doc["authorisation_tags"]
    served = json.loads(card_out.splitlines()[-1])
    assert served["apdus"] == doc["apdus"] == 3
    assert served["atc"] == 1
    e2e.assert_no_secrets([pay.stdout, pay.stderr, card_out, card_err], secrets)


def test_mastercard_phone_over_the_cvm_limit_verifies_on_the_device(
    pcscd: str, tmp_path: Path
) -> None:
    pay, card_out, card_err, secrets = _run_tap(pcscd, tmp_path, "mastercard-phone", "60.00")
    assert pay.returncode == 0, pay.stderr
    doc = json.loads(pay.stdout)
    assert doc["outcome"] == "online request"
    assert doc["cvm"] == "consumer device CVM"
    assert doc["pan"] == "520474******1002"
    assert doc["kernel_id"] == "02"
    e2e.assert_no_secrets([pay.stdout, pay.stderr, card_out, card_err], secrets)


def test_card_pulled_away_mid_tap_is_try_again_with_exit_code_8(pcscd: str, tmp_path: Path) -> None:
    started = time.monotonic()
    pay, card_out, card_err, secrets = _run_tap(
        pcscd, tmp_path, "visa-card", "12.34", "--pull-after", "2"
    )
    assert pay.returncode == EXIT_NOT_DONE, pay.stderr
    doc = json.loads(pay.stdout)
    assert doc["outcome"] == "try again"
    assert doc["error"]["code"] == "card"
    assert "track2" not in doc or not doc["track2"]
    assert time.monotonic() - started < 20
    e2e.assert_no_secrets([pay.stdout, pay.stderr, card_out, card_err], secrets)
