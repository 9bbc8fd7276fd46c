"""Benchmark: a whole command, from exec to exit, beside python-emv's ``emvtool``.

    .venv/bin/python bench/bench_startup.py [--runs 21] [--no-pcsc] [--json]
    flock /tmp/pcsc.lock .venv/bin/python bench/bench_startup.py   # with the card read

Each pair runs alternately (ours, theirs, ours, theirs...) so that the machine's load
falls on both alike; printed are the median and the quartiles of the wall time of each
process (``subprocess.run``, bytecode caches warm: one unmeasured run of each first,
without ``PYTHONDONTWRITEBYTECODE``), and the median of its CPU time, user and system
(``getrusage`` of the children), which a loaded machine's waits leave out.

- ``terminal --help`` beside ``emvtool --help``;
- ``terminal read --reader pcsc:N`` beside ``emvtool -r N appdata 0`` on the same card:
  the Mastercard fixture (``fixtures/cards/mastercard-card.json``, counters in memory)
  presented on vpcd's second reader by :func:`card.vpcd.serve_tap` in a thread of this
  process for the whole run, read through pcscd by both (SELECT PPSE or PSE, SELECT,
  GET PROCESSING OPTIONS, READ RECORD of the AFL), the card powered off before each
  run (untimed: :func:`power_off`) so that each powers it up. Needs pcscd with vpcd; wrap the run
  in ``flock /tmp/pcsc.lock`` (pcscd's virtual readers are machine-wide). ``--no-pcsc``
  skips it;
- alone, no peer: ``terminal read --help``, ``card --help``, ``issuer --help``,
  ``backoffice --help`` and ``python -c pass`` (the interpreter's own start with the
  venv's site, the floor under every command).

``--baseline BIN`` adds, to each group, the same ``terminal`` commands from another
virtualenv's ``bin`` folder (an older checkout installed with its own ``scripts/test``),
so that before and after alternate in one run.

``emvtool`` lives in its own virtualenv (``scripts/emvtool-venv`` makes it, pyscard
2.0.0 and click < 8: it needs PyPI once); ``--emvtool PATH`` names another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CARD = ROOT / "fixtures" / "cards" / "mastercard-card.json"
#: vpcd's second reader: its name in pcscd and its TCP port (card.vpcd.VPCD_PORT + 1).
READER = "Virtual PCD 00 01"


#: The commands' environment: bytecode caches written and used (a set
#: PYTHONDONTWRITEBYTECODE would have every run compile tapstack's sources again, while
#: emvtool's were compiled when pip installed it).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _cpu() -> float:
    """The CPU time (user and system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: Sequence[str]) -> tuple[float, float]:
    """The wall time and the CPU time of one run of ``argv`` (s)."""
    cpu = _cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.decode()[-400:]}"
        )
    return elapsed, _cpu() - cpu


def measure(
    commands: dict[str, list[str]], runs: int, before: Callable[[], None] = lambda: None
) -> dict[str, dict[str, float]]:
    """Wall time of each command, the commands alternating run after run (ms), with the
    median of its CPU time (user and system: what the machine's load hides least);
    ``before`` runs, untimed, before each of them."""
    for argv in commands.values():  # bytecode caches written, files in the page cache
        before()
        _timed(argv)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            before()
            wall, cpu = _timed(argv)
            times[name].append(wall * 1000)
            cpus[name].append(cpu * 1000)
    out = {}
    for name, values in times.items():
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        out[name] = {
            "median": median,
            "q1": q1,
            "q3": q3,
            "min": min(values),
            "cpu": statistics.median(cpus[name]),
        }
    return out


