"""A software card through pcscd and vpcd, read by pyscard: APDU round trip and a tap.

The card is a fixture profile (fixtures/cards/visa-card.json, counters in memory) served
by :func:`card.vpcd.serve_once` in a thread on vpcd's second reader (port 35964); the
reader is pyscard talking to the running pcscd. Each figure is measured twice: with the
card socket re-arming ``TCP_QUICKACK`` around every read (the default), and with a naive
socket (``quickack=False``), where every APDU waits for a delayed ACK because vpcd
writes the length and the payload in two sends (card/vpcd.py module docstring).

- round trip: GET DATA ATC (``80 CA 9F 36 00``) with the application selected, the
  smallest command the card answers;
- tap: SELECT PPSE, SELECT AID, GET PROCESSING OPTIONS (the card's fDDA signature and
  cryptogram included), READ RECORD of the four AFL records (card.probe.CardProbe).

p50 and p99 of the rounds are stored in ``extra_info`` (milliseconds).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from card.probe import CardProbe
from card.vpcd import VPCD_PORT, serve_once

smartcard = pytest.importorskip("smartcard", reason="pyscard is not installed")

ROOT = Path(__file__).resolve().parents[1]
READER = "Virtual PCD 00 01"
GET_ATC = [0x80, 0xCA, 0x9F, 0x36, 0x00]
SELECT_VISA = list(bytes.fromhex("00A4040007A000000003101000"))
#: Rounds of the naive socket: ~44 ms per APDU, so a few seconds in all.
NAIVE_APDU_ROUNDS = 40
NAIVE_TAP_ROUNDS = 10


class PyscardCard:
    """pyscard's connection shaped for CardProbe (data || SW1 SW2)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def process(self, c_apdu: bytes) -> bytes:
        data, sw1, sw2 = self.connection.transmit(list(c_apdu))
        return bytes(data) + bytes((sw1, sw2))


def _reader() -> Any:
    from smartcard.System import readers

    try:
        found = [r for r in readers() if str(r) == READER]
    except Exception as exc:  # pyscard raises several unrelated types without pcscd
        pytest.skip(f"pcscd did not answer: {exc}")
    if not found:
        pytest.skip(f"no {READER!r} (pcscd with vsmartcard-vpcd)")
    return found[0]


@pytest.fixture(params=[True, False], ids=["quickack", "naive"])
def connection(request: pytest.FixtureRequest) -> Iterator[tuple[Any, bool]]:
    """A pyscard connection to the fixture card, served with or without TCP_QUICKACK."""
    reader = _reader()
    card = EmvCard.from_file(ROOT / "fixtures" / "cards" / "visa-card.json", persist=False)
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_once,
        args=(card,),
        kwargs={"port": VPCD_PORT + 1, "stop": stop, "quickack": request.param},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        conn = reader.createConnection()
        try:
            conn.connect()
            break
        except Exception:  # NoCardException until pcscd's poll sees the card
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield conn, request.param
    conn.disconnect()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def _percentiles(benchmark: Any) -> None:
    """Store p50/p99 of the rounds (ms) beside pytest-benchmark's own statistics."""
    stats = getattr(benchmark, "stats", None)
    data = sorted(stats.stats.data) if stats is not None else []
    if len(data) < 2:  # --benchmark-disable: one run, nothing to summarise
        return
    p99 = data[min(len(data) - 1, round(0.99 * (len(data) - 1)))]
    benchmark.extra_info["p50_ms"] = round(1e3 * statistics.median(data), 3)
    benchmark.extra_info["p99_ms"] = round(1e3 * p99, 3)


def test_apdu_round_trip(benchmark: Any, connection: tuple[Any, bool]) -> None:
    conn, quickack = connection
    benchmark.group = "card via pcscd+vpcd: GET DATA round trip"
    _, sw1, _ = conn.transmit(SELECT_VISA)
    assert sw1 == 0x90
    if quickack:
        result = benchmark.pedantic(conn.transmit, (GET_ATC,), rounds=2000, warmup_rounds=50)
    else:
        result = benchmark.pedantic(conn.transmit, (GET_ATC,), rounds=NAIVE_APDU_ROUNDS)
    data, sw1, sw2 = result
    assert (sw1, sw2) == (0x90, 0x00)
    assert bytes(data) == bytes.fromhex("9F36020000")  # ATC 0: no GPO in this benchmark
    _percentiles(benchmark)


def test_tap_sequence(benchmark: Any, connection: tuple[Any, bool]) -> None:
    conn, quickack = connection
    benchmark.group = "card via pcscd+vpcd: SELECT PPSE, SELECT AID, GPO, 4 x READ RECORD"
    probe = CardProbe(PyscardCard(conn))
    rounds = 200 if quickack else NAIVE_TAP_ROUNDS
    tap = benchmark.pedantic(probe.tap, rounds=rounds, warmup_rounds=2 if quickack else 0)
    assert tap.aid == bytes.fromhex("A0000000031010")
    assert len(tap.records) == 4
    _percentiles(benchmark)


def test_tap_sequence_in_process(benchmark: Any) -> None:
    """The same tap without any transport: what the card itself spends (GPO's fDDA
    signature and cryptogram), to read the transport's share off the figures above."""
    card = EmvCard.from_file(ROOT / "fixtures" / "cards" / "visa-card.json", persist=False)
    benchmark.group = "card via pcscd+vpcd: SELECT PPSE, SELECT AID, GPO, 4 x READ RECORD"
    tap = benchmark.pedantic(CardProbe(card).tap, rounds=200, warmup_rounds=2)
    assert len(tap.records) == 4
    _percentiles(benchmark)
