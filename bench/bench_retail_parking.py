"""Time of a retail sale and of parking entry/exit decisions through pcscd + vpcd with a
real ``issuer serve`` on SQLite over mutual TLS (the retail and parking applications;
no goal, a measurement for BENCHMARKS.md).

Measured per tap, from the card connected (``wait_for_card`` returned) to the receipt
or the barrier decision: the kernel's exchanges with the card through pcscd + vpcd,
the online authorisation (retail: ``POST /v1/authorisations``; parking entry: the
pre-authorisation; parking exit: the completion) and the durable journal writes.
The wait for the card (pcscd's presence polling, about 0.4 s) is excluded.

Run (holds vpcd reader 1: nothing else may use it meanwhile)::

    .venv/bin/python bench/bench_retail_parking.py --taps 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.e2e import TerminalCredentials


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
    from tests.support.e2e import (
        ServedCard,
        add_terminal,
        init_issuer,
        new_account,
        provision_card,
        serve_issuer,
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench-apps-"))
    env = init_issuer(tmp / "home", "b")
    account = new_account(env, "Bench", "100000.00")
    shop = add_terminal(env, "Shop", "5411")
    park = add_terminal(env, "Park", "7523")
    profile = tmp / "card.json"
    provision_card(env, account, profile)
    taps = options.taps
    with serve_issuer(env) as url, ServedCard(profile, 3 * taps, "--idle-timeout", "0.15"):
        _measure(url, shop, park, tmp, taps)


def _measure(
    url: str, shop: TerminalCredentials, park: TerminalCredentials, tmp: Path, taps: int
) -> None:
    """Time ``taps`` retail sales, then ``taps`` parking entries and exits, on vpcd reader 1
    (the card presented there for every tap) against the issuer at ``url``."""
    from emvwire.currency import currency_by_code
    from hostlink import HostClient
    from terminal.apps.journal import Journal
    from terminal.apps.parking import ParkingGate, lane_config, load_tariff
    from terminal.apps.retail import Till
    from terminal.kernel.config import default_config
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.transaction import Transaction, TransactionResult
    from terminal.readers import open_reader

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
        with HostClient(url, shop.id, shop.key, tls=shop.tls) as host:
            till = Till(Journal(tmp / "till"), host, merchant="Shop", terminal_id=shop.id,
                        currency=currency_by_code("EUR"))  # fmt: skip
            tap = make_tap(config)
            for _ in range(taps):
                receipt = till.sale(1234, tap)
                retail.append((time.perf_counter() - connected[0]) * 1000)
                assert receipt.approved, receipt
        tariff = load_tariff()
        parking_config = lane_config(config, tariff)
        now = [datetime.now(UTC)]
        entries: list[float] = []
        exits: list[float] = []
        tap = make_tap(parking_config)
        with HostClient(url, park.id, park.key, tls=park.tls) as host:
            gate = ParkingGate(tmp / "gate", host, tariff, clock=lambda: now[0])
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


if __name__ == "__main__":
    main()
