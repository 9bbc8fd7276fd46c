"""Every fixture card through every reader driver to the outcome its profile expects.

The four card profiles (fixtures/cards: Visa and Mastercard, plastic
and phone) are tapped through the three drivers of terminal.readers (EMV Book A §5 and
Book B §3: one entry point whatever the reader):

- ``emulated``: ``open_reader("emulated:PROFILE")``, the card made by the
  ``tapstack.cards`` entry point (card.emv.EmvCard.from_file), in process;
- ``nfc``: ``open_reader("nfc:udp:127.0.0.1:PORT")`` against card.nfc.serve_nfc in a
  thread (ISO/IEC 14443-4 over nfcpy's udp frontend);
- ``pcsc``: ``open_reader("pcsc:Virtual PCD 00 0N")`` through pcscd and vpcd, the card
  served by card.vpcd.serve_tap in a thread (skipped without pcscd).

With the default configuration (CVM required limit 50.00 EUR for both brands): a
purchase under the limit is an online request without CVM for all four cards (none is
approved offline: floor limit 0); over the limit, a phone verifies the cardholder on
the device (CDCVM) and a plastic card asks for online PIN (Book C-2 §3.6.3 / Book C-3
§5.2.2.5). A card that leaves the field mid-tap (the profile fault ``pull_after``)
ends in TRY AGAIN on every driver (Book A §6.1.2, Book B §3.5.1.2).

Every card runs from a copy of its profile in ``tmp_path`` with its counters in the
test's state folder (card/state.py, never beside the profile); each test checks the tap
reached the card by the ATC it left in that file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from card.state import default_state_path
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, TransactionResult
from terminal.readers import Reader, open_reader
from tests.support.cards import CARDS, NfcCard, VpcdCard
from tests.support.kernel import tap_reader

#: Profile -> (masked PAN, APDUs under the CVM limit, CVM over the limit).
PROFILES: dict[str, tuple[str, int, Cvm]] = {
    "visa-card": ("476173******0010", 3, Cvm.ONLINE_PIN),
    "visa-phone": ("489537******0013", 3, Cvm.CDCVM),
    "mastercard-card": ("541333******1034", 9, Cvm.ONLINE_PIN),
    "mastercard-phone": ("520474******1002", 10, Cvm.CDCVM),
}
DRIVERS = ("emulated", "nfc", pytest.param("pcsc", marks=pytest.mark.pcsc))
UNDER_CVM_LIMIT = 1234  # 12.34 EUR
OVER_CVM_LIMIT = 6000  # 60.00 EUR, under the contactless transaction limit of 1000.00
#: Seconds to wait for the card in the field (the pcsc driver polls pcscd).
WAIT = 10.0


def _profile_copy(tmp_path: Path, name: str, faults: dict[str, Any] | None = None) -> Path:
    """The fixture profile copied into ``tmp_path`` (with ``faults`` set)."""
    data = json.loads((CARDS / f"{name}.json").read_text())
    if faults is not None:
        data["faults"] = faults
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _state_atc(profile: Path) -> int:
    """The ATC the card of ``profile`` left in its state file (the test's state folder)."""
    text = default_state_path(profile).read_text()
    doc = json.loads(text)
    # One application per fixture card: its counters hold the ATC.
    atcs = [v["atc"] for v in _walk(doc) if isinstance(v, dict) and "atc" in v]
    assert len(atcs) == 1, doc
    return int(atcs[0])


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture
def driver_reader(request: pytest.FixtureRequest, distribution: Path) -> Callable[[str, Path], Any]:
    """``driver_reader(driver, profile)``: a context manager giving a reader with the
    card of ``profile`` (its state file in the test's state folder) in its field."""

    @contextmanager
    def make(driver: str, profile: Path) -> Iterator[Reader]:
        if driver == "emulated":
            reader = open_reader(f"emulated:{profile}")
        elif driver == "nfc":
            nfc_card: Callable[..., NfcCard] = request.getfixturevalue("nfc_card")
            served = nfc_card(EmvCard.from_file(profile))
            reader = open_reader(f"nfc:{served.path}")
        elif driver == "pcsc":
            vpcd: Callable[..., VpcdCard] = request.getfixturevalue("vpcd")
            on_vpcd = vpcd(EmvCard.from_file(profile))
            reader = open_reader(f"pcsc:{on_vpcd.reader}")
        else:  # pragma: no cover - parametrisation only names the three
            raise AssertionError(driver)
        with reader:
            yield reader

    return make


def _tap(
    make: Callable[[str, Path], Any], driver: str, profile: Path, amount: int
) -> TransactionResult:
    with make(driver, profile) as reader:
        result: TransactionResult = tap_reader(reader, amount, timeout=WAIT)
    return result


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("name", list(PROFILES))
def test_purchase_under_the_cvm_limit_is_an_online_request(
    driver_reader: Callable[[str, Path], Any], tmp_path: Path, name: str, driver: str
) -> None:
    masked, apdus, _ = PROFILES[name]
    profile = _profile_copy(tmp_path, name)
    result = _tap(driver_reader, driver, profile, UNDER_CVM_LIMIT)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    assert result.cvm is Cvm.NO_CVM
    assert result.masked_pan == masked
    # Kernel 2 times EXCHANGE RELAY RESISTANCE DATA; one that comes back too slowly (a
    # loaded machine, through pcscd) is tried again, at most twice (Book C-2 §5.3).
    retries = 2 if name.startswith("mastercard") else 0
    assert apdus <= result.apdu_count <= apdus + retries
    assert result.authorisation_data  # field 55 for the issuer
    assert result.track2  # field 35, kept apart
    assert _state_atc(profile) == 1  # the card counted this tap, in the state folder
    assert not list(tmp_path.glob("*state*")), "a state file was written beside the profile"


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("name", list(PROFILES))
def test_purchase_over_the_cvm_limit_verifies_the_cardholder(
    driver_reader: Callable[[str, Path], Any], tmp_path: Path, name: str, driver: str
) -> None:
    masked, _, cvm = PROFILES[name]
    profile = _profile_copy(tmp_path, name)
    result = _tap(driver_reader, driver, profile, OVER_CVM_LIMIT)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    assert result.cvm is cvm
    assert result.parameters.cvm is cvm.outcome_cvm
    assert result.masked_pan == masked
    assert _state_atc(profile) == 1


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("name", ["visa-card", "mastercard-phone"])
def test_card_pulled_away_mid_tap_asks_to_try_again(
    driver_reader: Callable[[str, Path], Any], tmp_path: Path, name: str, driver: str
) -> None:
    # pull_after 2: SELECT PPSE and SELECT AID answered, gone at GET PROCESSING OPTIONS.
    profile = _profile_copy(tmp_path, name, {"pull_after": 2})
    result = _tap(driver_reader, driver, profile, UNDER_CVM_LIMIT)
    assert result.outcome is Outcome.TRY_AGAIN, result.reasons
    assert any("removed" in r or "not answering" in r for r in result.reasons), result.reasons
    assert not result.authorisation_data
    assert not result.track2
