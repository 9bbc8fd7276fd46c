"""The transit gate's benchmarks, with their references in the same run.

- ``decision[PROFILE-DRIVER]``: the gate decision time, card detected to open signal
  (goal under 50 ms, p99 under 100 ms): from ``wait_for_card`` returned (the card
  activated; not timed, pytest-benchmark's ``setup``) through the entry point and kernel
  for 1.00 EUR, :meth:`TransitGate.decide` (deny-list check on the big list below,
  first-ride count, track 2 sealed, the tap journaled with ``fsync``) and the success
  signal. ``pcsc``: the card served by :func:`card.vpcd.serve_once` in a thread on vpcd's
  second reader, the gate on pyscard through the running pcscd; ``emulated``: the same
  in process (the reference without transport). p50/p99 in ``extra_info``.
- ``deny_check[hit|miss]``: one ``ref in deny_list`` (32 hex digits, as the gate asks)
  on a list of ``TAPSTACK_BENCH_DENY`` (default 10,000,000) random references (goal
  under 5 us). The list is built in a subprocess (its time in ``extra_info``) and
  loaded from disk here, as a restarted gate does; ``extra_info`` holds the structure's
  bytes and the resident memory the load added (goal: memory stated).
- ``taps_per_minute[...]``: the whole gate loop (:func:`terminal.apps.gate.run_gate`:
  wait, kernel, decide with the journal on, signal, card removed) for many taps:
  ``emulated-journal`` and ``emulated-no-fsync`` side by side (the cost of
  durability), and ``pcsc`` with a new presentation per tap through pcscd: the card
  leaves 50 ms after its last answer and stays away 0.5 s, as ``card serve`` does,
  since pcscd polls presence about every 400 ms (that polling bounds the figure).
  Goal: well above the 30-45 a physical gate passes.

Run (the deny list first, a few minutes, most of it sorting 10 million references;
it stays in var/bench/ for the second command, which holds the vpcd readers: nothing
else may use them meanwhile)::

    .venv/bin/python -m pytest bench/test_bench_gate.py -p no:cacheprovider \
        --benchmark-enable -k deny_check
    .venv/bin/python -m pytest bench/test_bench_gate.py \
        -p no:cacheprovider --benchmark-enable -k "not deny_check"

``TAPSTACK_BENCH_DENY=100000`` for a quick run.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from card.emv import EmvCard
from card.vpcd import VPCD_PORT, serve_once, serve_tap
from emvwire.profile import load_profile
from emvwire.seal import generate_keypair
from terminal.apps.denylist import DenyList
from terminal.apps.gate import GateVerdict, run_gate
from terminal.apps.journal import Journal
from terminal.apps.transit import TransitGate, TransitSettings
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction
from terminal.readers import Reader, open_reader, signal_outcome
from terminal.readers.emulated import EmulatedReader
from tests.support.e2e import require_free_reader, wait_until_empty

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "fixtures" / "cards"
PROFILES = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
READER = "Virtual PCD 00 01"
CACHE = ROOT / "var" / "bench"
DENY_SIZE = int(os.environ.get("TAPSTACK_BENCH_DENY", "10000000"))
DECISION_ROUNDS = 100
EMULATED_TAPS = 300
PCSC_TAPS = 20
#: Seconds a card stays away between two pcsc taps, as ``card serve`` does (pcscd polls
#: presence about every 400 ms and misses a shorter absence).
REMOVAL_GAP = 0.5
REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")
_, PUBLIC = generate_keypair()

_BUILD = """
import os, sys, time
from terminal.apps.denylist import DenyList
n, folder = int(sys.argv[1]), sys.argv[2]
raw = os.urandom(16 * n)
keys = [raw[i : i + 16] for i in range(0, len(raw), 16)]
del raw
started = time.perf_counter()
DenyList(folder).replace(keys, 1)
print(time.perf_counter() - started)
"""


def _skip(reason: str) -> NoReturn:
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _percentiles(benchmark: Any) -> None:
    stats = getattr(benchmark, "stats", None)
    data = sorted(stats.stats.data) if stats is not None else []
    if len(data) < 2:
        return
    benchmark.extra_info["p50_ms"] = round(1e3 * statistics.median(data), 3)
    benchmark.extra_info["p99_ms"] = round(1e3 * data[round(0.99 * (len(data) - 1))], 3)
    benchmark.extra_info["max_ms"] = round(1e3 * data[-1], 3)


# --- the big deny list ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_deny() -> tuple[DenyList, dict[str, Any]]:
    """The list of DENY_SIZE random references, built once into var/bench/ (a gate's
    folder, reused by later runs: build it apart, while no pcsc benchmark runs)."""
    folder = CACHE / f"denylist-{DENY_SIZE}"
    timing = folder / "build.json"
    if not timing.exists():
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _BUILD, str(DENY_SIZE), str(folder)],
            capture_output=True, text=True, check=True, timeout=1800,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wall = time.perf_counter() - started
        timing.write_text(json.dumps({"build_s": float(done.stdout), "wall_s": wall}))
    built = json.loads(timing.read_text())
    before = _rss()
    loaded = time.perf_counter()
    deny = DenyList(folder)
    load_s = time.perf_counter() - loaded
    info = {
        "entries": len(deny),
        "structure_mb": round(deny.memory_bytes() / 1e6, 1),
        "bytes_per_entry": round(deny.memory_bytes() / max(1, len(deny)), 2),
        "rss_added_mb": round((_rss() - before) / 1e6, 1),
        "build_s": round(built["build_s"], 1),
        "build_with_keygen_s": round(built["wall_s"], 1),
        "load_from_disk_s": round(load_s, 2),
    }
    return deny, info


@pytest.mark.parametrize("kind", ["hit", "miss"])
def test_deny_check(benchmark: Any, big_deny: tuple[DenyList, dict[str, Any]], kind: str) -> None:
    benchmark.group = f"deny-list check, {DENY_SIZE:,} entries"
    deny, info = big_deny
    state = deny._state  # a reference that is on it, for the hit
    ref = state.base.keys[16 * 12345 : 16 * 12346].hex() if kind == "hit" else os.urandom(16).hex()
    assert (ref in deny) is (kind == "hit")
    benchmark(deny.__contains__, ref)
    benchmark.extra_info.update(info)


# --- a gate over the big list ---------------------------------------------------------------


@pytest.fixture
def gate(tmp_path: Path, big_deny: tuple[DenyList, dict[str, Any]]) -> Iterator[TransitGate]:
    settings = TransitSettings("G1", PUBLIC, first_ride_limit=10**9)
    with Journal(tmp_path / "journal") as journal:  # durable: fsync per tap
        yield TransitGate(settings, journal, big_deny[0])


def _card(name: str) -> EmvCard:
    return EmvCard(load_profile(CARDS / f"{name}.json"))  # counters in memory


@pytest.fixture
def served() -> Iterator[Callable[[EmvCard, bool], Reader]]:
    """``served(card, per_tap)``: a pcsc reader with ``card`` presented by a thread,
    for ever (``per_tap`` False) or once per tap, leaving 50 ms after its last answer."""
    threads: list[tuple[threading.Event, threading.Thread]] = []
    readers: list[Reader] = []

    def make(card: EmvCard, per_tap: bool) -> Reader:
        require_free_reader(1, skip=_skip)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                if per_tap:
                    serve_tap(card, port=VPCD_PORT + 1, stop=stop, idle_timeout=0.05)
                    stop.wait(REMOVAL_GAP)  # away long enough for pcscd to see it leave
                else:
                    serve_once(card, port=VPCD_PORT + 1, stop=stop)

        thread = threading.Thread(target=serve, name="vpcd-card", daemon=True)
        thread.start()
        threads.append((stop, thread))
        reader = open_reader(f"pcsc:{READER}")
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()
    for stop, thread in threads:
        stop.set()
        thread.join(timeout=20)
    wait_until_empty(1)


@pytest.mark.parametrize("driver", ["emulated", "pcsc"])
@pytest.mark.parametrize("name", PROFILES)
def test_decision(
    benchmark: Any,
    gate: TransitGate,
    served: Callable[[EmvCard, bool], Reader],
    name: str,
    driver: str,
) -> None:
    benchmark.group = f"gate decision, card detected to open signal: {name}"
    card = _card(name)
    reader = (
        EmulatedReader(card, path="emulated:bench") if driver == "emulated" else served(card, False)
    )
    entry = EntryPoint(default_config())
    verdicts: list[GateVerdict] = []

    def detected() -> tuple[tuple[()], dict[str, Any]]:
        reader.wait_for_card(10)
        return (), {}

    def decide() -> None:
        result = entry.run(reader, Transaction(100), wait=False)
        verdict = gate.decide(result)
        signal_outcome(reader.feedback, "approved" if verdict.decision == "open" else "declined")
        verdicts.append(verdict)

    benchmark.pedantic(decide, setup=detected, rounds=DECISION_ROUNDS, warmup_rounds=3)
    assert {v.decision for v in verdicts} == {"open"}, verdicts[-1]
    assert len(gate.journal) == len(verdicts)
    benchmark.extra_info["deny_list_entries"] = len(gate.deny_list)
    _percentiles(benchmark)


@pytest.mark.parametrize("mode", ["emulated-journal", "emulated-no-fsync", "pcsc"])
def test_taps_per_minute(
    benchmark: Any,
    tmp_path: Path,
    big_deny: tuple[DenyList, dict[str, Any]],
    served: Callable[[EmvCard, bool], Reader],
    mode: str,
) -> None:
    benchmark.group = "taps per minute, one gate, the whole loop"
    card = _card("mastercard-card")
    taps = PCSC_TAPS if mode == "pcsc" else EMULATED_TAPS
    reader = served(card, True) if mode == "pcsc" else EmulatedReader(card, path="emulated:bench")
    settings = TransitSettings("G1", PUBLIC, first_ride_limit=10**9)
    with Journal(tmp_path / "journal", durable=mode != "emulated-no-fsync") as journal:
        transit = TransitGate(settings, journal, big_deny[0])
        verdicts: list[GateVerdict] = []

        def loop() -> int:
            return run_gate(reader, EntryPoint(default_config()), lambda: Transaction(100),
                            transit.decide, verdicts.append, taps=taps, timeout=10)  # fmt: skip

        started = time.perf_counter()
        benchmark.pedantic(loop, rounds=1, iterations=1)
        elapsed = time.perf_counter() - started
        assert len(journal) == taps
    assert {v.decision for v in verdicts} == {"open"}
    benchmark.extra_info["taps"] = taps
    benchmark.extra_info["taps_per_minute"] = round(60 * taps / elapsed)
    benchmark.extra_info["decision_p50_ms"] = round(statistics.median(v.ms for v in verdicts), 2)
