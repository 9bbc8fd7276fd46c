"""open_reader paths and the reader listing."""

from __future__ import annotations

import pytest

from terminal.readers import (
    ReaderError,
    ReaderUnavailableError,
    list_readers,
    open_reader,
    scan_readers,
)
from terminal.readers.nfc import NfcReader


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "bad reader path"),
        ("vpcd", "bad reader path"),
        ("usb:072f:2200", "bad reader path"),  # nfcpy's path without the nfc: driver
        ("PCSC:0", "bad reader path"),
        ("pcsc:", "names a reader"),
        ("nfc:", "bad nfc path"),
        ("nfc:usb:zz", "bad nfc path"),
        ("nfc:udp:localhost", "bad nfc path"),
        ("emulated:", "names a card profile"),
        ("emulated:/no/such/profile.json", "no card profile"),
    ],
)
def test_bad_paths_say_what_is_expected(path: str, message: str) -> None:
    with pytest.raises(ReaderError, match=message):
        open_reader(path)


def test_an_absent_usb_frontend_is_unavailable() -> None:
    with pytest.raises(ReaderUnavailableError, match="nfc:usb:04e6:5591"):
        open_reader("nfc:usb:04e6:5591")


def test_an_nfc_udp_path_opens_without_a_card() -> None:
    with open_reader("nfc:udp:127.0.0.1:54399") as reader:
        assert isinstance(reader, NfcReader)
        assert reader.path == "nfc:udp:127.0.0.1:54399"
        assert not reader.card_present()


def test_scan_never_fails_and_says_why_a_driver_found_nothing() -> None:
    scan = scan_readers()
    assert all(r.driver in ("pcsc", "nfc") for r in scan.readers)
    assert all(open_path.startswith(f"{r.driver}:") for r in scan.readers for open_path in [r.path])
    # No USB frontend on these machines: the nfc driver says so instead of failing.
    if not any(r.driver == "nfc" for r in scan.readers):
        assert any(p.startswith("nfc:") for p in scan.problems)


@pytest.mark.pcsc
def test_the_vpcd_readers_are_listed(pcscd: str) -> None:
    readers = list_readers()
    by_name = {r.name: r for r in readers}
    assert pcscd in by_name
    vpcd = by_name[pcscd]
    assert vpcd.path == f"pcsc:{pcscd}"
    assert vpcd.driver == "pcsc"
    assert vpcd.feedback == "recording"
    with open_reader(vpcd.path) as reader:
        assert reader.path == vpcd.path
    index = readers.index(vpcd)
    with open_reader(f"pcsc:{index}") as reader:
        assert reader.path == vpcd.path


def test_pcsc_problems_are_reported_without_pyscard(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "smartcard", None)  # import fails as if absent
    scan = scan_readers()
    assert not any(r.driver == "pcsc" for r in scan.readers)
    assert any(p.startswith("pcsc: pyscard is not installed") for p in scan.problems)
    with pytest.raises(ReaderUnavailableError, match="pyscard"):
        open_reader("pcsc:0")
