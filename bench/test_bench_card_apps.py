"""The software card's own processing time, in-process (no transport).

A tap's card-side cost is what a reader waits for beyond the RF: the Visa qVSDC GPO
(ATC, cryptogram, fDDA signature with the 1024-bit ICC key) and the Mastercard GENERATE
AC with CDA dominate; dispatch of a plain command is the floor. The state file variant
adds the atomic, fsynced write of the counters per transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from card.emv import EmvCard
from card.probe import DEFAULT_TRANSACTION, CardProbe
from emvwire import dol
from emvwire.apdu import generate_ac, get_data, get_processing_options, select
from emvwire.profile import load_profile

CARDS = Path(__file__).resolve().parents[1] / "fixtures" / "cards"
VISA = load_profile(CARDS / "visa-card.json")
MASTERCARD = load_profile(CARDS / "mastercard-card.json")
GET_ATC = get_data(0x9F36).encode()
#: Online cryptogram required, ODA for online supported: every GPO is an ARQC with fDDA.
FDDA_ONLINE = {**DEFAULT_TRANSACTION, 0x9F66: bytes.fromhex("37804000")}
VISA_GPO = get_processing_options(dol.build(VISA.applications[0].pdol, FDDA_ONLINE)).encode()
MC_GEN_AC_CDA = generate_ac(
    0x90, dol.build(MASTERCARD.applications[0].data[0x8C], DEFAULT_TRANSACTION)
).encode()
SELECT_VISA = select(VISA.applications[0].aid).encode()
SELECT_MC = select(MASTERCARD.applications[0].aid).encode()
MC_GPO = get_processing_options().encode()


def test_dispatch_get_data(benchmark: Any) -> None:
    card = EmvCard(VISA)
    card.process(SELECT_VISA)
    answer = benchmark(card.process, GET_ATC)
    assert answer[-2:] == b"\x90\x00"


def test_visa_gpo_with_fdda(benchmark: Any) -> None:
    card = EmvCard(VISA)

    def run() -> bytes:
        card.process(SELECT_VISA)
        return card.process(VISA_GPO)

    answer = benchmark(run)
    assert answer[-2:] == b"\x90\x00"


def test_mastercard_generate_ac_with_cda(benchmark: Any) -> None:
    card = EmvCard(MASTERCARD)

    def run() -> bytes:
        card.process(SELECT_MC)
        card.process(MC_GPO)
        return card.process(MC_GEN_AC_CDA)

    answer = benchmark(run)
    assert answer[-2:] == b"\x90\x00"


def test_visa_whole_tap(benchmark: Any) -> None:
    card = EmvCard(VISA)
    probe = CardProbe(card)
    tap = benchmark(probe.tap, FDDA_ONLINE)
    assert tap.data[0x9F27] == b"\x80"
    assert 0x9F4B in tap.data


def test_mastercard_whole_tap(benchmark: Any) -> None:
    card = EmvCard(MASTERCARD)
    probe = CardProbe(card)
    tap = benchmark(probe.tap)
    assert tap.data[0x9F27] == b"\x80"


def test_visa_gpo_with_state_file(benchmark: Any, tmp_path: Path) -> None:
    card = EmvCard(VISA, state_path=tmp_path / "state.json")

    def run() -> bytes:
        card.process(SELECT_VISA)
        return card.process(VISA_GPO)

    answer = benchmark(run)
    assert answer[-2:] == b"\x90\x00"
