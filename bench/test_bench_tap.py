"""A whole tap, entry point to outcome, through each reader driver; and the peer reference.

EMV Book A §5 / Book B §3: one ``EntryPoint(default_config()).run(reader,
Transaction(12.34 EUR))`` per round, pre-processing, SELECT PPSE, final selection, the
kernel (2 or 3) and its outcome (an online request for every fixture card). Each figure
has its reference in the same run:

- ``tap[PROFILE-DRIVER]``: ``emulated`` (in process: the kernel and the card's own
  cryptography, no transport) is the reference of ``nfc`` (nfcpy udp, card.nfc in a
  thread) and ``pcsc`` (pcscd and vpcd, card.vpcd in a thread; goal < 30 ms);
- ``apdus[PROFILE-FLOW]``: the APDUs of each flow (under and over the CVM limit) per
  fixture card, in ``extra_info`` (the emulated tap's time beside them);
- ``peer[...]``: our ``terminal read --json`` against python-emv's ``emvtool`` (a PC/SC
  application that is not ours; scripts/emvtool-venv) on the same card through pcscd,
  both as subprocesses (wall time of the command, Python start-up included), median of
  several runs, the ratio ours / emvtool in ``extra_info``. Skipped with the reason when
  emvtool's virtualenv cannot be built.

p50 and p99 of the rounds (ms) are stored in ``extra_info``. Cards run from copies of
the fixture profiles with their counters in memory (nothing written beside the fixtures).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from card.emv import EmvCard
from card.nfc import PiccParameters, serve_nfc, wait_listening
from card.vpcd import VPCD_PORT, serve_once
from emvwire.profile import load_profile
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, Transaction, TransactionResult
from terminal.readers import Reader, open_reader
from terminal.readers.emulated import EmulatedReader
from tests.support.e2e import require_free_reader, wait_until_empty

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "fixtures" / "cards"
PROFILES = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
DRIVERS = ("emulated", "nfc", "pcsc")
READER = "Virtual PCD 00 01"  # vpcd's second reader: the card tests use the first
UNDER_CVM_LIMIT = 1234
OVER_CVM_LIMIT = 6000
WHEN = datetime(2026, 3, 1, 12, 30, 0)
#: Rounds of a tap per driver (a pcsc tap is ~10 ms: a few seconds in all).
TAP_ROUNDS = 100
#: Runs of each command of the peer comparison (each a Python start-up).
PEER_RUNS = 7
REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")


def _card(name: str) -> EmvCard:
    return EmvCard(load_profile(CARDS / f"{name}.json"))


class CountingCard:
    """Wraps a card: counts the C-APDUs it answered (for the peer's APDU count)."""

    def __init__(self, inner: EmvCard) -> None:
        self.inner = inner
        self.apdus = 0

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    @property
    def uid(self) -> bytes:
        return self.inner.uid

    def power_on(self) -> None:
        self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def process(self, c_apdu: bytes) -> bytes:
        self.apdus += 1
        return self.inner.process(c_apdu)


def _percentiles(benchmark: Any) -> None:
    """Store p50/p99 of the rounds (ms) beside pytest-benchmark's own statistics."""
    stats = getattr(benchmark, "stats", None)
    data = sorted(stats.stats.data) if stats is not None else []
    if len(data) < 2:  # --benchmark-disable: one run, nothing to summarise
        return
    p99 = data[min(len(data) - 1, round(0.99 * (len(data) - 1)))]
    benchmark.extra_info["p50_ms"] = round(1e3 * statistics.median(data), 3)
    benchmark.extra_info["p99_ms"] = round(1e3 * p99, 3)


def _skip(reason: str) -> NoReturn:
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# --- a card behind each driver ------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def behind() -> Iterator[Callable[[str, Any], Reader]]:
    """``behind(driver, card)``: a reader with ``card`` in its field (threads stopped at
    the end)."""
    stops: list[tuple[threading.Event, threading.Thread]] = []
    readers: list[Reader] = []

    def make(driver: str, card: Any) -> Reader:
        reader: Reader
        if driver == "emulated":
            reader = EmulatedReader(card, path="emulated:bench")
        elif driver == "nfc":
            path = f"udp:127.0.0.1:{_free_udp_port()}"
            stop = threading.Event()

            def run_nfc() -> None:
                serve_nfc(card, path=path, stop=stop, params=PiccParameters(fwi=10))

            thread = threading.Thread(target=run_nfc, name="nfc-card", daemon=True)
            thread.start()
            stops.append((stop, thread))
            assert wait_listening(path, timeout=10)
            reader = open_reader(f"nfc:{path}")
        elif driver == "pcsc":
            require_free_reader(1, skip=_skip)
            stop = threading.Event()

            def run_vpcd() -> None:
                while not stop.is_set():
                    serve_once(card, port=VPCD_PORT + 1, stop=stop)

            thread = threading.Thread(target=run_vpcd, name="vpcd-card", daemon=True)
            thread.start()
            stops.append((stop, thread))
            reader = open_reader(f"pcsc:{READER}")
        else:  # pragma: no cover
            raise AssertionError(driver)
        readers.append(reader)
        reader.wait_for_card(10)
        return reader

    yield make
    for reader in readers:
        reader.close()
    for stop, thread in stops:
        stop.set()
        thread.join(timeout=20)
        if thread.name == "vpcd-card":
            wait_until_empty(1)


def _entry() -> EntryPoint:
    return EntryPoint(default_config(), clock=lambda: WHEN)


# --- whole tap per driver -----------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("name", PROFILES)
def test_tap(benchmark: Any, behind: Callable[[str, Any], Reader], name: str, driver: str) -> None:
    benchmark.group = f"whole tap, entry point to outcome: {name}"
    reader = behind(driver, _card(name))
    entry = _entry()

    def one() -> TransactionResult:
        return entry.run(reader, Transaction(UNDER_CVM_LIMIT), timeout=10)

    result: TransactionResult = benchmark.pedantic(one, rounds=TAP_ROUNDS, warmup_rounds=3)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    benchmark.extra_info["apdus"] = result.apdu_count
    benchmark.extra_info["kernel_total_ms"] = result.timings_ms.get("total")
    _percentiles(benchmark)


# --- APDUs per flow -----------------------------------------------------------------------

FLOWS: dict[str, tuple[int, dict[str, Cvm]]] = {
    "under-cvm-limit": (UNDER_CVM_LIMIT, dict.fromkeys(PROFILES, Cvm.NO_CVM)),
    "over-cvm-limit": (
        OVER_CVM_LIMIT,
        {
            "visa-card": Cvm.ONLINE_PIN,
            "visa-phone": Cvm.CDCVM,
            "mastercard-card": Cvm.ONLINE_PIN,
            "mastercard-phone": Cvm.CDCVM,
        },
    ),
}


@pytest.mark.parametrize("flow", list(FLOWS))
@pytest.mark.parametrize("name", PROFILES)
def test_apdus(benchmark: Any, name: str, flow: str) -> None:
    benchmark.group = "APDUs per flow (emulated reader)"
    amount, cvms = FLOWS[flow]
    card = CountingCard(_card(name))
    reader = EmulatedReader(card, path="emulated:bench")
    entry = _entry()

    seen: list[int] = []

    def one() -> TransactionResult:
        before = card.apdus
        result = entry.run(reader, Transaction(amount))
        seen.append(card.apdus - before)
        return result

    result: TransactionResult = benchmark.pedantic(one, rounds=50)
    assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
    assert result.cvm is cvms[name]
    assert set(seen) == {result.apdu_count}  # the kernel's count is the card's, every round
    benchmark.extra_info["apdus"] = result.apdu_count
    _percentiles(benchmark)


# --- the peer: python-emv's emvtool -------------------------------------------------------


@pytest.fixture(scope="module")
def emvtool() -> str:
    """emvtool in its own virtualenv (scripts/emvtool-venv; built on first use)."""
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "emvtool-venv")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _skip("emvtool's virtualenv took over 600 s to build")
    if done.returncode != 0:
        _skip(f"could not build emvtool's virtualenv: {done.stderr.strip()[-300:]}")
    return done.stdout.strip().splitlines()[-1]