def power_off() -> None:
    """Power the card in vpcd's second reader off (``SCARD_UNPOWER_CARD``), so that the
    next command powers it up and chooses its protocol: ``terminal`` leaves the card
    powered in T=1, where emvtool, which asks for T=0 only, would fail."""
    from smartcard import scard

    rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        rc, card, _ = scard.SCardConnect(
            context,
            READER,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if rc != scard.SCARD_S_SUCCESS:
            raise SystemExit(f"could not connect to the card: {scard.SCardGetErrorMessage(rc)}")
        scard.SCardDisconnect(card, scard.SCARD_UNPOWER_CARD)
    finally:
        scard.SCardReleaseContext(context)


@contextmanager
def presented_card() -> Iterator[int]:
    """The fixture card on vpcd's second reader until the block ends; yields the
    reader's index in pcscd's list (``pcsc:N`` and emvtool's ``-r N``)."""
    from smartcard.System import readers

    from card.emv import EmvCard
    from card.vpcd import REMOVAL_GAP, VPCD_PORT, serve_tap

    names = [str(r) for r in readers()]
    if READER not in names:
        raise SystemExit(f"no {READER!r} in pcscd (vpcd); readers: {names}")
    card = EmvCard.from_file(CARD, persist=False)
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            while not stop.wait(REMOVAL_GAP):
                serve_tap(card, port=VPCD_PORT + 1, stop=stop, busy_timeout=3.0)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, name="card", daemon=True)
    thread.start()
    reader = next(r for r in readers() if str(r) == READER)
    deadline = time.monotonic() + 10
    while True:
        if errors:
            raise errors[0]
        connection = reader.createConnection()
        try:
            connection.connect()
        except Exception:  # pyscard: NoCardException, CardConnectionException
            if time.monotonic() > deadline:
                raise SystemExit(f"the card never appeared in {READER!r}") from None
            time.sleep(0.05)
            continue
        connection.disconnect()
        break
    try:
        yield names.index(READER)
    finally:
        stop.set()
        thread.join(timeout=5)
        if errors:
            raise errors[0]


def _emvtool(path: str | None) -> str:
    if path:
        return path
    done = subprocess.run(
        [str(ROOT / "scripts" / "emvtool-venv")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"scripts/emvtool-venv failed: {done.stderr[-400:]}")
    return done.stdout.strip().splitlines()[-1]


def _print(title: str, results: dict[str, dict[str, float]]) -> None:
    print(title)
    for name, r in results.items():
        print(
            f"  {name:<45} median {r['median']:6.1f} ms  (q1 {r['q1']:.1f}, q3 {r['q3']:.1f})"
            f"  CPU {r['cpu']:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command")
    parser.add_argument("--emvtool", help="emvtool's path (default: scripts/emvtool-venv)")
    parser.add_argument("--no-pcsc", action="store_true", help="skip the card read through pcscd")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument(
        "--baseline", type=Path, metavar="BIN", help="another venv's bin folder, run alongside"
    )
    args = parser.parse_args()
    emvtool = _emvtool(args.emvtool)
    report: dict[str, object] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "runs": args.runs,
    }
    bins = [("", BIN)] + ([(" [baseline]", args.baseline)] if args.baseline else [])

    def ours(program: str, *argv: str) -> dict[str, list[str]]:
        return {
            f"{' '.join((program, *argv))}{tag}": [str(folder / program), *argv]
            for tag, folder in bins
        }

    help_pair = measure(
        {**ours("terminal", "--help"), "emvtool --help": [emvtool, "--help"]}, args.runs
    )
    alone = measure(
        {
            **{f"python -c pass{tag}": [str(f / "python"), "-c", "pass"] for tag, f in bins},
            **ours("terminal", "read", "--help"),
            **ours("card", "--help"),
            **ours("issuer", "--help"),
            **ours("backoffice", "--help"),
        },
        args.runs,
    )
    report["help"] = help_pair
    report["alone"] = alone
    if not args.no_pcsc:
        with presented_card() as index:
            report["read"] = measure(
                {
                    **ours("terminal", "read", "--reader", f"pcsc:{index}"),
                    f"emvtool -r {index} appdata 0": [emvtool, "-r", str(index), "appdata", "0"],
                },
                args.runs,
                before=power_off,
            )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"CPython {report['python']}, {report['machine']}, {args.runs} alternating runs")
    _print("--help, side by side:", help_pair)
    if "read" in report:
        _print("reading the card through pcscd, side by side:", report["read"])  # type: ignore[arg-type]
    _print("alone:", alone)


if __name__ == "__main__":
    main()
