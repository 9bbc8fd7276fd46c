"""Authorisation throughput with events and one webhook endpoint against without, in
the same run.

    .venv/bin/python bench/bench_events.py [--rounds 2] [--seconds 15] [--workers 2]
        [--clients 32] [--cards 600] [--db URL] [--baseline REV] [--json FILE]

Each round runs ``bench/load_issuer.py`` (a fresh issuer, ``issuer serve`` with mutual
TLS, the raw keep-alive client: every request a real authorisation) three times, one
after another, so that what else runs on the machine falls on all three alike:

- ``baseline``: the issuer before events (``--baseline REV``; default: the parent of
  the commit that added the outbox), its own ``bench/load_issuer.py`` and ``issuer``
  run from a ``git archive`` of that revision;
- ``events``: this tree, no webhook endpoint: every authorisation writes its event in
  its group commit, the service's events worker marks them dispatched;
- ``webhook``: this tree with one endpoint subscribed to every event, on a receiver in
  the load generator's process (``--webhook``): the worker thread of ``issuer serve``
  delivers while the load runs (signed, over HTTP on loopback), then the rest drains.

It prints one line per run (authorisations/s, p50/p99, the server's CPU time per
authorisation, and for ``webhook`` the events delivered by the end of the load and how
long the rest took) and the machine's 1-minute load before each. Loopback only;
bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _baseline(rev: str | None, into: Path) -> Path:
    """The tree of ``rev`` (default: the parent of the commit adding the outbox)."""
    if rev is None:
        added = subprocess.run(
            ["git", "log", "--format=%H", "--diff-filter=A", "--", "issuer/ledger/events_sql.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        rev = f"{added[-1]}^"
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def _run(mode: str, tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(tree / "bench" / "load_issuer.py"),
           "--seconds", str(args.seconds), "--workers", str(args.workers),
           "--clients", str(args.clients), "--cards", str(args.cards),
           "--handshakes", "0"]  # fmt: skip
    if args.db:
        cmd += ["--db", args.db]
    if mode == "webhook":
        cmd.append("--webhook")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode}: load_issuer.py failed:\n{done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["mode"] = mode
    return report


def _line(r: dict[str, Any]) -> str:
    text = (
        f"{r['mode']:<9} {r['per_second']:>8,.0f} auth/s  p50 {r['p50_ms']:>6} ms"
        f"  p99 {r['p99_ms']:>6} ms  server CPU {r['server_cpu_ms_per_auth']:.3f} ms/auth"
        f"  ledger {'ok' if r['ledger_consistent'] else 'BROKEN'}"
        f"  load {r['machine_load_1min_before']}"
    )
    hook = r.get("webhook")
    if hook:
        text += (
            f"  webhook: {hook['delivered_at_end_of_load']:,} of {hook['events']:,} events"
            f" at the end, all {hook['delivered']:,} after {hook['drain_seconds']} s"
            f" ({hook['duplicates']} twice)"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--cards", type=int, default=600)
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in each home)")
    parser.add_argument("--baseline", metavar="REV", help="git revision before events")
    parser.add_argument("--json", type=Path, help="write every report here")
    args = parser.parse_args()
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        base = _baseline(args.baseline, Path(tmp) / "baseline")
        for n in range(1, max(1, args.rounds) + 1):
            for mode, tree in (("baseline", base), ("events", ROOT), ("webhook", ROOT)):
                report = _run(mode, tree, args)
                report["round"] = n
                reports.append(report)
                print(f"round {n}  {_line(report)}", flush=True)
    for mode in ("baseline", "events", "webhook"):
        mine = [r for r in reports if r["mode"] == mode]
        total = sum(r["requests"] for r in mine)
        seconds = sum(r["seconds"] for r in mine)
        print(f"all      {mode:<9} {total / seconds:>8,.0f} auth/s over {len(mine)} runs")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