def _wall(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds one run of ``command`` takes (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, (command[-3:], done.stdout[-500:], done.stderr[-500:])
    return elapsed


def _unpower() -> None:
    """Power the card off (SCARD_UNPOWER_CARD): ``terminal read`` leaves it powered in
    T=1, and emvtool, which asks for T=0 only, would be refused it (protocol mismatch)."""
    from smartcard import scard

    rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert rc == scard.SCARD_S_SUCCESS
    try:
        rc, handle, _ = scard.SCardConnect(
            context,
            READER,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if rc == scard.SCARD_S_SUCCESS:
            scard.SCardDisconnect(handle, scard.SCARD_UNPOWER_CARD)
    finally:
        scard.SCardReleaseContext(context)


#: Our command and emvtool's for the same work: listing the application (SELECT only),
#: and reading the card's records after GPO (mastercard-card: emvtool's GPO sends no
#: PDOL data, which a Visa card refuses).
PEER_COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "select-only": (["read", "--no-gpo", "--json"], ["listapps"]),
    "gpo-and-records": (["read", "--json"], ["appdata", "0"]),
}


@pytest.mark.parametrize("work", list(PEER_COMMANDS))
def test_peer_terminal_read_vs_emvtool(
    benchmark: Any, emvtool: str, behind: Callable[[str, Any], Reader], work: str
) -> None:
    benchmark.group = f"peer: terminal read vs emvtool via pcscd ({work})"
    card = CountingCard(_card("mastercard-card"))
    reader = behind("pcsc", card)
    reader.close()  # the commands open the reader themselves
    from terminal.readers.pcsc import list_pcsc_readers

    index = list_pcsc_readers().index(READER)
    ours_args, theirs_args = PEER_COMMANDS[work]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours = [sys.executable, "-m", "terminal", *ours_args, "--reader", f"pcsc:{READER}"]
    ours += ["--timeout", "10"]
    theirs = [emvtool, "-r", str(index), *theirs_args]

    before = card.apdus
    _wall(ours, env)
    ours_apdus = card.apdus - before
    before = card.apdus
    _unpower()
    _wall(theirs)
    theirs_apdus = card.apdus - before

    theirs_times: list[float] = []

    def run_theirs() -> None:  # pedantic's setup: before each timed run, not timed
        _unpower()
        theirs_times.append(_wall(theirs))

    benchmark.pedantic(_wall, (ours, env), setup=run_theirs, rounds=PEER_RUNS)
    theirs_median = statistics.median(theirs_times)
    benchmark.extra_info["emvtool_median_ms"] = round(1e3 * theirs_median, 1)
    benchmark.extra_info["emvtool_p99_ms"] = round(1e3 * max(theirs_times), 1)
    benchmark.extra_info["ours_apdus"] = ours_apdus
    benchmark.extra_info["emvtool_apdus"] = theirs_apdus
    stats = getattr(benchmark, "stats", None)
    if stats is not None and len(stats.stats.data) > 1:
        ours_median = statistics.median(stats.stats.data)
        benchmark.extra_info["ours_median_ms"] = round(1e3 * ours_median, 1)
        benchmark.extra_info["ratio_ours_over_emvtool"] = round(ours_median / theirs_median, 2)
