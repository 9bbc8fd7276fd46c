"""Fixtures of the terminal tests: software cards presented through vpcd and nfcpy's udp.

pcscd is shared with every other process on the machine (other test runs may hold a
card in a vpcd reader), so a card here gets an ATR of its own, is presented in the vpcd
reader this test process claimed (tests.support.e2e.own_vpcd_reader) once it holds no
card, and counts as presented only once vpcd asks it for its ATR.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from card.nfc import PiccParameters, ServeStats, serve_nfc, wait_listening
from card.vpcd import VPCD_PORT, serve_tap
from tests.support import e2e
from tests.support.cards import NFC_UID, NfcCard, TestCard, VpcdCard, free_udp_port
from tests.support.services import missing_service

_GROUP, _NAME = "tapstack.cards", "profile"  # terminal.readers.emulated's entry point


# --- vpcd --------------------------------------------------------------------------------


def _port(name: str) -> int:
    return VPCD_PORT + int(name.rsplit(" ", 1)[1])


@pytest.fixture
def free_vpcd_reader(pcscd: str) -> str:
    """The name of this test process's vpcd reader, with no card in it now."""
    return e2e.reader_name(e2e.free_vpcd_reader())


@pytest.fixture
def vpcd(pcscd: str) -> Iterator[Callable[..., VpcdCard]]:
    """Present a card through vpcd: ``vpcd(card, max_apdus=None, **serve_tap options)``, in
    this test process's vpcd reader once it holds no card."""
    running: list[VpcdCard] = []

    def present(card: Any, **options: Any) -> VpcdCard:
        test_card = card if isinstance(card, TestCard) else TestCard(card)
        name = e2e.reader_name(e2e.free_vpcd_reader())
        stop = threading.Event()
        served = VpcdCard(name, test_card, stop, threading.Thread())

        def run() -> None:
            try:
                served.outcome["tap"] = serve_tap(
                    test_card, port=_port(name), stop=served.stop, **options
                )
            except BaseException as exc:
                served.outcome["error"] = exc

        served.thread = threading.Thread(target=run, name="vpcd-card", daemon=True)
        served.thread.start()
        if test_card.polled.wait(5):
            running.append(served)
            return served
        served.remove()  # vpcd never spoke to us: another card holds that reader
        missing_service(f"vpcd reader {name!r} is held by another process's card")

    yield present
    for served in running:
        served.remove()


# --- the card factory entry point -------------------------------------------------------


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution on sys.path whose metadata registers card.emv's loader.

    importlib.metadata finds *.dist-info folders on sys.path: this is the mechanism an
    installed tapstack uses, without installing anything.
    """
    site = tmp_path / "site"
    info = site / "tapstack_test_cards-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tapstack-test-cards\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{_GROUP}]\n{_NAME} = card.emv:EmvCard.from_file\n")
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


# --- nfcpy udp ---------------------------------------------------------------------------


@pytest.fixture
def nfc_card() -> Iterator[Callable[..., NfcCard]]:
    """Serve a card over nfcpy udp: ``nfc_card(card, **serve_nfc options)`` -> NfcCard."""
    running: list[NfcCard] = []

    def present(card: Any, **options: Any) -> NfcCard:
        test_card = card if isinstance(card, TestCard) else TestCard(card)
        options.setdefault("params", PiccParameters(uid=NFC_UID, fwi=8))
        path = f"udp:127.0.0.1:{free_udp_port()}"
        served = NfcCard(path, test_card, ServeStats(), threading.Event(), threading.Thread())

        def run() -> None:
            try:
                served.outcome["apdus"] = serve_nfc(
                    test_card, path=path, stop=served.stop, stats=served.stats, **options
                )
            except BaseException as exc:
                served.outcome["error"] = exc

        served.thread = threading.Thread(target=run, name="nfc-card", daemon=True)
        served.thread.start()
        running.append(served)
        assert wait_listening(path, timeout=10), "the nfc card never listened"
        return served

    yield present
    for served in running:
        served.remove()
