"""Time of a retail sale and of parking entry/exit decisions through pcscd + vpcd with a
real ``issuer serve`` on SQLite (issue 6 applications; not a goal of the issue, a
measurement for BENCHMARKS.md).

Measured per tap, from the card connected (``wait_for_card`` returned) to the receipt
or the barrier decision: the kernel's exchanges with the card through pcscd + vpcd,
the online authorisation (retail: ``POST /v1/authorisations``; parking entry: the
pre-authorisation; parking exit: the completion) and the durable journal writes.
The wait for the card (pcscd's presence polling, about 0.4 s) is excluded.

Run (holds vpcd reader 1; take the shared lock)::

    flock /tmp/team/vpcd.lock .venv/bin/python bench/bench_retail_parking.py --taps 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def _cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([str(BIN / "issuer"), *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(done.stdout)


def _quantiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return (f"n={len(values)} median {statistics.median(values):.1f} ms, "
            f"p99 {p99:.1f} ms, max {values[-1]:.1f} ms")  # fmt: skip


def main() -> None:
    """Set up issuer, card and lane; time the taps; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=20, choices=range(1, 25), metavar="1-24",
                        help="taps per measurement (the issuer's velocity rule allows one "
                        "card 50 authorisations in 10 minutes)")  # fmt: skip
    options = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from terminal.apps.journal import Journal
    from terminal.apps.parking import ParkingGate, load_tariff
    from terminal.apps.retail import Till
    from terminal.host import HostClient
    from terminal.kernel.config import default_config
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.transaction import Transaction, TransactionResult, currency_by_code
    from terminal.readers import open_reader

    tmp = Path(tempfile.mkdtemp(prefix="bench-apps-"))
    env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(tmp / "home"), "TAPSTACK_KEYSTORE_KEY": "b"}
    env.pop("TAPSTACK_DB", None)
    _cli(env, "init", "--kdf-cost", "10")
    account = _cli(env, "account", "create", "--holder", "Bench")["id"]
    _cli(env, "account", "credit", account, "--amount", "100000.00")
    shop = _cli(env, "terminal", "add", "--merchant", "Shop", "--mcc", "5411")
    park = _cli(env, "terminal", "add", "--merchant", "Park", "--mcc", "7523")
    profile = tmp / "card.json"
    _cli(env, "card", "provision", "--account", account, "--scheme", "visa", "--form", "card",
         "--out", str(profile))  # fmt: skip
    server = subprocess.Popen([str(BIN / "issuer"), "serve", "--bind", "127.0.0.1:0"], env=env,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert server.stderr is not None
    match = re.search(r"http://[\d.]+:\d+", server.stderr.readline())
    assert match
    url = match.group(0)
    taps = options.taps
    card = subprocess.Popen(
        [str(BIN / "card"), "serve", str(profile), "--via", "pcsc", "--reader", "1", "--taps",
         str(3 * taps), "--idle-timeout", "0.15"], stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    reader = open_reader("pcsc:1")
    connected = [0.0]

    def make_tap(config: Any) -> Any:
        entry = EntryPoint(config)

        def tap(transaction: Transaction) -> TransactionResult:
            if reader.card_present():
                reader.wait_for_removal(10)
            reader.wait_for_card(10)
            connected[0] = time.perf_counter()
            return entry.run(reader, transaction, wait=False)

        return tap

    try:
        config = default_config()
        retail: list[float] = []
        with HostClient(url, shop["id"], shop["credential"]) as host:
            till = Till(Journal(tmp / "till"), host, merchant="Shop", terminal_id=shop["id"],
                        currency=currency_by_code("EUR"))  # fmt: skip
            tap = make_tap(config)
            for _ in range(taps):
                receipt = till.sale(1234, tap)
                retail.append((time.perf_counter() - connected[0]) * 1000)
                assert receipt.approved, receipt
        from dataclasses import replace

        parking_config = replace(config, terminal_data={**config.terminal_data,
                                                         0x9F15: b"\x75\x23"})  # fmt: skip
        now = [datetime.now(UTC)]
        entries: list[float] = []
        exits: list[float] = []
        tap = make_tap(parking_config)
        with HostClient(url, park["id"], park["credential"]) as host:
            gate = ParkingGate(tmp / "gate", host, load_tariff(), clock=lambda: now[0])
            for _ in range(taps):
                for times, action in ((entries, "entry"), (exits, "exit")):
                    decision = gate.decide(tap(gate.transaction))
                    times.append((time.perf_counter() - connected[0]) * 1000)
                    assert decision.action == action, decision
                    assert decision.open, decision
                    now[0] += timedelta(hours=1)
            gate.close()
        print(f"retail sale, card connected to receipt: {_quantiles(retail)}")
        print(f"parking entry (pre-authorisation) decision: {_quantiles(entries)}")
        print(f"parking exit (completion) decision: {_quantiles(exits)}")
    finally:
        reader.close()
        card.terminate()
        card.wait(10)
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
