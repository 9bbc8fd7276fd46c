"""How fast the issuer's web console answers its pages, over HTTPS, signed in.

    .venv/bin/python bench/bench_console.py [--authorisations 10000] [--requests 200]
        [--db URL] [--json FILE]

A fresh issuer home (SQLite unless ``--db``) gets ``--authorisations`` real
authorisations (ARQCs of 20 Visa cards verified by the authorisation service, in
process, in batches as group commit takes them) and an operator; then ``issuer
console`` runs as a process and a client verifying its certificate signs in and asks
each page ``--requests`` times on one kept connection, after one request to warm it
(each page's first answer, cold, is reported on its own), and the authorisations page
also on a new connection each time (a TLS handshake per request, as a browser's first
visit). It prints the median, 90th percentile and the cold time per page in
milliseconds, and the machine's 1-minute load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emvwire.tls import SERVER_CA  # noqa: E402
from issuer.pki import TLS_DIR  # noqa: E402
from issuer.service import Api, ServiceApp  # noqa: E402
from tests.support.asgi import Call, call_many  # noqa: E402
from tests.support.console import HttpsConsole  # noqa: E402
from tests.support.issuer_home import IssuerHome, arqc_request, stop_service  # noqa: E402

CARDS = 20
BATCH = 250


def fill(home: IssuerHome, count: int) -> None:
    """``count`` authorisations, decided by the service in process."""
    terminal, key, _ = home.terminals[0]
    auth = f"Bearer {terminal.id}:{key}"
    with home.open() as app:
        http = ServiceApp(Api(app))
        calls = []
        for n in range(count):
            mk, track2 = home.cards[n % CARDS]
            blob = arqc_request(mk, n // CARDS + 1, 100 + n % 900)
            body = json.dumps({"icc_data": blob.hex(), "track2": track2.hex()}).encode()
            headers = {"authorization": auth, "idempotency-key": f"fill-{n}",
                       "content-type": "application/json"}  # fmt: skip
            calls.append(Call("POST", "/v1/authorisations", headers, body))
        for i in range(0, count, BATCH):
            answers = call_many(http, calls[i : i + BATCH])
            bad = [a for a in answers if a.status != 200]
            assert not bad, bad[0]


def timed(run: Any, times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        answer = run()
        out.append((time.perf_counter() - start) * 1000)
        assert answer.status == 200, answer
    return out


def summary(samples: list[float], cold: float | None = None) -> dict[str, float]:
    ordered = sorted(samples)
    shown = {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 2),
    }
    if cold is not None:
        shown["cold_ms"] = round(cold, 2)
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authorisations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as folder:
        home = IssuerHome(Path(folder) / "home", args.db, terminals=1, cards=CARDS)
        start = time.perf_counter()
        fill(home, args.authorisations)
        results["fill_s"] = round(time.perf_counter() - start, 1)
        with home.open() as app:
            made, credential = app.service.add_operator("Bench", ["operations"])
            card = app.service.page("cards", limit=1).data[0].id
            events = app.service.page("authorisations", limit=1).data[0].id
        proc, url = home.console()
        browser = HttpsConsole(url, home.home / TLS_DIR / SERVER_CA)
        try:
            assert browser.sign_in(made.id, credential).status == 303
            pages = {
                "authorisations": "/authorisations",
                "authorisations, live poll": f"/authorisations/live?after={events}",
                "cards": "/cards",
                "card": f"/cards/{card}",
                "accounts": "/accounts",
                "events": "/events",
            }
            for name, path in pages.items():
                cold = timed(lambda p=path: browser.request("GET", p), 1)[0]
                warm = timed(lambda p=path: browser.request("GET", p), args.requests)
                results[name] = summary(warm, cold)

            def fresh() -> Any:
                conn = browser.connect()
                try:
                    return browser.request("GET", "/authorisations", conn=conn)
                finally:
                    conn.close()

            results["authorisations, new TLS connection"] = summary(
                timed(fresh, max(20, args.requests // 4))
            )
        finally:
            browser.close()
            stop_service(proc)
    results["load_after"] = os.getloadavg()[0]
    results["authorisations_in_ledger"] = args.authorisations
    for name, value in results.items():
        print(f"{name:36} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
