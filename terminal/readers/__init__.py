"""Readers: one interface (:class:`Reader`), drivers chosen by a path string.

==========================  ================================================
path                        driver
==========================  ================================================
``pcsc:NAME`` / ``pcsc:N``  a PC/SC reader through pcscd (:mod:`.pcsc`); NAME may be
                            a unique part of the name, N the index in pcscd's list
``nfc:usb[:VID:PID]``       an nfcpy USB frontend (:mod:`.nfc`)
``nfc:tty:PORT[:DRIVER]``   an nfcpy serial frontend (``nfc:tty:USB0:pn532``)
``nfc:udp:HOST:PORT``       nfcpy's emulated RF link over UDP
``emulated:PROFILE_PATH``   a software card in process (:mod:`.emulated`)
==========================  ================================================

:func:`list_readers` (and :func:`scan_readers`, which also says why a driver found
nothing) lists what is attached, with the path to open each one. :mod:`.trace` wraps
any reader to show its exchanges, masked (the CLI's ``--trace``).
"""

from __future__ import annotations

from typing import Any, Final

from terminal.readers.base import (
    FAILURE,
    IDLE,
    PROCESSING,
    REMOVE,
    SUCCESS,
    CardInfo,
    CardRemovedError,
    CardTimeoutError,
    CommunicationError,
    Feedback,
    NoCardError,
    ProtocolError,
    Reader,
    ReaderDescription,
    ReaderError,
    ReaderScan,
    ReaderUnavailableError,
    RecordingFeedback,
    Signal,
    signal_outcome,
)

__all__ = [
    "DRIVERS",
    "FAILURE",
    "IDLE",
    "PROCESSING",
    "REMOVE",
    "SUCCESS",
    "CardInfo",
    "CardRemovedError",
    "CardTimeoutError",
    "CommunicationError",
    "Feedback",
    "NoCardError",
    "ProtocolError",
    "Reader",
    "ReaderDescription",
    "ReaderError",
    "ReaderScan",
    "ReaderUnavailableError",
    "RecordingFeedback",
    "Signal",
    "list_readers",
    "open_reader",
    "scan_readers",
    "signal_outcome",
]

#: The path prefixes :func:`open_reader` knows.
DRIVERS: Final = ("pcsc", "nfc", "emulated")


def open_reader(path: str, **options: Any) -> Reader:
    """Open the reader named by ``path`` (module docstring); ``options`` go to the driver.

    A malformed path is a :class:`ReaderError` saying what is expected; a reader that
    is not there (or pcscd, or pyscard) a :class:`ReaderUnavailableError`.
    """
    driver, sep, rest = path.partition(":")
    if not sep or driver not in DRIVERS:
        raise ReaderError(
            f"bad reader path {path!r}: use pcsc:NAME-or-INDEX, nfc:usb[:VID:PID], "
            "nfc:tty:PORT[:DRIVER], nfc:udp:HOST:PORT or emulated:PROFILE_PATH"
        )
    if driver == "pcsc":
        from terminal.readers.pcsc import PcscReader

        return PcscReader(rest, **options)
    if driver == "nfc":
        from terminal.readers.nfc import NfcReader, check_nfc_path

        return NfcReader(check_nfc_path(rest), **options)
    from terminal.readers.emulated import open_emulated

    return open_emulated(rest, **options)


def _scan_pcsc(readers: list[ReaderDescription], problems: list[str]) -> None:
    from terminal.readers.pcsc import list_pcsc_readers

    try:
        names = list_pcsc_readers()
    except ReaderError as exc:
        problems.append(f"pcsc: {exc}")
        return
    except Exception as exc:  # pyscard raises unrelated types on a broken pcscd
        problems.append(f"pcsc: pcscd did not answer: {type(exc).__name__}: {exc}")
        return
    if not names:
        problems.append("pcsc: pcscd is running but knows no reader")
    for name in names:
        feedback = "acr122u" if "ACR122" in name.upper() else "recording"
        readers.append(ReaderDescription(f"pcsc:{name}", name, "pcsc", feedback))


def _scan_nfc(readers: list[ReaderDescription], problems: list[str]) -> None:
    try:
        from terminal.readers.nfc import list_usb_frontends

        found = list_usb_frontends()
    except Exception as exc:  # libusb missing or refusing: say so, fail nothing
        problems.append(f"nfc: USB devices cannot be listed: {type(exc).__name__}: {exc}")
        return
    if not found:
        problems.append(
            "nfc: no USB frontend that nfcpy drives (serial and udp frontends are not "
            "probed: open nfc:tty:PORT:DRIVER or nfc:udp:HOST:PORT directly)"
        )
    for spec, driver in found:
        name = f"nfcpy {driver} frontend ({spec})"
        readers.append(ReaderDescription(f"nfc:{spec}", name, "nfc", "recording"))


def scan_readers() -> ReaderScan:
    """Every reader each driver finds, and for each driver that found none, why.

    Nothing fails when a driver is unavailable (no pyscard, no pcscd, no libusb):
    its reason goes to ``problems``. Emulated readers are not listed (they need a
    card profile path).
    """
    readers: list[ReaderDescription] = []
    problems: list[str] = []
    _scan_pcsc(readers, problems)
    _scan_nfc(readers, problems)
    return ReaderScan(tuple(readers), tuple(problems))


def list_readers() -> list[ReaderDescription]:
    """The readers attached, in driver order (PC/SC in pcscd's order, then nfcpy USB)."""
    return list(scan_readers().readers)
