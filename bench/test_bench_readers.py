"""Reader drivers: a tap's APDUs and single round trips through pcsc, nfc and emulated.

The same fixture card (fixtures/cards/visa-card.json, a software EmvCard with counters
in memory) behind each driver: ``emulated`` in process, ``nfc`` over nfcpy's udp
frontend (card.nfc.serve_nfc in a thread), ``pcsc`` through pcscd and vpcd
(card.vpcd.serve_tap in a thread; skipped without pcscd). "tap" is SELECT PPSE, SELECT
the AID, GET PROCESSING OPTIONS (the card computes its cryptogram and an fDDA
signature) and every record of the AFL: 7 APDUs. "apdu" is one SELECT PPSE round trip
through the whole driver (T=0 status word handling included).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.nfc import PiccParameters, serve_nfc, wait_listening
from card.vpcd import VPCD_PORT, serve_tap
from emvwire import apdu
from emvwire.profile import load_profile
from emvwire.tags import Tag
from emvwire.tlv import decode, find
from terminal.readers import Reader, open_reader
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "fixtures" / "cards" / "visa-card.json"
SELECT_PPSE = apdu.select(apdu.PPSE).encode()
PDOL_DATA = bytes.fromhex("B62040000000000015000000000000000250000000000009782501010001020304")


def _card() -> EmvCard:
    return EmvCard(load_profile(PROFILE))


def _tap_commands(reader: Reader) -> list[bytes]:
    """The tap's C-APDUs, found once by running it (the AFL gives the records)."""
    aid = find(decode(reader.transmit(SELECT_PPSE)[:-2]), Tag.AID)
    assert aid is not None
    select_aid = apdu.select(aid.value).encode()
    reader.transmit(select_aid)
    gpo = apdu.get_processing_options(PDOL_DATA).encode()
    answer = reader.transmit(gpo)
    assert answer[-2:] == b"\x90\x00"
    afl = find(decode(answer[:-2]), Tag.AFL)
    assert afl is not None
    records = [
        apdu.read_record(e.sfi, r).encode() for e in apdu.parse_afl(afl.value) for r in e.records
    ]
    return [SELECT_PPSE, select_aid, gpo, *records]


def _tap(reader: Reader, commands: list[bytes]) -> None:
    for command in commands:
        if reader.transmit(command)[-2:] != b"\x90\x00":
            raise AssertionError(f"{command[:2].hex()} failed")


@pytest.fixture(scope="module")
def emulated() -> Iterator[Reader]:
    reader = EmulatedReader(_card(), path="emulated:visa-card")
    reader.wait_for_card()
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def nfc_reader() -> Iterator[Reader]:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = f"udp:127.0.0.1:{port}"
    stop = threading.Event()
    card = threading.Thread(
        target=serve_nfc,
        args=(_card(),),
        kwargs={"path": path, "stop": stop, "params": PiccParameters(fwi=10)},
        daemon=True,
    )
    card.start()
    assert wait_listening(path, timeout=10)
    reader = open_reader(f"nfc:{path}")
    reader.wait_for_card(10)
    yield reader
    reader.close()
    stop.set()
    card.join(10)


@pytest.fixture(scope="module")
def pcsc_reader() -> Iterator[Reader]:
    try:
        from terminal.readers.pcsc import PcscReader, list_pcsc_readers

        names = sorted(
            (n for n in list_pcsc_readers() if n.startswith("Virtual PCD")), reverse=True
        )
    except Exception as exc:
        pytest.skip(f"no pcscd with vpcd: {exc}")
    free = []
    for name in sorted(names, reverse=True):  # the second reader first: card tests use 00 00
        with PcscReader(name) as probe:
            if not probe.card_present():
                free.append(name)
    if not free:
        pytest.skip("no free vpcd reader")
    name = free[0]
    stop = threading.Event()
    card = threading.Thread(
        target=serve_tap,
        args=(_card(),),
        kwargs={"port": VPCD_PORT + int(name.rsplit(" ", 1)[1]), "stop": stop},
        daemon=True,
    )
    card.start()
    reader = open_reader(f"pcsc:{name}")
    reader.wait_for_card(10)
    yield reader
    reader.close()
    stop.set()
    card.join(10)


DRIVERS: dict[str, str] = {"emulated": "emulated", "nfc": "nfc_reader", "pcsc": "pcsc_reader"}


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_tap_select_gpo_read_records(
    benchmark: Callable[..., object], request: pytest.FixtureRequest, driver: str
) -> None:
    reader: Reader = request.getfixturevalue(DRIVERS[driver])
    commands = _tap_commands(reader)
    benchmark.extra_info["apdus"] = len(commands)  # type: ignore[attr-defined]
    benchmark(_tap, reader, commands)


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_apdu_round_trip(
    benchmark: Callable[..., object], request: pytest.FixtureRequest, driver: str
) -> None:
    reader: Reader = request.getfixturevalue(DRIVERS[driver])
    assert reader.transmit(SELECT_PPSE)[-2:] == b"\x90\x00"
    benchmark(reader.transmit, SELECT_PPSE)
